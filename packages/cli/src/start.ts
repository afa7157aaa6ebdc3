// What bin/rkt.js runs: the bundled CLI through its code cache when there is a usable bundle,
// else the tsc output (dist/main.js and the packages' dist through node_modules). See
// docs/architecture.md, "Start-up".
//
// Environment:
//   RKT_NO_BUNDLE=1       always the tsc output (debugging with the real file names and lines)
//   RKT_DEBUG_STARTUP=1   one line on stderr at exit: which path ran and what the cache did
import { fileURLToPath } from "node:url";
import { bundleUnusable, loadBundle, readBundle } from "./start/bundle.js";

const bundleFile = "rkt.bundle.cjs";

/** Starts `rkt` on `process.argv`; the exit status is left in `process.exitCode`. */
export async function start(): Promise<void> {
  const env = process.env;
  const debug = env["RKT_DEBUG_STARTUP"] === "1";
  const say = (line: string) => {
    if (debug) process.stderr.write(`rkt-startup: ${line}\n`);
  };
  const bundlePath = fileURLToPath(new URL(`./${bundleFile}`, import.meta.url));
  const bundle = env["RKT_NO_BUNDLE"] === "1" ? undefined : readBundle(bundlePath);
  const why =
    env["RKT_NO_BUNDLE"] === "1"
      ? "RKT_NO_BUNDLE"
      : bundle === undefined
        ? "no-bundle"
        : bundleUnusable(bundlePath, bundle.header, bundle.mtimeMs);
  if (bundle === undefined || bundle.header === undefined || why !== undefined) {
    const { run } = await import("./main.js");
    await run();
    say(`unbundled reason=${why ?? "no-header"}`);
    return;
  }
  const loaded = loadBundle(bundlePath, bundle.source, bundle.header, env, process.argv.slice(2));
  let command: readonly string[] = [];
  await loaded.exports.run((path) => (command = path));
  const saved = loaded.saveCache(command);
  const wrote =
    saved === undefined
      ? ""
      : ` wrote=${saved.ok ? "yes" : "no"}${saved.path === loaded.cachePath ? "" : ` to=${saved.path}`}`;
  say(`bundle cache=${loaded.cache} path=${loaded.cachePath}${wrote}`);
}
