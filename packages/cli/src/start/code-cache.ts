// The V8 code cache of the bundled CLI: one file per bundle location and command, holding the
// bytecode V8 serialised after a run of that command (so it includes the functions the command
// compiled lazily, not just the top level). Reading it saves the ~100 ms node otherwise spends
// compiling on every command. One file per command because a cache made by `rkt fetch` holds
// none of `rkt image list`'s functions: with a single file, whichever command ran first after a
// build decided how fast every other one started.
//
// V8 checks only its own version, flags and the source's length before trusting cached data, and
// release builds do not checksum the payload: a file cut short or flipped could crash the process
// instead of being rejected. So the file carries its own key (which bundle, which node) and a
// SHA-256 of the payload (~0.2 ms for the ~400 KiB we write), checked before V8 sees a byte.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const magic = "rkt-code-cache/1";

/** What {@link readCodeCache} found. `corrupt`: a file that fails its checksum or header. */
export type CacheState = "hit" | "missing" | "stale" | "corrupt";

/**
 * The key a cache is valid for: the bundle's content hash (from its header) and the node build
 * that produced the bytecode. Pure.
 */
export function cacheKey(bundleHash: string, node = process.version, arch = process.arch): string {
  return `${bundleHash} ${node} ${arch}`;
}

/**
 * Where the cache of `command` (its path in the command tree, e.g. `["image", "list"]`; empty for
 * `rkt` itself) of the bundle at `bundlePath` lives: `$XDG_CACHE_HOME/rkt/` (default
 * `~/.cache/rkt/`), one file per bundle location so that two checkouts do not overwrite each
 * other's. Pure but for `homedir()`.
 */
export function codeCachePath(
  env: Readonly<Record<string, string | undefined>>,
  bundlePath: string,
  command: readonly string[] = [],
): string {
  const base = env["XDG_CACHE_HOME"] || join(env["HOME"] || homedir(), ".cache");
  const where = createHash("sha256").update(bundlePath).digest("hex").slice(0, 16);
  return join(base, "rkt", `code-cache-${where}-${["rkt", ...command].join("-")}.bin`);
}

// What a command name looks like (main.ts's tree): anything else on the command line is a flag,
// a flag's value or an argument, and never names a cache file.
const commandWord = /^[a-z][a-z0-9-]{0,31}$/;
const commandWords = (argv: readonly string[]): string[] => argv.filter((a) => commandWord.test(a));

/**
 * The commands whose cache may fit `argv`, most specific first: the first two words that could
 * be command names, the first one, then `rkt` itself (whose cache still holds the top level).
 * Start-up cannot resolve the command before the bundle is compiled, so this guesses from the
 * words; {@link cacheCommand} says after the run which guess was right. Pure.
 */
export function cacheCandidates(argv: readonly string[]): string[][] {
  const words = commandWords(argv).slice(0, 2);
  const out: string[][] = [];
  for (let n = words.length; n >= 0; n--) out.push(words.slice(0, n));
  return out;
}

/**
 * The command a run's cache is saved for: the first two names of the command that ran (`path`,
 * as main.ts resolved it), when {@link cacheCandidates} of the same `argv` would find it again;
 * else undefined (an abbreviated `rkt im li`, or a flag's value that looks like a command), so
 * that such a run does not write a file no later start reads. Pure.
 */
export function cacheCommand(argv: readonly string[], path: readonly string[]): string[] | undefined {
  const words = commandWords(argv);
  const saved = path.slice(0, 2); // deeper commands share their first two words' cache
  return saved.every((w, i) => words[i] === w) ? saved : undefined;
}

/** The file's bytes for `data` under `key`. Pure. */
export function encodeCodeCache(key: string, data: Buffer): Buffer {
  const sum = createHash("sha256").update(data).digest("hex");
  return Buffer.concat([Buffer.from(`${magic} ${sum} ${key}\n`), data]);
}

/** The payload of `file` if it is intact and made for `key`. Pure. */
export function decodeCodeCache(
  file: Buffer,
  key: string,
): { state: "hit"; data: Buffer } | { state: "stale" | "corrupt" } {
  const nl = file.indexOf(0x0a);
  // The header is short; a newline far in means this is not our file.
  if (nl < 0 || nl > 512) return { state: "corrupt" };
  const header = file.subarray(0, nl).toString("latin1");
  const m = /^(\S+) ([0-9a-f]{64}) (.*)$/.exec(header);
  if (m === null || m[1] !== magic) return { state: "corrupt" };
  const data = file.subarray(nl + 1);
  if (createHash("sha256").update(data).digest("hex") !== m[2]) return { state: "corrupt" };
  if (m[3] !== key) return { state: "stale" };
  return { state: "hit", data };
}

/** Reads the cache at `path` for `key`; never throws (an unreadable file is `missing`). */
export function readCodeCache(path: string, key: string): { state: CacheState; data?: Buffer | undefined } {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch {
    return { state: "missing" };
  }
  return decodeCodeCache(file, key);
}

/**
 * Writes the cache atomically (temp file, then rename: a concurrent `rkt` reads the old file or
 * the new one). Returns false instead of throwing when it cannot (read-only home, full disk): a
 * missing cache only costs time.
 */
export function writeCodeCache(path: string, key: string, data: Buffer): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(tmp, encodeCodeCache(key, data));
    renameSync(tmp, path);
    return true;
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // Nothing more to do: a stray temp file in a cache directory is harmless.
    }
    return false;
  }
}
