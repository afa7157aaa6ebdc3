// The `rkt` entry point: global flags, command lookup (cobra-style prefix matching), help and
// version, and the ONE place where errors become text and exit statuses (STYLE §2.8). Commands are
// imported lazily so that each pays only for the modules it uses.
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { isRktError } from "@rkt/oci";
import type { CommandSpec } from "./command-spec.js";
import { appFlags, podFlags } from "./commands/run-args.js";
import type { CommandContext } from "./context.js";
import {
  UsageError,
  boolFlag,
  parseCommandLine,
  stringFlag,
  type FlagSet,
  type ParsedArgs,
} from "./flags.js";
import { globalFlags, splitGlobalFlags } from "./globals.js";
import { helpText, rootFlags, usageLine } from "./help.js";
import { formatFlag, quietFlag } from "./output.js";

/** Exit statuses, as rkt: 0 success, 254 any error, 2 missing command. */
export const ExitCode = { Ok: 0, MissingCommand: 2, Error: 254 } as const;

/** The appc spec version our manifests follow (what `rkt version` reports as "appc Version"). */
export const appcVersion = "0.8.11";

const pullPolicyText = "new, update or never; local sources are always imported";

const fetchSpec: CommandSpec = {
  name: "fetch",
  summary: "Fetch image(s) and store them in the local store",
  usage:
    "[--pull-policy=new|update|never] [--parallel=N] [--os=OS] [--arch=ARCH] [--variant=V] [--quiet] [--full] [--format=json] IMAGE [--signature=FILE] ...",
  help: [
    "Imports each IMAGE and prints its ID on stdout, one line per image, in order: ACIs as",
    "sha512- + 32 hex (64 with --full), OCI images as their manifest digest sha256:<hex>.",
    "",
    "IMAGE:",
    "  NAME[:VERSION][,LABEL=VALUE...]          an appc image found by discovery (os/arch",
    "                                           default to the host's); its dependencies too",
    "  https://HOST/PATH/x.aci                  an ACI over https (signature at x.aci.asc)",
    "  ./x.aci, /abs/x.aci, file:///abs/x.aci   an ACI (gzip, bzip2, xz, zstd or plain tar)",
    "  oci:DIR[:REF|:@N]                        an image of an OCI image layout directory",
    "  oci-archive:FILE[:REF|:@N]               an image of a tar archive of an OCI layout",
    "  docker-archive:FILE[:NAME:TAG|:@DIGEST|:@N]  an image of a `docker save` archive",
    "  docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST]  an image pulled from a registry (admitted by",
    "                                           policy.json, else needs --insecure-options=image;",
    "                                           http|tls for plain/unverified)",
    "ACIs need a trusted signature (IMAGE.aci.asc, or --signature FILE after the image) or",
    "--insecure-options=image. An index entry resolves to the host platform's manifest",
    "unless --os/--arch/--variant ask for another.",
    "",
    "Registry pulls follow registries.conf (mirrors, rewrites, blocked registries): the first of",
    "$CONTAINERS_REGISTRIES_CONF, <local-config>/registries.conf, <system-config>/registries.conf,",
    "/etc/containers/registries.conf.",
    "Their signatures are checked, before any layer is downloaded, against the first of",
    "--signature-policy, <user-config>/policy.json, <local-config>/policy.json,",
    "<system-config>/policy.json; signatures are read from the lookaside named by the first",
    "registries.d directory found (the same config dirs, then ~/.config/containers and",
    "/etc/containers) or containers' default sigstore directory, and from the registry. With a",
    "policy, oci:, oci-archive: and docker-archive: imports obey its transports of those names.",
  ].join("\n"),
  flags: {
    "pull-policy": stringFlag("POLICY", pullPolicyText, { default: "update" }),
    "store-only": boolFlag("same as --pull-policy=never", { deprecated: "please use --pull-policy=never" }),
    "no-store": boolFlag("same as --pull-policy=update", { deprecated: "please use --pull-policy=update" }),
    parallel: stringFlag("N", "registry blobs downloaded at once (1..64)", { default: "4" }),
    os: stringFlag("OS", "operating system to pick from an index (default the host's)"),
    arch: stringFlag("ARCH", "architecture to pick from an index (default the host's)"),
    variant: stringFlag("VARIANT", "architecture variant to pick from an index (needs --arch)"),
    quiet: boolFlag("no progress or informational lines on stderr", { short: "q" }),
    full: boolFlag("print the full image ID"),
    "no-render": boolFlag("do not render the images into the tree store (done as root with overlayfs)"),
    signature: stringFlag("FILE", "detached signature of the image just before it", {
      multiple: true,
      complete: "file",
    }),
    "signature-policy": stringFlag("FILE", "policy.json for registry images (containers-policy.json(5))", {
      complete: "file",
    }),
    convert: stringFlag(
      "aci",
      "also store each OCI/Docker image as a squashed ACI and print its ID\n(converted once per manifest digest; a re-fetch of an unchanged tag reuses it)",
      { choices: ["aci"] },
    ),
    format: formatFlag(
      "json: one JSON array of {id,kind,name,digests,bytes} (registry pulls and\ndocker-archives add bytesDownloaded, bytesReused)",
    ),
  },
  load: async () => (await import("./commands/fetch.js")).fetchCommand,
};

const runUsage = "[POD FLAGS] IMAGE [APP FLAGS] [-- ARGS...] [--- IMAGE [APP FLAGS] [-- ARGS...]]...";

const runHelp = [
  "IMAGE is a stored image (name or ID) or anything `rkt fetch` takes; a name not in the store",
  "is fetched (--pull-policy=new, the default: only when missing; update: always; never).",
  "Several images make one pod: their apps share its network, IPC and UTS namespaces.",
  "--stage1 defaults to the first stage1 that can run the pod here (--debug says which).",
].join("\n");

const prettyPrint = boolFlag("indent the JSON (false: as stored)", { default: true });
const overwrite = boolFlag("replace an existing output");

const podCommands: readonly CommandSpec[] = [
  {
    name: "run",
    summary: "Run image(s) in a pod",
    usage: runUsage,
    help: [runHelp, "", "The exit status is the first failing app's, else 0."].join("\n"),
    flags: podFlags,
    appFlags,
    ownGrammar: true,
    load: async () => (await import("./commands/run.js")).runCommand,
  },
  {
    name: "prepare",
    summary: "Prepare a pod to run later with run-prepared",
    usage: runUsage,
    help: [runHelp, "", "Prints the pod's UUID (--format json: {uuid})."].join("\n"),
    flags: { ...podFlags, format: formatFlag("json: {uuid}") },
    appFlags,
    ownGrammar: true,
    load: async () => (await import("./commands/run.js")).prepareCommand,
  },
  {
    name: "run-prepared",
    summary: "Run a prepared pod",
    usage: "[--net=host|none|default] [--hostname=NAME] [--interactive] [--inherit-env] UUID",
    flags: {
      net: podFlags["net"]!,
      hostname: podFlags["hostname"]!,
      interactive: podFlags["interactive"]!,
      "inherit-env": podFlags["inherit-env"]!,
    },
    args: "none",
    load: async () => (await import("./commands/run.js")).runPreparedCommand,
  },
  {
    name: "list",
    summary: "List pods",
    usage: "[--no-legend] [--full] [--format=json]",
    flags: {
      "no-legend": boolFlag("suppress the header line"),
      full: boolFlag("full UUIDs, image IDs and times"),
      format: formatFlag("json: one JSON array of pods"),
      quiet: quietFlag("print only the pod UUIDs"),
    },
    args: "none",
    load: async () => (await import("./commands/pods.js")).listCommand,
  },
  {
    name: "status",
    summary: "Check the status of a pod",
    usage: "[--wait[=DURATION]] [--format=json] UUID",
    flags: {
      wait: stringFlag("DURATION", "wait for the pod to exit (at most DURATION, a Go duration)", {
        bare: "",
      }),
      format: formatFlag("json: the pod as one JSON object"),
    },
    args: "none",
    load: async () => (await import("./commands/pods.js")).statusCommand,
  },
  {
    name: "enter",
    summary: "Enter the namespaces of an app within a running pod",
    usage: "[--app=NAME] UUID [CMD [ARGS...]]",
    help: "CMD defaults to /bin/sh (rkt: /bin/bash, which small images lack).",
    flags: { app: stringFlag("NAME", "the app to enter (needed when the pod has several)") },
    interspersed: false,
    args: "none",
    load: async () => (await import("./commands/pods.js")).enterCommand,
  },
  {
    name: "stop",
    summary: "Stop a pod",
    usage: "[--force] UUID...",
    flags: {
      force: boolFlag("kill the apps (SIGKILL) instead of asking them to stop"),
      format: formatFlag("json: [{uuid,ok,error}]"),
    },
    args: "none",
    load: async () => (await import("./commands/pods.js")).stopCommand,
  },
  {
    name: "rm",
    summary: "Remove all files and resources associated with an exited pod",
    usage: "UUID...",
    flags: { format: formatFlag("json: [{uuid,ok,error}]") },
    args: "none",
    load: async () => (await import("./commands/pods.js")).rmCommand,
  },
  {
    name: "gc",
    summary: "Garbage collect pods exited for longer than the grace period",
    usage: "[--grace-period=DURATION] [--expire-prepared=DURATION] [--mark-only]",
    help: [
      "Exited pods move to exited-garbage (their mounts and runtime state removed); after the",
      "grace period they are deleted with their GC roots, so `rkt image gc` can then reclaim",
      "their images and trees. Prepared pods never run expire too.",
    ].join("\n"),
    flags: {
      "grace-period": stringFlag("DURATION", "how long exited pods stay in exited-garbage", {
        default: "30m0s",
      }),
      "expire-prepared": stringFlag("DURATION", "how long prepared pods wait to be run", {
        default: "24h0m0s",
      }),
      "mark-only": boolFlag("only move exited pods to exited-garbage; delete nothing"),
      format: formatFlag("json: {marked,removed,failed:[{uuid,error}]}"),
      quiet: quietFlag("no lines about pods moved to garbage"),
    },
    args: "none",
    load: async () => (await import("./commands/pods.js")).gcCommand,
  },
  {
    name: "cat-manifest",
    summary: "Inspect and print the pod manifest",
    usage: "[--pretty-print=true|false] UUID",
    flags: { "pretty-print": prettyPrint },
    args: "none",
    load: async () => (await import("./commands/pods.js")).catManifestCommand,
  },
];

const copyFlags: FlagSet = {
  all: boolFlag("copy an index with every image it lists"),
  os: stringFlag("OS", "operating system taken from an index (default the host's)"),
  arch: stringFlag("ARCH", "architecture taken from an index (default the host's)"),
  variant: stringFlag("VARIANT", "architecture variant taken from an index"),
  "override-os": stringFlag("OS", "skopeo's name of --os", { hidden: true }),
  "override-arch": stringFlag("ARCH", "skopeo's name of --arch", { hidden: true }),
  "override-variant": stringFlag("VARIANT", "skopeo's name of --variant", { hidden: true }),
  format: formatFlag("json: {source,destination,digest,mediaType,tag,unchanged,blobs,bytes}"),
  authfile: stringFlag("FILE", "containers auth.json to read credentials from", { complete: "file" }),
  creds: stringFlag("USER:PASS", "credentials for both sides"),
  "src-creds": stringFlag("USER:PASS", "credentials for the source registry"),
  "dest-creds": stringFlag("USER:PASS", "credentials for the destination registry"),
  "src-tls-verify": boolFlag("false: plain HTTP or unverified TLS for the source", { default: true }),
  "dest-tls-verify": boolFlag("false: plain HTTP or unverified TLS for the destination", {
    default: true,
  }),
  "src-cert-dir": stringFlag(
    "DIR",
    "CAs (*.crt) and client certificates (*.cert, *.key) for the source registry instead of certs.d",
    { complete: "dir" },
  ),
  "dest-cert-dir": stringFlag("DIR", "the same for the destination registry", { complete: "dir" }),
  overwrite: boolFlag("replace an existing archive file"),
  parallel: stringFlag("N", "blobs at once", { default: "4" }),
  "chunk-size": stringFlag("BYTES", "upload larger blobs in PATCH chunks"),
  quiet: quietFlag("no progress or per-blob lines on stderr"),
};

const commands: readonly CommandSpec[] = [
  fetchSpec,
  {
    name: "image",
    summary: "Operate on image(s) in the local store",
    flags: {},
    children: [
      {
        name: "list",
        summary: "List images in the local store",
        usage:
          "[--fields=LIST] [--sort=LIST] [--order=asc|desc] [--no-legend] [--full] [--format=json|json-pretty]",
        flags: {
          fields: stringFlag("LIST", "comma-separated: id,name,size,importtime,lastused", {
            default: "id,name,size,importtime,lastused",
          }),
          sort: stringFlag("LIST", "comma-separated: name,importtime,lastused,size", {
            default: "importtime",
          }),
          order: stringFlag("ORDER", "asc or desc", { default: "asc" }),
          "no-legend": boolFlag("suppress the header line"),
          full: boolFlag("full IDs, sizes in bytes, absolute times"),
          format: stringFlag(
            "FORMAT",
            "json or json-pretty: [{id,name,import_time,last_used_time,size}], times in ns",
          ),
          quiet: quietFlag("print only the image IDs"),
        },
        args: "none",
        load: async () => (await import("./commands/image-list.js")).imageListCommand,
      },
      {
        name: "rm",
        summary: "Remove one or more images with the given IDs or names from the local store",
        usage: "IMAGE...",
        help: [
          "Removes each image with its rendered trees and the blobs no other image needs.",
          "Images a pod or lease uses are not removed. Unlike rkt, which exits 0 when no argument",
          "resolves, the exit status is 254 whenever nothing was removed or a removal failed.",
        ].join("\n"),
        flags: {
          format: formatFlag("json: {removed:[{id,kind}],failed:[{id,error}],unresolved:[{image,error}]}"),
          quiet: quietFlag("no summary lines on stderr"),
        },
        args: "image",
        load: async () => (await import("./commands/image-rm.js")).imageRmCommand,
      },
      {
        name: "gc",
        summary: "Garbage collect local store",
        usage: "[--grace-period=DURATION] [--trees-only|--images-only]",
        help: [
          "Removes rendered trees no pod uses, then images not used within the grace period",
          "(oldest first), then blobs, ingests and temp files nothing needs.",
        ].join("\n"),
        flags: {
          "grace-period": stringFlag("DURATION", "a Go duration, e.g. 30m or 0s", { default: "24h0m0s" }),
          "trees-only": boolFlag("only remove rendered trees"),
          "images-only": boolFlag("only remove images (and their blobs), not trees"),
          format: formatFlag(
            "json: {removedTrees,removedSnapshots,removedImages,removedBlobs,removedIngests}",
          ),
          quiet: quietFlag("no lines on stderr about what was removed"),
        },
        args: "none",
        load: async () => (await import("./commands/image-gc.js")).imageGcCommand,
      },
      {
        name: "cat-manifest",
        summary: "Inspect and print the image manifest",
        usage: "[--pretty-print=true|false] IMAGE",
        help: [
          "ACIs: the stored image manifest. OCI images: the exact manifest bytes with",
          "--pretty-print=false (their sha256 is the ID); pretty printing is for display only.",
        ].join("\n"),
        flags: { "pretty-print": prettyPrint },
        args: "image",
        load: async () => (await import("./commands/image-cat-manifest.js")).imageCatManifestCommand,
      },
      {
        name: "export",
        summary: "Export a stored image to an ACI file (OCI images: an OCI archive)",
        usage: "[--overwrite] IMAGE OUTPUT_ACI_FILE",
        flags: {
          overwrite,
          format: formatFlag("json: {id,kind,path}"),
          quiet: quietFlag(),
        },
        args: "image",
        load: async () => (await import("./commands/image-export.js")).imageExportCommand,
      },
      {
        name: "extract",
        summary: "Extract a stored image to a directory",
        usage: "[--rootfs-only] [--overwrite] IMAGE OUTPUT_DIR",
        flags: {
          "rootfs-only": boolFlag("OUTPUT_DIR is the rootfs itself (no manifest beside it)"),
          overwrite,
          format: formatFlag("json: {id,kind,path,rootfs}"),
          quiet: quietFlag(),
        },
        args: "image",
        load: async () => (await import("./commands/image-extract.js")).imageExtractCommand,
      },
      {
        name: "render",
        summary: "Render a stored image (with its dependencies) to a directory",
        usage: "[--rootfs-only] [--overwrite] [--flatten] IMAGE OUTPUT_DIR",
        help: [
          "Renders IMAGE through the tree store (each layer extracted once, shared between images)",
          "and writes OUTPUT_DIR/manifest and OUTPUT_DIR/rootfs (only the rootfs with --rootfs-only).",
          "As root with overlayfs, the rootfs is an overlay mount of the tree with a private upper",
          "dir: umount it when done (`rkt image gc` then frees its upper dir). Otherwise, or with",
          "--flatten, the rootfs is an independent flattened copy.",
        ].join("\n"),
        flags: {
          "rootfs-only": boolFlag("OUTPUT_DIR is the rootfs itself"),
          overwrite: boolFlag("replace an existing OUTPUT_DIR (our mount there is unmounted first)"),
          flatten: boolFlag("always write a flattened copy"),
          format: formatFlag("json: {id,kind,path,rootfs,manifest,mode} (mode: overlay or copy)"),
          quiet: quietFlag("no progress or notes on stderr"),
        },
        args: "image",
        load: async () => (await import("./commands/image-render.js")).imageRenderCommand,
      },
      {
        name: "verify",
        summary: "Verify the rendered trees of images, rebuilding a bad one",
        usage: "IMAGE...",
        help: [
          "Recomputes each image's tree hash (device contents are never read) and compares it with",
          "the saved one; a tree that does not match is rendered again from the verified blobs.",
        ].join("\n"),
        flags: {
          format: formatFlag("json: [{image,id,status,problem}] (status: ok, not-rendered or repaired)"),
          quiet: quietFlag("print only the trees that failed and were rebuilt"),
        },
        args: "image",
        load: async () => (await import("./commands/image-verify.js")).imageVerifyCommand,
      },
      {
        name: "fsck",
        summary: "Check the local store: re-hash every blob, index against disk, leftovers",
        usage: "[--repair] [--format=json]",
        help: [
          "Prints one line per finding (problem: or garbage:). Exit 0 when the store is consistent,",
          "whatever reclaimable garbage it holds (stale ingests, dead locks and leases, unreferenced",
          "blobs: `rkt image gc` removes them); 254 only for problems (content that does not match its",
          "name, rows naming nothing). With --repair, fixes what it can (drops corrupt blobs and rows",
          "naming nothing, rebuilds index rows from blobs, removes garbage) and checks again.",
        ].join("\n"),
        flags: {
          repair: boolFlag("fix what can be fixed, then check again"),
          format: formatFlag("json: {clean,ok,blobsChecked,imagesChecked,problems,garbage,rebuiltImages}"),
          quiet: quietFlag("no summary line on stderr"),
        },
        args: "none",
        load: async () => (await import("./commands/image-fsck.js")).imageFsckCommand,
      },
      {
        name: "sign",
        summary: "Sign a stored image (OCI: simple signing into a lookaside dir; ACI: detached .asc)",
        usage:
          "IMAGE --key FILE [--passphrase-file FILE] [--lookaside DIR] [--reference REF] [--output FILE]",
        help: [
          "--key is an ASCII-armored private key (gpg --armor --export-secret-keys).",
          "OCI images: writes a containers simple-signing signature for REF (default: the name and",
          "tag the image was stored under) and the manifest digest to DIR/<repo>@sha256=<hex>/signature-N",
          "(default DIR: /var/lib/containers/sigstore, as containers' built-in lookaside).",
          "ACIs: writes a detached armored signature of the archive to --output (IMAGE.aci.asc).",
        ].join("\n"),
        flags: {
          key: stringFlag("FILE", "ASCII-armored private key", { complete: "file" }),
          "passphrase-file": stringFlag("FILE", "file holding the key's passphrase", { complete: "file" }),
          lookaside: stringFlag("DIR", "lookaside directory for OCI signatures", { complete: "dir" }),
          reference: stringFlag("REF", "the docker reference signed for an OCI image"),
          output: stringFlag("FILE", "where an ACI's signature is written", { complete: "file" }),
          format: formatFlag("json: {id,kind,path,reference}"),
        },
        args: "image",
        load: async () => (await import("./commands/image-sign.js")).imageSignCommand,
      },
      {
        name: "convert",
        summary: "Convert an OCI/Docker image to ACIs (docker2aci rules), into the store or to files",
        usage: "[--squash|--no-squash] [-o DIR] [--compression=gzip|none] IMAGE",
        help: [
          "Converts IMAGE (an OCI image in the store, by name or ID, or docker://REF, oci:DIR[:REF],",
          "oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG]) as docker2aci does: one squashed",
          "ACI (default; upper layers win, whiteouts and opaque whiteouts applied) or, with --no-squash,",
          "one ACI per layer, the top one depending on the others. Into the store (uncompressed): a",
          "transport's image is fetched first as `rkt fetch` would, an image converted before is not",
          "converted again, and the IDs are printed (base first). With -o the ACIs are streamed from",
          "the source into DIR under docker2aci's file names and their paths printed.",
        ].join("\n"),
        flags: {
          squash: boolFlag("one ACI for the whole image", { default: true }),
          "no-squash": boolFlag("one ACI per layer with dependencies"),
          output: stringFlag("DIR", "write .aci files to DIR instead of importing them", {
            short: "o",
            complete: "dir",
          }),
          compression: stringFlag("METHOD", "gzip or none, for files", { default: "gzip" }),
          format: formatFlag("json: [{id}] into the store, [{path}] with -o (base first)"),
          quiet: quietFlag(),
        },
        args: "image",
        load: async () => (await import("./commands/image-convert.js")).imageConvertCommand,
      },
      {
        name: "copy",
        summary: "Copy an image between registries, OCI layouts, OCI and docker archives and the store",
        usage: "[flags] SOURCE DESTINATION",
        help: [
          "SOURCE and DESTINATION are docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF],",
          "docker-archive:FILE[:NAME:TAG] (a source also takes :@DIGEST or :@N), or rkt:[NAME[:TAG]]",
          "(a bare name or ID is a stored image). A docker-archive holds uncompressed layers: writing one",
          "decompresses them. Blobs the destination already has",
          "are not sent, blobs on the same registry are mounted, and the manifest goes last: a failed",
          "copy never leaves a tag naming a missing blob. Prints the digest copied.",
        ].join("\n"),
        flags: copyFlags,
        load: async () => (await import("./commands/image-copy.js")).imageCopyCommand,
      },
      {
        name: "push",
        summary: "Push a stored image to a registry",
        usage: "[flags] IMAGE docker://HOST/REPO[:TAG]",
        help: [
          "Pushes IMAGE (an OCI image in the store, by name or ID) as `image copy rkt:IMAGE DEST` does:",
          "blobs first (skipped when present, mounted within the registry), the manifest last.",
        ].join("\n"),
        flags: copyFlags,
        args: "image",
        load: async () => (await import("./commands/image-copy.js")).imagePushCommand,
      },
      {
        name: "save",
        summary: "Save stored images into one OCI or docker archive, or a signed bundle",
        usage:
          "-o FILE [--format=oci-archive|docker-archive] [--overwrite] IMAGE... | --bundle -o FILE IMAGE [--signature FILE]...",
        help: [
          "Writes the stored images into one archive, each under NAME:TAG: an OCI archive lists them in",
          "index.json (skopeo, umoci and `rkt fetch oci-archive:FILE:NAME:TAG` read it); a docker-archive",
          "in manifest.json as RepoTags, layers uncompressed (`docker load`, skopeo and",
          "`rkt fetch docker-archive:` read it). The file appears only when complete; an existing file",
          "is refused unless --overwrite.",
          "",
          "With --bundle: one OCI archive for an air gap holding each IMAGE (a stored image, anything",
          "`rkt image copy` reads, or an ACI file), its signatures (simple signing from this machine's",
          "lookaside or --lookaside DIR, and the registry's extension; an ACI's .asc, or --signature FILE",
          "after it) and the public keys that made them (from the keystore and policy.json), described by",
          "the index.json annotation io.rkt.bundle.v1 (`rkt image bundle inspect`). Manifests are kept",
          "byte for byte. `rkt image load` checks it against the receiving machine's trust.",
        ].join("\n"),
        flags: {
          ...copyFlags,
          output: stringFlag("FILE", "the archive to write", { short: "o", complete: "file" }),
          format: stringFlag("FORMAT", "oci-archive or docker-archive", { default: "oci-archive" }),
          json: boolFlag("print a JSON list of what was saved (with --bundle: the bundle's description)"),
          bundle: boolFlag("a signed bundle: images, their signatures and the keys that made them"),
          signature: stringFlag("FILE", "with --bundle, after an ACI: its detached signature", {
            multiple: true,
            complete: "file",
          }),
          lookaside: stringFlag("DIR", "with --bundle: the simple-signing lookaside to read", {
            complete: "dir",
          }),
          "signature-policy": stringFlag("FILE", "with --bundle: the policy.json naming the keys to carry", {
            complete: "file",
          }),
        },
        args: "image",
        load: async () => (await import("./commands/image-copy.js")).imageSaveCommand,
      },
      {
        name: "load",
        summary: "Load a signed bundle, an OCI archive or a docker archive into the store",
        usage: "[--trust-bundle-keys [--skip-fingerprint-review]] [--format=text|json] [-q] FILE",
        help: [
          "Loads every image of FILE. A bundle's images are admitted by THIS machine's trust before any",
          "of their blobs is read: OCI images by its policy.json (transport docker, the image's name, the",
          "signatures in the bundle; the same files `rkt fetch` finds, or --signature-policy), or by keys",
          "the keystore trusts for REGISTRY/REPOSITORY when there is no policy; ACIs by the keystore,",
          "verified over their bytes before they are stored. Keys in the bundle are never trusted on",
          "their own: --trust-bundle-keys stores them in the local keystore, for the names they signed,",
          "after the fingerprint review of `rkt trust` (a terminal, or --skip-fingerprint-review).",
          "A plain OCI or docker archive loads as `rkt fetch` imports it. Prints one line per image",
          "(loaded, present, refused with why); exit 254 when any was refused. Run again after an",
          "interruption: what was stored is not read again. --insecure-options=image checks nothing.",
        ].join("\n"),
        flags: {
          "trust-bundle-keys": boolFlag("trust the bundle's keys after the fingerprint review"),
          "skip-fingerprint-review": boolFlag("with --trust-bundle-keys: accept keys without confirmation"),
          "signature-policy": stringFlag("FILE", "the policy.json to admit images by", { complete: "file" }),
          os: copyFlags["os"]!,
          arch: copyFlags["arch"]!,
          variant: copyFlags["variant"]!,
          parallel: stringFlag("N", "images at once", { default: "4" }),
          format: formatFlag("json: a list of {image,status,id,error}"),
          quiet: quietFlag("print only refusals"),
        },
        args: "file",
        load: async () => (await import("./commands/image-bundle.js")).imageLoadCommand,
      },
      {
        name: "bundle",
        summary: "Inspect a signed bundle",
        flags: {},
        children: [
          {
            name: "inspect",
            summary: "Print what a bundle holds: images, signatures, keys",
            usage: "[--format=text|json] FILE",
            flags: { format: formatFlag("json: the io.rkt.bundle.v1 description") },
            args: "file",
            load: async () => (await import("./commands/image-bundle.js")).imageBundleInspectCommand,
          },
        ],
      },
      {
        name: "serve",
        summary: "Serve the store read-only as an OCI registry (a mirror for other nodes)",
        usage: "--listen HOST:PORT [--tls-cert FILE --tls-key FILE] [-q]",
        help: [
          "Serves the stored OCI images over the distribution API (GET and HEAD of /v2/, manifests by",
          "tag or digest, blobs with Range, tags lists, _catalog) until SIGINT/SIGTERM; every write is",
          "405. A stored ORIGIN/app:v1 answers as app:v1 (what a registries.conf mirror entry with",
          "location = HOST:PORT for prefix = ORIGIN asks for) and as ORIGIN/app:v1. A blob is served",
          "only under a repository one of whose images references it. --debug logs each request.",
        ].join("\n"),
        flags: {
          listen: stringFlag("HOST:PORT", "address to listen on (port 0: any free port, printed)"),
          "tls-cert": stringFlag("FILE", "serve HTTPS with this PEM certificate chain", { complete: "file" }),
          "tls-key": stringFlag("FILE", "the certificate's PEM key", { complete: "file" }),
          format: formatFlag("json: {url} once listening"),
          quiet: quietFlag("do not print the listening address"),
        },
        args: "none",
        load: async () => (await import("./commands/image-serve.js")).imageServeCommand,
      },
      {
        name: "sync",
        summary: "Sync many images to a registry, an OCI layout or the store",
        usage: "(--config FILE | --src docker://HOST/REPO[:TAG]) [flags] DESTINATION",
        help: [
          "Copies every image a skopeo-sync YAML config names (registry: images, images-by-tag-regex,",
          "tls-verify, credentials, cert-dir), or one repository's tags (--src), to DESTINATION:",
          "docker://HOST[:PORT][/PREFIX] (mirror pre-warming), oci:DIR (one layout for every image, each",
          "under REGISTRY/REPO:TAG) or rkt: (the store, as `rkt fetch` would, policy admission included).",
          "An image whose digest the destination already has costs one HEAD per side and sends nothing;",
          "a changed one sends only missing blobs. A failing image is reported and the rest synced;",
          "exit 254 when any failed. Run it again after an interruption: what was committed is not sent.",
          "Simple-signing signatures (the source's lookaside and registry extension) go along to the",
          "destination's lookaside named in registries.d (a file:// one) and its signatures extension",
          "when it announces one; for rkt: into this node's lookaside. Blobs already there are skipped.",
        ].join("\n"),
        flags: {
          config: stringFlag("FILE", "skopeo-sync YAML naming the images", { complete: "file" }),
          src: stringFlag("docker://HOST/REPO[:TAG]", "one repository (every tag without :TAG)"),
          all: boolFlag("every platform of an index (default: the host's, or --os/--arch/--variant)"),
          scoped: boolFlag("prefix destination repositories with the source registry"),
          "dry-run": boolFlag("compare only; list what would be copied as `planned`"),
          "remove-signatures": boolFlag("do not carry signatures"),
          "keep-going": boolFlag("false: stop at the first failure", { default: true }),
          parallel: stringFlag("N", "images at once", { default: "4" }),
          format: formatFlag("text (one line per image) or json (a list of results)"),
          quiet: quietFlag("print only failures"),
          authfile: copyFlags["authfile"]!,
          "src-creds": copyFlags["src-creds"]!,
          "src-tls-verify": copyFlags["src-tls-verify"]!,
          "src-cert-dir": copyFlags["src-cert-dir"]!,
          "dest-creds": copyFlags["dest-creds"]!,
          "dest-tls-verify": copyFlags["dest-tls-verify"]!,
          "dest-cert-dir": copyFlags["dest-cert-dir"]!,
          os: copyFlags["os"]!,
          arch: copyFlags["arch"]!,
          variant: copyFlags["variant"]!,
        },
        load: async () => (await import("./commands/image-sync.js")).imageSyncCommand,
      },
      { ...fetchSpec, hidden: true },
      {
        name: "validate",
        summary: "Validate images, image layouts, archives and manifests",
        usage: "[--type=TYPE] [--format=text|json] PATH...",
        help: [
          "Checks each PATH and prints `PATH: ok` or one `PATH: invalid: <json path>: <reason>` line per",
          "problem found (every problem, not only the first). Exits 254 if any input is invalid.",
          "",
          "Types (detected when --type is not given):",
          "  layout          OCI image layout directory, or a tar archive of one: every reachable blob's",
          "                  digest and size, every index, manifest and config; or a layout's",
          "                  oci-layout file alone: its imageLayoutVersion",
          "  aci             appc image archive (any compression): entries and manifest",
          "  docker-archive  `docker save` archive: manifest.json, configs, layer diff_ids",
          "  oci-manifest, oci-index, oci-config, descriptor, image-manifest, pod-manifest",
          "                  single JSON documents (OCI/Docker, appc)",
        ].join("\n"),
        flags: {
          type: stringFlag("TYPE", "validate every PATH as TYPE"),
          format: formatFlag("json: an array of {path,type,ok,issues:[{path,message}]}"),
          quiet: quietFlag("print only the inputs that are invalid"),
        },
        load: async () => (await import("./commands/image-validate.js")).imageValidateCommand,
      },
    ],
  },
  {
    name: "trust",
    summary: "Trust a key for image verification",
    usage: "[--prefix=PREFIX] [--insecure-allow-http] [--skip-fingerprint-review] [--root] [PUBKEY ...]",
    help: [
      "Stores each PUBKEY (a path or an https URL; http with --insecure-allow-http) in the local",
      "config dir, trusted for images whose name is under PREFIX (or every image with --root).",
      "Without PUBKEY, keys are found by appc discovery of PREFIX (ac-discovery-pubkeys).",
      "The fingerprint is reviewed on a terminal unless --skip-fingerprint-review.",
    ].join("\n"),
    flags: {
      prefix: stringFlag("PREFIX", "prefix to limit trust to"),
      root: boolFlag("add root key from filesystem without a prefix"),
      "skip-fingerprint-review": boolFlag("accept key without fingerprint confirmation"),
      "insecure-allow-http": boolFlag("allow HTTP use for key discovery and/or retrieval"),
      format: formatFlag("json: [{location,prefix,root,fingerprint,path,trusted}]"),
      quiet: quietFlag("no key descriptions (without a review) or pubkey: lines"),
    },
    load: async () => (await import("./commands/trust.js")).trustCommand,
    children: [
      {
        name: "list",
        summary: "List trusted keys",
        usage: "[--prefix NAME] [--format text|json]",
        flags: {
          prefix: stringFlag("NAME", "only the keys that verify images named NAME"),
          format: formatFlag("json: [{prefix,root,fingerprint,layer,path,identities}]"),
          quiet: quietFlag("print only the fingerprints"),
        },
        args: "none",
        load: async () => (await import("./commands/trust-list.js")).trustListCommand,
      },
      {
        name: "rm",
        summary: "Remove a trusted key from the local config dir",
        usage: "FINGERPRINT [--prefix PREFIX | --root]",
        flags: {
          prefix: stringFlag("PREFIX", "the prefix the key is trusted for"),
          root: boolFlag("the key is a root key"),
          format: formatFlag("json: {fingerprint,prefix,root,path}"),
        },
        args: "none",
        load: async () => (await import("./commands/trust-rm.js")).trustRmCommand,
      },
    ],
  },
  ...podCommands,
  {
    name: "completion",
    summary: "Print a shell completion script (bash, zsh or fish)",
    usage: "bash|zsh|fish",
    help: [
      "bash: source <(rkt completion bash), or save it as /usr/share/bash-completion/completions/rkt",
      "zsh:  source <(rkt completion zsh) in ~/.zshrc (through zsh's bashcompinit)",
      "fish: rkt completion fish > ~/.config/fish/completions/rkt.fish",
      "`npm run setup` as root installs the bash script (and the man pages, and rkt on PATH).",
    ].join("\n"),
    flags: {},
    args: ["bash", "zsh", "fish"],
    load: async () => (await import("./commands/completion.js")).completionCommand,
  },
  {
    name: "man",
    summary: "Print the man page of a command, or write every page with --output",
    usage: "[--output DIR] [COMMAND...]",
    help: "Pages: rkt(1), rkt-fetch(1), rkt-image(1), rkt-image-list(1)… (man -l FILE shows one).",
    flags: {
      output: stringFlag("DIR", "write every page to DIR (e.g. /usr/local/share/man/man1)", {
        short: "o",
        complete: "dir",
      }),
      quiet: boolFlag("do not print the paths written", { short: "q" }),
    },
    args: "none",
    load: async () => (await import("./commands/completion.js")).manCommand,
  },
  {
    name: "version",
    summary: "Print the version and exit",
    flags: { format: formatFlag("json: {rkt,appc,node,os,arch}") },
    args: "none",
  },
  { name: "help", summary: "Help about any command", usage: "[COMMAND...]", flags: {}, args: "none" },
];

/** Our version, from the package's own package.json (the same file in src/ and dist/ layouts). */
export function rktVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version?: string;
  };
  return pkg.version ?? "0.0.0";
}

/** The command tree (what help, completion and man pages are made from). */
export function commandTree(): readonly CommandSpec[] {
  return commands;
}

// cobra EnablePrefixMatching: an exact name wins, else a unique prefix.
function lookup(list: readonly CommandSpec[], word: string): CommandSpec | "ambiguous" | undefined {
  const exact = list.find((c) => c.name === word);
  if (exact !== undefined) return exact;
  const matches = list.filter((c) => c.name.startsWith(word) && c.hidden !== true);
  if (matches.length === 1) return matches[0];
  return matches.length > 1 ? "ambiguous" : undefined;
}

/** I/O of one `rkt` invocation; everything defaults to the process's own. */
export interface MainIO {
  stdout?: Writable | undefined;
  stderr?: Writable | undefined;
  stdin?: Readable | undefined;
  env?: Readonly<Record<string, string | undefined>> | undefined;
  cwd?: string | undefined;
  /** Effective uid, for the default `--dir` (root: /var/lib/rkt). */
  uid?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Hears the path of the command the words name, once resolved (the code cache's key). */
  onCommand?: ((path: readonly string[]) => void) | undefined;
}

/**
 * How an error is printed (rkt's stderr logger): `<prefix>: <message>`; with `debug` also the
 * cause chain as an indented tree (pkg/log: `└─` per level) and the error code (or the stack of
 * an unexpected error). Pure.
 */
export function formatError(prefix: string, e: unknown, debug: boolean): string {
  const message = e instanceof Error ? e.message : String(e);
  let out = `${prefix}: ${message}\n`;
  if (!debug) return out;
  let cause: unknown = e instanceof Error ? e.cause : undefined;
  let depth = 1;
  while (cause !== undefined && depth < 32) {
    const text = cause instanceof Error ? cause.message : (JSON.stringify(cause) ?? "undefined");
    out += `${"  ".repeat(depth)}└─${text}\n`;
    cause = cause instanceof Error ? cause.cause : undefined;
    depth++;
  }
  if (isRktError(e)) out += `${prefix}: error code: ${e.code}\n`;
  else if (e instanceof Error && e.stack !== undefined) out += `${e.stack}\n`;
  return out;
}

/** The command a command line names: its path in the tree and the words left for it. */
interface Resolved {
  readonly path: readonly CommandSpec[];
  readonly rest: readonly string[];
}

function resolveCommand(words: readonly string[]): Resolved {
  const rest = [...words];
  const path: CommandSpec[] = [];
  let list: readonly CommandSpec[] | undefined = commands;
  while (list !== undefined && rest.length > 0 && !(rest[0] ?? "").startsWith("-")) {
    const word = rest[0] ?? "";
    const parent = path[path.length - 1];
    // A command that runs itself and has subcommands (`rkt trust KEY` / `rkt trust list`): only
    // exact subcommand names count, so a key file called "l" is not taken for "list".
    const found: CommandSpec | "ambiguous" | undefined =
      parent?.load !== undefined ? list.find((c) => c.name === word) : lookup(list, word);
    if (found === "ambiguous") {
      throw new UsageError(`ambiguous command ${JSON.stringify(word)}; run 'rkt help' for usage`, {
        showUsage: false,
      });
    }
    if (found === undefined) {
      if (path.length === 0 || (parent?.children !== undefined && parent.load === undefined)) {
        const where = ["rkt", ...path.map((c) => c.name)].join(" ");
        throw new UsageError(
          `unknown command ${JSON.stringify(word)} for "${where}"; run '${where} --help' for usage`,
          { showUsage: false },
        );
      }
      break;
    }
    path.push(found);
    rest.shift();
    list = found.children;
    if (found.name === "help") break;
  }
  return { path, rest };
}

/**
 * Parses the words after a command path as `rkt <path…>` would (for tests of commands that
 * read tokens in order, such as fetch's `--signature`). UsageError on a bad flag.
 */
export function parseCommandArgs(path: readonly string[], argv: readonly string[]): ParsedArgs {
  const r = resolveCommand(path);
  const cmd = r.path[r.path.length - 1];
  return parseCommandLine(argv, cmd?.flags ?? {}, { interspersed: cmd?.interspersed });
}

function versionText(): string {
  return (
    `rkt Version: ${rktVersion()}\nappc Version: ${appcVersion}\nNode Version: ${process.version}\n` +
    `Node OS/Arch: ${process.platform}/${process.arch}\n`
  );
}

/**
 * Runs one `rkt` command line (without the `node rkt` prefix) and returns the exit status; never
 * throws and never calls `process.exit`. Errors are printed here and only here: one line
 * `<command>: <message>` on stderr, exit 254 (with `--debug`, the cause chain and the error code);
 * a bad flag is followed by the command's usage line.
 */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  let prefix = "rkt";
  let debug = argv.includes("--debug");
  let path: readonly CommandSpec[] = [];
  try {
    const split = splitGlobalFlags(argv, env, cwd, io.uid ?? process.getuid?.() ?? 0);
    debug = split.globals.debug;
    const resolved = resolveCommand(split.rest);
    path = resolved.path;
    io.onCommand?.(path.map((c) => c.name));
    const rest = resolved.rest;
    const cmd = path[path.length - 1];
    if (cmd !== undefined) prefix = cmd.name;
    if (cmd === undefined) {
      if (split.help) {
        stdout.write(helpText(commands, [], globalFlags));
        return ExitCode.Ok;
      }
      if (rest.length > 0) {
        const top = parseCommandLine(rest, rootFlags);
        if (top.bool("version")) {
          stdout.write(versionText());
          return ExitCode.Ok;
        }
      }
      stderr.write(`missing command\n${helpText(commands, [], globalFlags)}`);
      return ExitCode.MissingCommand;
    }
    if (split.help) {
      stdout.write(helpText(commands, path, globalFlags));
      return ExitCode.Ok;
    }
    if (cmd.name === "help") {
      const target: CommandSpec[] = [];
      let l: readonly CommandSpec[] | undefined = commands;
      for (const w of rest) {
        const f: CommandSpec | "ambiguous" | undefined = l === undefined ? undefined : lookup(l, w);
        if (f === undefined || f === "ambiguous")
          throw new UsageError(`unknown help topic ${JSON.stringify(w)}`, { showUsage: false });
        target.push(f);
        l = f.children;
      }
      stdout.write(helpText(commands, target, globalFlags));
      return ExitCode.Ok;
    }
    const args =
      cmd.ownGrammar === true
        ? parseCommandLine([], {})
        : parseCommandLine(rest, cmd.flags ?? {}, { interspersed: cmd.interspersed });
    if (cmd.name === "version") {
      if (args.positionals.length > 0)
        throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
      if (args.string("format") === "json") {
        stdout.write(
          `${JSON.stringify({ rkt: rktVersion(), appc: appcVersion, node: process.version, os: process.platform, arch: process.arch })}\n`,
        );
      } else stdout.write(versionText());
      return ExitCode.Ok;
    }
    if (cmd.load === undefined) {
      if (args.positionals.length === 0) {
        stderr.write(helpText(commands, path, globalFlags));
        return ExitCode.MissingCommand;
      }
      throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
    }
    for (const n of args.notices) stderr.write(`${n}\n`);
    const run = await cmd.load();
    const ctx: CommandContext = {
      stdout,
      stderr,
      stdin: io.stdin ?? process.stdin,
      env,
      cwd,
      globals: split.globals,
      signal: io.signal ?? new AbortController().signal,
      args,
    };
    return await run(rest, ctx);
  } catch (e) {
    stderr.write(formatError(prefix, e, debug));
    if (e instanceof UsageError && e.showUsage) stderr.write(`${usageLine(path)}\n`);
    return ExitCode.Error;
  }
}

export { UsageError };

/**
 * The `bin/rkt.js` entry: runs {@link main} on `process.argv`, aborting on SIGINT/SIGTERM, and sets
 * `process.exitCode` (so pending output is flushed before exit).
 */
export async function run(onCommand?: (path: readonly string[]) => void): Promise<void> {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.exitCode = await main(process.argv.slice(2), { signal: ac.signal, onCommand });
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}
