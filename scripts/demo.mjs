#!/usr/bin/env node
// The project demo (`npm run demo`, after setup and build): runs the real `rkt` binary on the
// bundled example images, step by step, printing what each step does, the command and its
// output. Exits non-zero as soon as a step does not give the expected result.
//
// To extend it (fetch, trust, list, render, run…), add entries to `steps`: each has a title, the
// rkt arguments, the exit status expected and optionally text its output must contain, or a
// `setup` function that prepares files and returns extra arguments. A `background` step starts a
// long-running command (killed at the end) and goes on once its output contains that text.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const rkt = join(root, "packages", "cli", "bin", "rkt.js");
const examples = join(root, "examples");
const work = mkdtempSync(join(tmpdir(), "rkt-demo-"));
// The store the fetch steps use (rkt --dir), inside the temporary directory.
const storeDir = join(work, "store");
// Paths under the current directory are shown relative, others (the temporary copies) absolute.
const rel = (p) => {
  const r = relative(process.cwd(), p);
  return r === "" ? "." : r.startsWith("..") ? p : r;
};

// rkt --dir/--local-config/--system-config of the trust steps.
const trusted = [
  "--dir",
  join(work, "trusted-store"),
  "--local-config",
  join(work, "etc-rkt"),
  "--system-config",
  join(work, "lib-rkt"),
];

// rkt --dir/--local-config/--system-config of a second machine across an air gap.
const island = [
  "--dir",
  join(work, "island-store"),
  "--local-config",
  join(work, "island-etc"),
  "--system-config",
  join(work, "island-lib"),
];
const bundleFile = join(work, "site-bundle.tar");
// The address `rkt image serve` prints once it listens (set by the background step).
let served = "";

/** A copy of the signed example ACI, recompressed: still a valid ACI, but not the signed bytes. */
function tamperedAci() {
  const aci = join(work, "hello.aci");
  writeFileSync(aci, gzipSync(gunzipSync(readFileSync(join(examples, "hello.aci"))), { level: 1 }));
  cpSync(join(examples, "hello.aci.asc"), `${aci}.asc`);
  return [aci];
}

/** A copy of the example layout with one byte of its layer flipped. */
function corruptedLayout() {
  const dir = join(work, "hello-oci-corrupted");
  cpSync(join(examples, "hello-oci"), dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  const manifestHex = index.manifests[0].digest.split(":")[1];
  const manifest = JSON.parse(readFileSync(join(dir, "blobs", "sha256", manifestHex), "utf8"));
  const layer = join(dir, "blobs", "sha256", manifest.layers[0].digest.split(":")[1]);
  const bytes = readFileSync(layer);
  bytes[bytes.length - 5] ^= 0xff;
  writeFileSync(layer, bytes);
  return [rel(dir)];
}

const steps = [
  {
    title: "Show the rkt version",
    args: ["version"],
    expect: 0,
    contains: "rkt Version:",
  },
  {
    title: "Validate the bundled OCI image layout: oci-layout, index.json, and every blob's digest and size",
    args: ["image", "validate", rel(join(examples, "hello-oci"))],
    expect: 0,
    contains: ": ok",
  },
  {
    title: "Validate the bundled ACI: archive entries and the appc image manifest",
    args: ["image", "validate", rel(join(examples, "hello.aci"))],
    expect: 0,
    contains: ": ok",
  },
  {
    title: "Validate both as JSON (what scripts consume)",
    args: [
      "image",
      "validate",
      "--format",
      "json",
      rel(join(examples, "hello-oci")),
      rel(join(examples, "hello.aci")),
    ],
    expect: 0,
    contains: '"ok":true',
  },
  {
    title: "A layout whose layer has one flipped byte is refused, naming the blob (exit 254)",
    setup: corruptedLayout,
    args: ["image", "validate"],
    expect: 254,
    contains: "digest mismatch",
  },
  {
    title: "Fetch the ACI into a fresh store (no trusted key yet: --insecure-options=image); prints its ID",
    args: ["--dir", storeDir, "--insecure-options=image", "fetch", rel(join(examples, "hello.aci"))],
    expect: 0,
    contains: "sha512-",
  },
  {
    title:
      "Render it through the tree store (layers extracted once, shared) as a flattened copy of its rootfs",
    args: [
      "--dir",
      storeDir,
      "image",
      "render",
      "--flatten",
      "--rootfs-only",
      "example.com/hello",
      join(work, "hello-rootfs"),
    ],
    expect: 0,
  },
  {
    title: "Verify the rendered tree: its hash is recomputed and compared with the saved one",
    args: ["--dir", storeDir, "image", "verify", "example.com/hello"],
    expect: 0,
    contains: "successfully verified checksum for image",
  },
  {
    title: "Fetch the OCI layout; prints its manifest digest (blobs are stored as they are)",
    args: ["--dir", storeDir, "fetch", `oci:${rel(join(examples, "hello-oci"))}:latest`],
    expect: 0,
    contains: "sha256:",
  },
  {
    title: "List the store: ACI and OCI images side by side, as rkt prints them",
    args: ["--dir", storeDir, "image", "list"],
    expect: 0,
    contains: "hello-oci:latest",
  },
  {
    title: "Print the ACI's stored manifest (tab-indented)",
    args: ["--dir", storeDir, "image", "cat-manifest", "example.com/hello"],
    expect: 0,
    contains: '"acKind": "ImageManifest"',
  },
  {
    title: "Check the store: every blob re-hashed, index against disk (exit 0: clean)",
    args: ["--dir", storeDir, "image", "fsck"],
    expect: 0,
    contains: "0 problem(s)",
  },
  // Trust: a separate store and config dirs, so the steps above stay as they are.
  {
    title: "Without a trusted key, the signed ACI is refused before it is stored (exit 254)",
    args: [...trusted, "fetch", rel(join(examples, "hello.aci"))],
    expect: 254,
    contains: "openpgp: signature made by unknown entity",
  },
  {
    title:
      "Trust the bundled demo key for example.com/hello (on a terminal rkt asks to review the fingerprint)",
    args: [
      ...trusted,
      "trust",
      "--prefix",
      "example.com/hello",
      "--skip-fingerprint-review",
      rel(join(examples, "keys", "demo.pub.asc")),
    ],
    expect: 0,
    contains: 'Added key for prefix "example.com/hello"',
  },
  {
    title: "List the trusted keys",
    args: [...trusted, "trust", "list"],
    expect: 0,
    contains: "rkt demo signer",
  },
  {
    title: "Fetch the signed ACI: examples/hello.aci.asc is verified before the image becomes visible",
    args: [...trusted, "fetch", rel(join(examples, "hello.aci"))],
    expect: 0,
    contains: "image: signature verified:",
  },
  {
    title:
      "A copy with the same files but other bytes (recompressed) does not match the signature (exit 254)",
    setup: tamperedAci,
    args: [...trusted, "fetch"],
    expect: 254,
    contains: "signed digest did not match",
  },
  {
    title:
      "Run the verified image in a pod: runc (or the first stage1 that works here), app arguments after --",
    args: [
      ...trusted,
      "--debug",
      "run",
      "--uuid-file-save",
      join(work, "pod-uuid"),
      "example.com/hello",
      "--",
      "from",
      "the",
      "demo",
    ],
    expect: 0,
    contains: "args: from the demo",
  },
  {
    title: "Run it again with the fly stage1 (chroot, host namespaces): the rendered tree is reused",
    args: [...trusted, "run", "--stage1=fly", "example.com/hello"],
    expect: 0,
    contains: "Hello from a bundled rkt example image.",
  },
  {
    title: "List the pods: both exited, with their app and image",
    args: [...trusted, "list"],
    expect: 0,
    contains: "exited",
  },
  {
    title: "While a pod holds the image, image rm refuses it, naming the pod (exit 254)",
    args: [...trusted, "image", "rm", "example.com/hello"],
    expect: 254,
    contains: "is in use by pod-",
  },
  {
    title: "Collect exited pods (grace period 0): their mounts, runtime state and GC roots are removed",
    args: [...trusted, "gc", "--grace-period=0s"],
    expect: 0,
    contains: "garbage collected pod",
  },
  // Mirror pre-warming without a registry: the first store serves itself, a sync copies from it.
  {
    title: "Serve the first store read-only as a registry (in the background, any free port)",
    args: ["--dir", storeDir, "image", "serve", "--listen", "127.0.0.1:0"],
    background: "listening on http://",
  },
  {
    title: "Sync an image from that node into an OCI layout (an air-gap medium)",
    args: ["--insecure-options=http", "image", "sync"],
    setup: () => ["--src", `docker://${served}/hello-oci:latest`, `oci:${join(work, "mirror-layout")}`],
    expect: 0,
    contains: "copied docker://",
  },
  {
    title: "Sync again: the layout already holds that digest, nothing is sent",
    args: ["--insecure-options=http", "image", "sync"],
    setup: () => ["--src", `docker://${served}/hello-oci:latest`, `oci:${join(work, "mirror-layout")}`],
    expect: 0,
    contains: "unchanged docker://",
  },
  // A signed bundle: the ACI, its signature and the key that made it, loaded on another machine.
  {
    title: "Save the signed ACI as a bundle: the image, its .asc and the demo key, described in index.json",
    args: [...trusted, "image", "save", "--bundle", "-o", bundleFile, rel(join(examples, "hello.aci"))],
    expect: 0,
    contains: "signature by 6C9D FB8E",
  },
  {
    title:
      "Load it on a machine that trusts no key: the key inside the bundle is not trusted on its own (exit 254)",
    args: [...island, "image", "load", bundleFile],
    expect: 254,
    contains: "refused example.com/hello",
  },
  {
    title: "Trust the bundle's key for the name it signed (the fingerprint review of rkt trust), then load",
    args: [...island, "image", "load", "--trust-bundle-keys", "--skip-fingerprint-review", bundleFile],
    expect: 0,
    contains: "loaded example.com/hello sha512-",
  },
];

// Starts a long-running command, prints its first lines, and resolves once they contain `ready`.
function startBackground(args, ready) {
  const child = spawn(process.execPath, [rkt, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve) => {
    let out = "";
    const onData = (c) => {
      out += c.toString();
      if (out.includes(ready) && out.includes("\n")) resolve({ child, out });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", () => resolve({ child: undefined, out }));
  });
}

function indent(text) {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

let failed = false;
const background = [];
try {
  const names = readdirSync(examples);
  console.log(`demo: bundled examples in ${rel(examples)}: ${names.join(", ")}\n`);
  for (const [i, step] of steps.entries()) {
    const args = [...step.args, ...(step.setup ? step.setup() : [])];
    console.log(`[${i + 1}/${steps.length}] ${step.title}`);
    console.log(`  $ rkt ${args.join(" ")}${step.background ? " &" : ""}`);
    if (step.background) {
      const { child, out } = await startBackground(args, step.background);
      console.log(indent(out));
      if (child === undefined) {
        console.log("  -> FAILED: it exited\n");
        failed = true;
        break;
      }
      background.push(child);
      served = /http:\/\/([0-9.]+:[0-9]+)/.exec(out)?.[1] ?? "";
      console.log("  -> running\n");
      continue;
    }
    const r = spawnSync(process.execPath, [rkt, ...args], { encoding: "utf8" });
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    if (output.trim() !== "") console.log(indent(output));
    const okStatus = r.status === step.expect;
    const okText = step.contains === undefined || output.includes(step.contains);
    if (okStatus && okText) {
      console.log(`  -> as expected (exit ${r.status})\n`);
      continue;
    }
    const why = !okStatus
      ? `exit ${r.status ?? r.signal} (expected ${step.expect})`
      : `output lacks ${JSON.stringify(step.contains)}`;
    console.log(`  -> FAILED: ${why}\n`);
    failed = true;
    break;
  }
} finally {
  for (const child of background) child.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
}
console.log(failed ? "demo: FAILED" : "demo: all steps passed");
process.exitCode = failed ? 1 : 0;
