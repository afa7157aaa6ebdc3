#!/usr/bin/env node
// The project demo (`npm run demo`, after setup and build): runs the real `rkt` binary on the
// bundled example images, step by step, printing what each step does, the command and its
// output. Exits non-zero as soon as a step does not give the expected result.
//
// To extend it (fetch, trust, list, render, run…), add entries to `steps`: each has a title, the
// rkt arguments, the exit status expected and optionally text its output must contain, or a
// `setup` function that prepares files and returns extra arguments.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

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
];

function indent(text) {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

let failed = false;
try {
  const names = readdirSync(examples);
  console.log(`demo: bundled examples in ${rel(examples)}: ${names.join(", ")}\n`);
  for (const [i, step] of steps.entries()) {
    const args = [...step.args, ...(step.setup ? step.setup() : [])];
    console.log(`[${i + 1}/${steps.length}] ${step.title}`);
    console.log(`  $ rkt ${args.join(" ")}`);
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
  rmSync(work, { recursive: true, force: true });
}
console.log(failed ? "demo: FAILED" : "demo: all steps passed");
process.exitCode = failed ? 1 : 0;
