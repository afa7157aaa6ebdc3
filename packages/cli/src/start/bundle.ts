// Runs the bundled CLI (packages/cli/dist/rkt.bundle.cjs, made by scripts/bundle.mjs) through a
// V8 code cache. The bundle is CommonJS because only a classic script can take cached data on
// Node 20 (vm.SourceTextModule needs --experimental-vm-modules; module.enableCompileCache is 22.1).
import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { Script, constants as vmConstants } from "node:vm";
import {
  cacheCandidates,
  cacheCommand,
  cacheKey,
  codeCachePath,
  readCodeCache,
  writeCodeCache,
  type CacheState,
} from "./code-cache.js";

/** What the bundle exports that start-up needs (main.ts's `run`). */
export interface BundleExports {
  /** Runs `rkt`; `onCommand` hears the path of the command it resolved (`["image", "list"]`). */
  run(onCommand?: (path: readonly string[]) => void): Promise<void>;
}

/** How the bundle was loaded: the cache's state, V8's verdict on it, and where it lives. */
export interface BundleLoad {
  readonly exports: BundleExports;
  /** `rejected`: our file was intact but V8 refused it (another V8 build or flags). */
  readonly cache: CacheState | "rejected";
  /** The file read (or the most specific candidate, when none existed). */
  readonly cachePath: string;
  /**
   * Writes the cache of `command` (the path that ran) unless it was read from that command's own
   * file; call after the command ran. Says where and whether it wrote (`ok` false when it could
   * not); undefined when there was no need, or no later start would read it (see cacheCommand).
   */
  saveCache(command: readonly string[]): { path: string; ok: boolean } | undefined;
}

/** The bundle's first line, written by scripts/bundle.mjs; keep the two in sync. */
export interface BundleHeader {
  /** SHA-256 of the bundle after this line. */
  readonly hash: string;
  /** `ascii`: every byte is ASCII, so latin1 decodes it (a copy, not a UTF-8 validation). */
  readonly charset: "ascii" | "utf8";
  /** tsc's build info of each package bundled, relative to the bundle's directory. */
  readonly builtAfter: readonly string[];
}

/**
 * Parses the bundle's header line (`// rkt-bundle sha256:<hex> charset:ascii built-after:<a>,<b>`).
 * Pure.
 */
export function parseBundleHeader(firstLine: string): BundleHeader | undefined {
  const m = /^\/\/ rkt-bundle sha256:([0-9a-f]{64}) charset:(ascii|utf8) built-after:(\S*)$/.exec(firstLine);
  if (m?.[1] === undefined) return undefined;
  return {
    hash: m[1],
    charset: m[2] === "ascii" ? "ascii" : "utf8",
    builtAfter: m[3] ? m[3].split(",") : [],
  };
}

/**
 * Why the bundle at `bundlePath` must not run, or undefined when it may: missing (a developer who
 * only ran tsc), unrecognised, or older than the tsc output of a package in it (tsc ran after
 * the last bundle, so the bundle would run stale code). One stat per package, ~0.1 ms in all.
 */
export function bundleUnusable(
  bundlePath: string,
  header: BundleHeader | undefined,
  mtimeMs: number,
): string | undefined {
  if (header === undefined) return "no-header";
  for (const rel of header.builtAfter) {
    let m: number;
    try {
      m = statSync(resolve(dirname(bundlePath), rel)).mtimeMs;
    } catch {
      continue; // an installed bundle without the workspace next to it
    }
    if (m > mtimeMs) return `stale:${rel}`;
  }
  return undefined;
}

// Node's CommonJS wrapper, without a newline before the source so that line numbers in stack
// traces are the file's.
const wrapperHead = "(function (exports, require, module, __filename, __dirname) {";
const wrapperTail = "\n})";

/**
 * Loads the bundle at `bundlePath` (whose text is `source`) to run `argv`, with the code cache of
 * the most specific command that has one (cacheCandidates). Throws what evaluating the bundle
 * throws.
 */
export function loadBundle(
  bundlePath: string,
  source: string,
  header: BundleHeader,
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[],
): BundleLoad {
  const key = cacheKey(header.hash);
  const candidates = cacheCandidates(argv).map((command) => codeCachePath(env, bundlePath, command));
  let found: { path: string; cached: ReturnType<typeof readCodeCache> } | undefined;
  for (const path of candidates) {
    const cached = readCodeCache(path, key);
    if (cached.state === "missing") continue;
    found = { path, cached };
    break;
  }
  found ??= { path: candidates[0]!, cached: { state: "missing" } };
  const { cached, path: cachePath } = found;
  const script = new Script(wrapperHead + source + wrapperTail, {
    filename: bundlePath,
    cachedData: cached.data,
    // esbuild turns our `import()`s into requires; this keeps any it could not (an external ESM
    // package) working as in a module, instead of failing with ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING.
    importModuleDynamically: vmConstants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const cache: BundleLoad["cache"] =
    cached.state === "hit" && script.cachedDataRejected === true ? "rejected" : cached.state;
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string,
  ) => void;
  const module = { exports: {} as unknown };
  wrapper.call(
    module.exports,
    module.exports,
    createRequire(bundlePath),
    module,
    bundlePath,
    dirname(bundlePath),
  );
  return {
    exports: module.exports as BundleExports,
    cache,
    cachePath,
    // createCachedData after the run, not at compile time: only then does it hold the functions
    // the command compiled lazily (those it found in a less specific cache included).
    saveCache: (ran) => {
      const command = cacheCommand(argv, ran);
      if (command === undefined) return undefined;
      const path = codeCachePath(env, bundlePath, command);
      if (cache === "hit" && path === cachePath) return undefined;
      return { path, ok: writeCodeCache(path, key, script.createCachedData()) };
    },
  };
}

/** Reads the bundle's text and header; undefined when there is no bundle file. */
export function readBundle(
  bundlePath: string,
): { source: string; header: BundleHeader | undefined; mtimeMs: number } | undefined {
  let bytes: Buffer;
  let mtimeMs: number;
  try {
    mtimeMs = statSync(bundlePath).mtimeMs;
    bytes = readFileSync(bundlePath);
  } catch {
    return undefined;
  }
  const nl = bytes.indexOf(0x0a);
  const header = parseBundleHeader(
    bytes.subarray(0, nl < 0 ? Math.min(bytes.length, 4096) : nl).toString("latin1"),
  );
  const source = bytes.toString(header?.charset === "ascii" ? "latin1" : "utf8");
  return { source, header, mtimeMs };
}
