// The `rkt` entry point: global flags, command lookup (cobra-style prefix matching), help and
// version, and the ONE place where errors become text and exit statuses (STYLE §2.8). Commands are
// imported lazily so that each pays only for the modules it uses.
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { isRktError } from "@rkt/oci";
import type { Command, CommandContext } from "./context.js";
import { globalFlagHelp, splitGlobalFlags } from "./globals.js";

/** Exit statuses, as rkt: 0 success, 254 any error, 2 missing command. */
export const ExitCode = { Ok: 0, MissingCommand: 2, Error: 254 } as const;

/** The appc spec version our manifests follow (what `rkt version` reports as "appc Version"). */
export const appcVersion = "0.8.11";

interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Usage after `rkt <path>`. */
  readonly usage?: string | undefined;
  /** Help body: flags and details. */
  readonly help?: string | undefined;
  readonly load?: (() => Promise<Command>) | undefined;
  readonly children?: readonly CommandSpec[] | undefined;
  /** Not listed in help (rkt's hidden aliases such as `image fetch`). */
  readonly hidden?: boolean | undefined;
}

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
    "Flags:",
    "  --pull-policy=POLICY  new, update (default) or never; local sources are always imported",
    "  --store-only          deprecated: --pull-policy=never",
    "  --no-store            deprecated: --pull-policy=update",
    "  --parallel=N          registry blobs downloaded at once (default 4)",
    "  --os, --arch, --variant  platform to pick from an index (default the host's)",
    "  --quiet, -q           no progress or informational lines on stderr",
    "  --full                print the full image ID",
    "  --no-render           do not render the images into the tree store (done as root with overlayfs)",
    "  --signature=FILE      detached signature of the image just before it",
    "  --signature-policy=FILE  policy.json for registry images (containers-policy.json(5))",
    "  --convert=aci         also store each OCI/Docker image as a squashed ACI and print its ID",
    "                        (converted once per manifest digest; a re-fetch of an unchanged tag reuses it)",
    "  --format=json         print one JSON array of {id,kind,name,digests,bytes}",
    "                        (registry pulls and docker-archives add bytesDownloaded, bytesReused)",
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
  load: async () => (await import("./commands/fetch.js")).fetchCommand,
};

const runUsage = "[POD FLAGS] IMAGE [APP FLAGS] [-- ARGS...] [--- IMAGE [APP FLAGS] [-- ARGS...]]...";

const runHelp = [
  "IMAGE is a stored image (name or ID) or anything `rkt fetch` takes; a name not in the store",
  "is fetched (--pull-policy=new, the default: only when missing; update: always; never).",
  "Several images make one pod: their apps share its network, IPC and UTS namespaces.",
  "",
  "Pod flags (before the first image):",
  "  --net=host|none|default   default: a private network namespace with loopback only (no CNI);",
  "                            host: the host's network; none: as default",
  "  --hostname=NAME           the pod's host name (default rkt-<uuid>)",
  "  --volume=NAME,kind=host,source=PATH[,readOnly=true] | NAME,kind=empty[,mode=,uid=,gid=]",
  "  --mount=volume=NAME,target=PATH   mount a volume in every app (after an image: that app)",
  "  --set-env=NAME=VALUE      environment variable for every app",
  "  --inherit-env             pass rkt's environment to the apps (under theirs)",
  "  --interactive             the app gets rkt's stdin and terminal (one app only)",
  "  --uuid-file-save=FILE     write the pod UUID to FILE",
  "  --stage1=runc|crun|nspawn|fly, --stage1-name=coreos.com/rkt/stage1-fly (rkt's names)",
  "                            default: the first that can run the pod here (--debug says which)",
  "  --no-overlay              flattened copies instead of overlay mounts over the tree store",
  "  --pull-policy=new|update|never, --quiet",
  "",
  "App flags (after its image):",
  "  --exec=CMD, --user=USER, --group=GROUP, --name=NAME, --working-dir=DIR,",
  "  --environment=NAME=VALUE, --mount=volume=NAME,target=PATH, --signature=FILE",
].join("\n");

const podCommands: readonly CommandSpec[] = [
  {
    name: "run",
    summary: "Run image(s) in a pod",
    usage: runUsage,
    help: [runHelp, "", "The exit status is the first failing app's, else 0."].join("\n"),
    load: async () => (await import("./commands/run.js")).runCommand,
  },
  {
    name: "prepare",
    summary: "Prepare a pod to run later with run-prepared",
    usage: runUsage,
    help: runHelp,
    load: async () => (await import("./commands/run.js")).prepareCommand,
  },
  {
    name: "run-prepared",
    summary: "Run a prepared pod",
    usage: "[--net=host|none|default] [--hostname=NAME] [--interactive] [--inherit-env] UUID",
    load: async () => (await import("./commands/run.js")).runPreparedCommand,
  },
  {
    name: "list",
    summary: "List pods",
    usage: "[--no-legend] [--full] [--format=json]",
    load: async () => (await import("./commands/pods.js")).listCommand,
  },
  {
    name: "status",
    summary: "Check the status of a pod",
    usage: "[--wait[=DURATION]] [--format=json] UUID",
    load: async () => (await import("./commands/pods.js")).statusCommand,
  },
  {
    name: "enter",
    summary: "Enter the namespaces of an app within a running pod",
    usage: "[--app=NAME] UUID [CMD [ARGS...]]",
    help: "CMD defaults to /bin/sh (rkt: /bin/bash, which small images lack).",
    load: async () => (await import("./commands/pods.js")).enterCommand,
  },
  {
    name: "stop",
    summary: "Stop a pod",
    usage: "[--force] UUID...",
    load: async () => (await import("./commands/pods.js")).stopCommand,
  },
  {
    name: "rm",
    summary: "Remove all files and resources associated with an exited pod",
    usage: "UUID...",
    load: async () => (await import("./commands/pods.js")).rmCommand,
  },
  {
    name: "gc",
    summary: "Garbage collect pods exited for longer than the grace period",
    usage: "[--grace-period=DURATION] [--expire-prepared=DURATION] [--mark-only]",
    help: [
      "Exited pods move to exited-garbage (their mounts and runtime state removed); after the",
      "grace period (default 30m0s) they are deleted with their GC roots, so `rkt image gc` can",
      "then reclaim their images and trees. Prepared pods never run expire after 24h0m0s.",
    ].join("\n"),
    load: async () => (await import("./commands/pods.js")).gcCommand,
  },
  {
    name: "cat-manifest",
    summary: "Inspect and print the pod manifest",
    usage: "[--pretty-print=true|false] UUID",
    load: async () => (await import("./commands/pods.js")).catManifestCommand,
  },
];

const commands: readonly CommandSpec[] = [
  fetchSpec,
  {
    name: "image",
    summary: "Operate on image(s) in the local store",
    children: [
      {
        name: "list",
        summary: "List images in the local store",
        usage:
          "[--fields=LIST] [--sort=LIST] [--order=asc|desc] [--no-legend] [--full] [--format=json|json-pretty]",
        help: [
          "Flags:",
          "  --fields=LIST   comma-separated: id,name,size,importtime,lastused (default all)",
          "  --sort=LIST     comma-separated: name,importtime,lastused,size (default importtime)",
          "  --order=ORDER   asc (default) or desc",
          "  --no-legend     suppress the header line",
          "  --full          full IDs, sizes in bytes, absolute times",
          "  --format=FMT    json or json-pretty: [{id,name,import_time,last_used_time,size}], times in ns",
        ].join("\n"),
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
        load: async () => (await import("./commands/image-rm.js")).imageRmCommand,
      },
      {
        name: "gc",
        summary: "Garbage collect local store",
        usage: "[--grace-period=DURATION] [--trees-only|--images-only]",
        help: [
          "Removes rendered trees no pod uses, then images not used within the grace period",
          "(oldest first), then blobs, ingests and temp files nothing needs.",
          "",
          "Flags:",
          "  --grace-period=DURATION  Go duration (default 24h0m0s; e.g. 30m, 0s)",
          "  --trees-only             only remove rendered trees",
          "  --images-only            only remove images (and their blobs), not trees",
        ].join("\n"),
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
        load: async () => (await import("./commands/image-cat-manifest.js")).imageCatManifestCommand,
      },
      {
        name: "export",
        summary: "Export a stored image to an ACI file (OCI images: an OCI archive)",
        usage: "[--overwrite] IMAGE OUTPUT_ACI_FILE",
        load: async () => (await import("./commands/image-export.js")).imageExportCommand,
      },
      {
        name: "extract",
        summary: "Extract a stored image to a directory",
        usage: "[--rootfs-only] [--overwrite] IMAGE OUTPUT_DIR",
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
          "",
          "Flags:",
          "  --rootfs-only  OUTPUT_DIR is the rootfs itself",
          "  --overwrite    replace an existing OUTPUT_DIR (our mount there is unmounted first)",
          "  --flatten      always write a flattened copy",
        ].join("\n"),
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
          "",
          "Flags:",
          "  --squash          one ACI for the whole image (default)",
          "  --no-squash       one ACI per layer with dependencies",
          "  -o, --output DIR  write .aci files to DIR instead of importing them",
          "  --compression     gzip or none, for files (default gzip)",
        ].join("\n"),
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
          "",
          "Flags:",
          "  --all                       copy an index with every image it lists",
          "  --os, --arch, --variant     platform taken from an index (also --override-os/-arch/-variant)",
          "  --format=text|json          output",
          "  --authfile FILE             containers auth.json to read credentials from",
          "  --creds USER:PASS           credentials for both sides (--src-creds, --dest-creds per side)",
          "  --src-tls-verify=false      plain HTTP or unverified TLS for the source (--dest-tls-verify too)",
          "  --src-cert-dir DIR          CAs (*.crt) and client certificates (*.cert, *.key) for the source",
          "                              registry instead of certs.d (--dest-cert-dir too)",
          "  --overwrite                 replace an existing archive file",
          "  --parallel N                blobs at once (default 4)",
          "  --chunk-size BYTES          upload larger blobs in PATCH chunks",
          "  -q, --quiet                 no per-blob lines on stderr",
        ].join("\n"),
        load: async () => (await import("./commands/image-copy.js")).imageCopyCommand,
      },
      {
        name: "push",
        summary: "Push a stored image to a registry",
        usage: "[flags] IMAGE docker://HOST/REPO[:TAG]",
        help: [
          "Pushes IMAGE (an OCI image in the store, by name or ID) as `image copy rkt:IMAGE DEST` does:",
          "blobs first (skipped when present, mounted within the registry), the manifest last. Takes the",
          "flags of `rkt image copy`.",
        ].join("\n"),
        load: async () => (await import("./commands/image-copy.js")).imagePushCommand,
      },
      {
        name: "save",
        summary: "Save stored images into one OCI or docker archive",
        usage: "-o FILE [--format=oci-archive|docker-archive] [--overwrite] IMAGE...",
        help: [
          "Writes the stored images into one archive, each under NAME:TAG: an OCI archive lists them in",
          "index.json (skopeo, umoci and `rkt fetch oci-archive:FILE:NAME:TAG` read it); a docker-archive",
          "in manifest.json as RepoTags, layers uncompressed (`docker load`, skopeo and",
          "`rkt fetch docker-archive:` read it). The file appears only when complete; an existing file",
          "is refused unless --overwrite.",
        ].join("\n"),
        load: async () => (await import("./commands/image-copy.js")).imageSaveCommand,
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
          "",
          "Flags:",
          "  --listen HOST:PORT          address to listen on (port 0: any free port, printed)",
          "  --tls-cert, --tls-key FILE  serve HTTPS with this PEM certificate chain and key",
          "  -q, --quiet                 do not print the listening address",
        ].join("\n"),
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
          "",
          "Flags:",
          "  --all                   every platform of an index (default: the host's, or --os/--arch/--variant)",
          "  --scoped                prefix destination repositories with the source registry",
          "  --dry-run               compare only; list what would be copied as `planned`",
          "  --keep-going=false      stop at the first failure",
          "  --parallel N            images at once (default 4)",
          "  --format=text|json      one line per image, or a JSON list of results",
          "  --src-creds, --src-tls-verify, --src-cert-dir    for --src",
          "  --dest-creds, --dest-tls-verify, --dest-cert-dir, --authfile",
          "  -q, --quiet             print only failures",
        ].join("\n"),
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
          "",
          "Flags:",
          "  --type=TYPE         validate every PATH as TYPE",
          "  --format=text|json  json prints an array of {path,type,ok,issues:[{path,message}]}",
        ].join("\n"),
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
      "",
      "Subcommands (beyond rkt):",
      "  list [--prefix NAME] [--format text|json]  keys trusted (for images named NAME)",
      "  rm FINGERPRINT [--prefix P | --root]        remove a local key",
    ].join("\n"),
    load: async () => (await import("./commands/trust.js")).trustCommand,
    children: [
      {
        name: "list",
        summary: "List trusted keys",
        usage: "[--prefix NAME] [--format text|json]",
        load: async () => (await import("./commands/trust-list.js")).trustListCommand,
      },
      {
        name: "rm",
        summary: "Remove a trusted key from the local config dir",
        usage: "FINGERPRINT [--prefix PREFIX | --root]",
        load: async () => (await import("./commands/trust-rm.js")).trustRmCommand,
      },
    ],
  },
  ...podCommands,
  { name: "version", summary: "Print the version and exit" },
  { name: "help", summary: "Help about any command", usage: "[COMMAND...]" },
];

/** Our version, from the package's own package.json (the same file in src/ and dist/ layouts). */
export function rktVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version?: string;
  };
  return pkg.version ?? "0.0.0";
}

// cobra EnablePrefixMatching: an exact name wins, else a unique prefix.
function lookup(list: readonly CommandSpec[], word: string): CommandSpec | "ambiguous" | undefined {
  const exact = list.find((c) => c.name === word);
  if (exact !== undefined) return exact;
  const matches = list.filter((c) => c.name.startsWith(word));
  if (matches.length === 1) return matches[0];
  return matches.length > 1 ? "ambiguous" : undefined;
}

function helpText(path: readonly CommandSpec[]): string {
  const cmd = path[path.length - 1];
  const full = ["rkt", ...path.map((c) => c.name)].join(" ");
  const lines: string[] = [];
  if (cmd === undefined) {
    lines.push("rkt - the image side of rkt: fetch, verify, store, render and run container images", "");
    lines.push("USAGE:", "  rkt [global options] <command> [command options] [arguments...]", "");
  } else {
    lines.push(`${full} - ${cmd.summary}`, "");
    const usage = cmd.usage ?? (cmd.children !== undefined ? "<command> [arguments...]" : "");
    lines.push("USAGE:", `  ${full} ${usage}`.trimEnd(), "");
    if (cmd.help !== undefined) lines.push(cmd.help, "");
  }
  const children = cmd === undefined ? commands : cmd.children;
  if (children !== undefined) {
    lines.push("COMMANDS:");
    for (const c of children.filter((x) => x.hidden !== true))
      lines.push(`  ${c.name.padEnd(12)} ${c.summary}`);
    lines.push("");
  }
  lines.push("GLOBAL OPTIONS:");
  for (const [flag, text] of globalFlagHelp) lines.push(`  ${flag.padEnd(26)} ${text}`);
  lines.push(
    "",
    `Run '${full} <command> --help' for more information on a command.`.replace("rkt rkt", "rkt"),
  );
  return `${lines.join("\n")}\n`;
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

function printError(stderr: Writable, prefix: string, e: unknown, debug: boolean): void {
  stderr.write(formatError(prefix, e, debug));
}

function isParseArgsError(e: unknown): boolean {
  return (
    e instanceof Error && "code" in e && String((e as { code: unknown }).code).startsWith("ERR_PARSE_ARGS")
  );
}

/**
 * Runs one `rkt` command line (without the `node rkt` prefix) and returns the exit status; never
 * throws and never calls `process.exit`. Errors are printed here and only here: one line
 * `<command>: <message>` on stderr, exit 254 (with `--debug`, the cause chain and the error code).
 */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  let prefix = "rkt";
  let debug = argv.includes("--debug");
  try {
    const split = splitGlobalFlags(argv, env, cwd, io.uid ?? process.getuid?.() ?? 0);
    debug = split.globals.debug;
    const rest = [...split.rest];
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
        throw new UsageError(`ambiguous command ${JSON.stringify(word)}; run 'rkt help' for usage`);
      }
      if (found === undefined) {
        if (path.length === 0 || (parent?.children !== undefined && parent.load === undefined)) {
          const where = ["rkt", ...path.map((c) => c.name)].join(" ");
          throw new UsageError(
            `unknown command ${JSON.stringify(word)} for "${where}"; run '${where} --help' for usage`,
          );
        }
        break;
      }
      path.push(found);
      rest.shift();
      list = found.children;
      if (found.name === "help") break;
    }
    const cmd = path[path.length - 1];
    if (cmd !== undefined) prefix = cmd.name;
    if (cmd === undefined) {
      if (split.help) {
        stdout.write(helpText([]));
        return ExitCode.Ok;
      }
      stderr.write(`missing command\n${helpText([])}`);
      return ExitCode.MissingCommand;
    }
    if (cmd.name === "help") {
      const target: CommandSpec[] = [];
      let l: readonly CommandSpec[] | undefined = commands;
      for (const w of rest) {
        const f: CommandSpec | "ambiguous" | undefined = l === undefined ? undefined : lookup(l, w);
        if (f === undefined || f === "ambiguous")
          throw new UsageError(`unknown help topic ${JSON.stringify(w)}`);
        target.push(f);
        l = f.children;
      }
      stdout.write(helpText(target));
      return ExitCode.Ok;
    }
    if (split.help) {
      stdout.write(helpText(path));
      return ExitCode.Ok;
    }
    if (cmd.name === "version") {
      stdout.write(
        `rkt Version: ${rktVersion()}\nappc Version: ${appcVersion}\nNode Version: ${process.version}\n` +
          `Node OS/Arch: ${process.platform}/${process.arch}\n`,
      );
      return ExitCode.Ok;
    }
    if (cmd.load === undefined) {
      stderr.write(helpText(path));
      return ExitCode.MissingCommand;
    }
    const run = await cmd.load();
    const ctx: CommandContext = {
      stdout,
      stderr,
      stdin: io.stdin ?? process.stdin,
      env,
      cwd,
      globals: split.globals,
      signal: io.signal ?? new AbortController().signal,
    };
    return await run(rest, ctx);
  } catch (e) {
    if (isParseArgsError(e) && e instanceof Error) {
      // node:util parseArgs errors: keep the first line, drop its advice about `--`.
      printError(stderr, prefix, new UsageError(e.message.split("\n")[0] ?? e.message), debug);
      return ExitCode.Error;
    }
    printError(stderr, prefix, e, debug);
    return ExitCode.Error;
  }
}

/** A bad command line (unknown command, bad flag). Printed like any error; exit 254. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * The `bin/rkt.js` entry: runs {@link main} on `process.argv`, aborting on SIGINT/SIGTERM, and sets
 * `process.exitCode` (so pending output is flushed before exit).
 */
export async function run(): Promise<void> {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.exitCode = await main(process.argv.slice(2), { signal: ac.signal });
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}
