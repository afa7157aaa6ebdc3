#!/usr/bin/env node
// Bundles the `rkt` command into one CommonJS file, packages/cli/dist/rkt.bundle.cjs, which
// bin/rkt.js runs through a V8 code cache (packages/cli/src/start.ts). Run after `tsc -b`: the
// bundle is made from the packages' dist/*.js (their "default" export condition, the same code the
// unbundled path runs), never from src/*.ts through the "@rkt/source" condition that vitest uses.
//
// Why one CommonJS file rather than ESM chunks: Node 20 can attach a code cache only to a
// `vm.Script` (ESM would need `vm.SourceTextModule`, behind --experimental-vm-modules, and
// module.enableCompileCache arrived in 22.1). Laziness survives: esbuild turns each `await
// import()` of a bundled module into a call of that module's init function, so a command still
// evaluates only what it uses.
//
// Usage: node scripts/bundle.mjs [--quiet]
import { createHash } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "packages/cli/dist/main.js");
const outfile = join(root, "packages/cli/dist/rkt.bundle.cjs");

// The first line of the bundle: start.ts keys its cache on this hash instead of hashing the file
// on every start. Keep in sync with parseBundleHeader in packages/cli/src/start/bundle.ts.
const headerPrefix = "// rkt-bundle sha256:";

// Native addons cannot be bundled; they are required at run time from node_modules, found from
// the bundle's own directory as from any file of the workspace.
const external = ["better-sqlite3"];

/**
 * Our packages load some CommonJS dependencies on first use through `createRequire(import.meta.url)`
 * (zod, undici, yaml, smol-toml, tar-stream, the decompressors), so that commands that never use
 * them do not compile them. esbuild cannot follow such a require, so it would stay a run-time
 * load from node_modules, compiled on every run (zod alone is ~20 ms). Rewriting it to the free
 * `require` lets esbuild bundle the module behind a lazy `__commonJS` wrapper: still loaded on
 * first use, but covered by the code cache. A form not rewritten here still works (import.meta.url
 * is defined below), it is just not bundled.
 */
const lazyRequires = {
  name: "rkt-lazy-requires",
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, async (args) => {
      const text = await readFile(args.path, "utf8");
      if (!text.includes("createRequire(import.meta.url)")) return undefined;
      const contents = text
        .replace(/^const require = createRequire\(import\.meta\.url\);$/m, "")
        .replaceAll("createRequire(import.meta.url)(", "require(");
      return { contents, loader: "js" };
    });
  },
};

async function main(quiet) {
  const t0 = performance.now();
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    write: false,
    outfile,
    external,
    plugins: [lazyRequires],
    // Every module's import.meta.url becomes the bundle's own URL. The only use that is not a
    // createRequire base is main.ts's `../package.json`, which resolves the same from dist/.
    // (Injected rather than a banner, which would land before "use strict" and void it.)
    inject: [join(root, "scripts/bundle-import-meta.mjs")],
    define: { "import.meta.url": "rktBundleUrl" },
    legalComments: "none",
    charset: "ascii",
    minifyWhitespace: true,
    logLevel: "warning",
    metafile: true,
  });
  const out = result.outputFiles.find((f) => f.path === outfile);
  if (out === undefined) throw new Error("esbuild wrote no bundle");
  const body = Buffer.from(out.contents);
  // charset "ascii" escapes strings and minifyWhitespace drops comments, but esbuild leaves a
  // regular expression's characters alone. Node decodes an all-ASCII file into a one-byte string
  // (~2 ms for this bundle); one non-ASCII byte makes it a two-byte string (~9 ms, every run).
  const nonAscii = body.findIndex((b) => b > 0x7f);
  if (nonAscii >= 0) {
    const at = body.subarray(Math.max(0, nonAscii - 40), nonAscii + 20).toString("utf8");
    process.stderr.write(
      `bundle: warning: non-ASCII byte (slower start-up), escape it in the source: …${at}…\n`,
    );
  }
  const hash = createHash("sha256").update(body).digest("hex");
  // The tsc build info of every package bundled: start.ts runs the unbundled code instead when
  // tsc has rebuilt one of them since (a developer who ran only `tsc -b`).
  const packages = new Set(
    Object.keys(result.metafile.inputs)
      .map((p) => /^packages\/([^/]+)\/dist\//.exec(p)?.[1])
      .filter((p) => p !== undefined),
  );
  const builtAfter = [...packages]
    .sort()
    .map((p) => relative(dirname(outfile), join(root, "packages", p, "dist/.tsbuildinfo")));
  // Write then rename, so a concurrent `rkt` never reads half a bundle.
  const tmp = `${outfile}.${process.pid}.tmp`;
  // "ascii" lets start.ts decode the file as latin1, a copy, instead of validating UTF-8.
  const charset = nonAscii < 0 ? "ascii" : "utf8";
  const header = `${headerPrefix}${hash} charset:${charset} built-after:${builtAfter.join(",")}\n`;
  await writeFile(tmp, Buffer.concat([Buffer.from(header), body]));
  await rename(tmp, outfile);
  if (!quiet) {
    const inputs = Object.keys(result.metafile.inputs).length;
    const ms = (performance.now() - t0).toFixed(0);
    process.stderr.write(
      `bundle: ${relative(root, outfile)} ${(body.length / 1024).toFixed(0)} KiB from ${inputs} modules in ${ms} ms\n`,
    );
  }
}

main(process.argv.includes("--quiet")).catch(async (err) => {
  process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
  // A bundle older than dist/ would run stale code: better none, and the unbundled fallback.
  await rm(outfile, { force: true });
  process.exit(1);
});
