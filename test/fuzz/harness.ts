// The fuzz harness: committed corpora of interesting inputs, mutators over them (bytes and JSON
// structure), and a runner that feeds each target its corpus and then fast-check's inputs. A case
// fails when the target throws anything but an RktError with a one-line message, or takes longer
// than its time bound; fast-check then shrinks the input, which belongs in the corpus once the
// bug is fixed. Each suite prints one figure line: cases run, crashes, hangs, max RSS.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { isRktError } from "@rkt/oci";

const corpusRoot = join(import.meta.dirname, "corpus");

/** Runs per property; `RKT_FUZZ_RUNS_FACTOR` scales them for a longer local run. */
export function runs(n: number): number {
  const f = Number(process.env["RKT_FUZZ_RUNS_FACTOR"] ?? "1");
  return Math.max(1, Math.round(n * (Number.isFinite(f) && f > 0 ? f : 1)));
}

/** The fast-check seed: fixed so that CI is repeatable, `RKT_FUZZ_SEED` to explore. */
export const seed = Number(process.env["RKT_FUZZ_SEED"] ?? "20261207");

/** One corpus entry: its file name and bytes. */
export interface CorpusEntry {
  readonly name: string;
  readonly bytes: Buffer;
}

/**
 * Every file of `test/fuzz/corpus/<target>/`, sorted by name. A `*.gen.json` file stands for a
 * large input that is not committed: `{"parts": [{"text": "<meta", "times": 200000}, …]}` is
 * the concatenation of each text repeated.
 */
export function corpus(target: string): CorpusEntry[] {
  const dir = join(corpusRoot, target);
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const bytes = readFileSync(join(dir, name));
      if (!name.endsWith(".gen.json")) return { name, bytes };
      const g = JSON.parse(bytes.toString("utf8")) as { parts: { text: string; times?: number }[] };
      return { name, bytes: Buffer.from(g.parts.map((p) => p.text.repeat(p.times ?? 1)).join("")) };
    });
}

/** Why a thrown value is a crash, or undefined when it is a proper refusal. */
export function crashReason(e: unknown): string | undefined {
  if (!isRktError(e)) {
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return `not an RktError: ${what}`;
  }
  if (e.message.trim() === "") return `${e.code} with an empty message`;
  if (e.message.includes("\n")) return `${e.code} with a multi-line message: ${JSON.stringify(e.message)}`;
  return undefined;
}

/** A property of a target's result: broken, it counts as a crash (cheaper than `expect` in a hot loop). */
export function invariant(ok: boolean, what: string): void {
  if (!ok) throw new Error(`invariant broken: ${what}`);
}

/** Runs `f`; a proper refusal (an RktError) is swallowed so that the caller can go on, a crash is not. */
export function refusal(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (crashReason(e) !== undefined) throw e;
  }
}

/** {@link refusal} for a promise. */
export async function refused(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (crashReason(e) !== undefined) throw e;
  }
}

/** Counts of one suite, printed as its figure line. */
export class FuzzStats {
  cases = 0;
  crashes = 0;
  hangs = 0;
  slowestMs = 0;
  readonly suite: string;
  constructor(suite: string) {
    this.suite = suite;
  }

  /**
   * `fuzz <suite>: N cases, C crashes, H hangs, slowest X ms (CPU), max RSS M MiB, cpu T s (seed S)`;
   * CPU is the suite process's, so that the budget holds on a busy machine too.
   */
  line(): string {
    const u = process.resourceUsage();
    const cpu = (u.userCPUTime + u.systemCPUTime) / 1e6;
    return (
      `fuzz ${this.suite}: ${this.cases} cases, ${this.crashes} crashes, ${this.hangs} hangs, ` +
      `slowest ${this.slowestMs.toFixed(1)} ms, max RSS ${Math.round(u.maxRSS / 1024)} MiB, ` +
      `cpu ${cpu.toFixed(1)} s (seed ${seed})`
    );
  }
}

/** The largest resident set a fuzz suite's process may reach, MiB. */
export const maxRssMiB = 1024;

/** The process's max RSS so far, MiB. */
export function maxRss(): number {
  return process.resourceUsage().maxRSS / 1024;
}

class FuzzFailure extends Error {}

/**
 * Runs `target` on one input: a crash, or a run over `boundMs` of CPU, is counted and thrown (a
 * FuzzFailure, so fast-check shrinks the input); an RktError or a result is fine. CPU time, not
 * wall time, so that a busy machine does not make hangs of slow neighbours; an async target that
 * does not settle within ten times the bound (at least 10 s) of wall time is a hang too.
 */
export async function check<T>(
  stats: FuzzStats,
  target: (input: T) => unknown,
  input: T,
  boundMs: number,
): Promise<void> {
  stats.cases++;
  const cpu0 = process.cpuUsage();
  let reason: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = target(input);
    if (r instanceof Promise && Number.isFinite(boundMs)) {
      const wall = Math.max(10_000, boundMs * 10);
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FuzzFailure(`hang: no answer after ${wall} ms`)), wall);
      });
      await Promise.race([r, late]);
    } else await r;
  } catch (e) {
    if (e instanceof FuzzFailure) {
      stats.hangs++;
      throw e;
    }
    reason = crashReason(e);
  } finally {
    clearTimeout(timer);
  }
  const used = process.cpuUsage(cpu0);
  const ms = (used.user + used.system) / 1000;
  stats.slowestMs = Math.max(stats.slowestMs, ms);
  if (reason !== undefined) {
    stats.crashes++;
    throw new FuzzFailure(`crash: ${reason}`);
  }
  if (ms > boundMs) {
    stats.hangs++;
    throw new FuzzFailure(`hang: ${ms.toFixed(0)} ms of CPU (bound ${boundMs} ms)`);
  }
}

/** Runs `target` on every corpus entry of `name` (as bytes), then on `numRuns` generated inputs. */
export async function fuzz<T>(
  stats: FuzzStats,
  target: (input: T) => unknown,
  inputs: fc.Arbitrary<T>,
  o: { numRuns: number; boundMs: number; corpus?: readonly T[] | undefined },
): Promise<void> {
  // The first call loads lazily required modules (zod, decoders) and builds schemas: untimed.
  const first = o.corpus?.[0];
  if (first !== undefined) await check(stats, target, first, Number.POSITIVE_INFINITY);
  for (const c of o.corpus ?? []) await check(stats, target, c, o.boundMs);
  const r = await fc.check(
    fc.asyncProperty(inputs, (x) => check(stats, target, x, o.boundMs)),
    { numRuns: runs(o.numRuns), seed },
  );
  if (r.failed) throw new Error(failureReport(stats.suite, r as fc.RunDetails<[unknown]>));
}

// One paragraph instead of fast-check's dump of a megabyte input: the reason, the shrunk input's
// size and start, and a file holding it (to be added to the corpus once the bug is fixed).
function failureReport(suite: string, r: fc.RunDetails<[unknown]>): string {
  const input = r.counterexample?.[0];
  const bytes = Buffer.isBuffer(input)
    ? input
    : Buffer.from(
        typeof input === "string"
          ? input
          : (JSON.stringify(input, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString("latin1") : v)) ??
              ""),
      );
  const file = join(tmpdir(), `rkt-fuzz-${suite}-${process.pid}-${Date.now()}.bin`);
  writeFileSync(file, bytes);
  const why = r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance);
  return (
    `${suite}: ${why} after ${r.numRuns} runs (seed ${r.seed}, path ${r.counterexamplePath ?? "?"}); ` +
    `input of ${bytes.length} bytes saved to ${file}, starting ${JSON.stringify(bytes.subarray(0, 120).toString("latin1"))}`
  );
}

// ---------------------------------------------------------------------------------------------
// Mutators

/** Bytes that tend to matter to parsers: delimiters, quotes, escapes, NUL, high bytes. */
const interesting = [
  0, 1, 0x7f, 0x80, 0xff, 0x22, 0x27, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x3c, 0x3e, 0x2f, 0x2e, 0x3d,
  0x20, 0x0a,
];

type ByteOp =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; len: number }
  | { op: "repeat"; at: number; len: number; times: number }
  | { op: "truncate"; at: number }
  | { op: "splice"; at: number; from: number; other: number; len: number }
  | { op: "token"; at: number; token: number; times: number };

const frac = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: frac, bit: fc.nat(7) }),
  fc.record({
    op: fc.constant("set" as const),
    at: frac,
    value: fc.oneof(fc.constantFrom(...interesting), fc.nat(255)),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: frac,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant("delete" as const), at: frac, len: fc.integer({ min: 1, max: 64 }) }),
  // Repetition is what finds superlinear parsers (backtracking regexes, quadratic scans).
  fc.record({
    op: fc.constant("repeat" as const),
    at: frac,
    len: fc.integer({ min: 1, max: 16 }),
    times: fc.integer({ min: 2, max: 4000 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: frac }),
  fc.record({
    op: fc.constant("splice" as const),
    at: frac,
    from: frac,
    other: fc.nat(),
    len: fc.integer({ min: 1, max: 256 }),
  }),
);

// A dictionary token inserted, often many times over (as AFL's dictionaries do).
const tokenOp = fc.record({
  op: fc.constant("token" as const),
  at: frac,
  token: fc.nat(),
  times: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 50_000 })),
});

function applyOp(
  b: Buffer,
  op: ByteOp,
  seeds: readonly Buffer[],
  maxLen: number,
  dictionary: readonly Buffer[],
): Buffer {
  const at = Math.floor(op.at * (b.length + 1));
  switch (op.op) {
    case "flip": {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      const i = Math.min(at, b.length - 1);
      c[i] = c[i]! ^ (1 << op.bit);
      return c;
    }
    case "set": {
      if (b.length === 0) return Buffer.from([op.value]);
      const c = Buffer.from(b);
      c[Math.min(at, b.length - 1)] = op.value;
      return c;
    }
    case "insert":
      return Buffer.concat([b.subarray(0, at), op.bytes, b.subarray(at)]);
    case "delete":
      return Buffer.concat([b.subarray(0, at), b.subarray(at + op.len)]);
    case "repeat": {
      const piece = b.subarray(at, at + op.len);
      if (piece.length === 0) return b;
      const times = Math.max(1, Math.min(op.times, Math.floor((maxLen - b.length) / piece.length)));
      return Buffer.concat([b.subarray(0, at), Buffer.alloc(piece.length * times, piece), b.subarray(at)]);
    }
    case "truncate":
      return b.subarray(0, at);
    case "splice": {
      const other = seeds[op.other % seeds.length] ?? Buffer.alloc(0);
      const from = Math.floor(op.from * other.length);
      return Buffer.concat([b.subarray(0, at), other.subarray(from, from + op.len), b.subarray(at)]);
    }
    case "token": {
      const t = dictionary[op.token % dictionary.length];
      if (t === undefined || t.length === 0) return b;
      const times = Math.max(1, Math.min(op.times, Math.floor((maxLen - b.length) / t.length)));
      return Buffer.concat([b.subarray(0, at), Buffer.alloc(t.length * times, t), b.subarray(at)]);
    }
  }
}

/**
 * Inputs made from a corpus by 1 to 6 byte-level mutations, at most `maxLen` bytes; with a
 * dictionary, mutations also insert its tokens (once, or repeated up to 50,000 times).
 */
export function mutatedBytes(
  seeds: readonly Buffer[],
  maxLen = 64 * 1024,
  dictionary: readonly string[] = [],
): fc.Arbitrary<Buffer> {
  const dict = dictionary.map((t) => Buffer.from(t));
  const op = dict.length === 0 ? byteOp : fc.oneof(byteOp, tokenOp);
  return fc.tuple(fc.nat(seeds.length - 1), fc.array(op, { minLength: 1, maxLength: 6 })).map(([i, ops]) => {
    let b = seeds[i]!;
    for (const o of ops) b = applyOp(b, o, seeds, maxLen, dict);
    return b.length > maxLen ? b.subarray(0, maxLen) : b;
  });
}

/**
 * Inputs made of dictionary tokens alone: up to 8 runs, each a token repeated 1 to 50,000 times
 * (at most `maxLen` bytes). Grammar-free, and the shortest way to a superlinear scan.
 */
export function tokenSoup(dictionary: readonly string[], maxLen = 1 << 20): fc.Arbitrary<Buffer> {
  const run = fc.tuple(
    fc.constantFrom(...dictionary),
    fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 50_000 })),
  );
  return fc.array(run, { minLength: 1, maxLength: 8 }).map((runs) => {
    const parts: string[] = [];
    let left = maxLen;
    for (const [t, n] of runs) {
      const times = Math.min(n, Math.floor(left / t.length));
      if (times === 0) break;
      parts.push(t.repeat(times));
      left -= t.length * times;
    }
    return Buffer.from(parts.join(""));
  });
}

type Path = (string | number)[];

function pathsOf(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...at, i], out));
  else if (typeof v === "object" && v !== null)
    for (const [k, x] of Object.entries(v)) pathsOf(x, [...at, k], out);
  return out;
}

function setAt(root: unknown, path: Path, value: unknown, remove: boolean): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (remove) {
    if (Array.isArray(cur)) cur.splice(last as number, 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy;
}

/** JSON values that tend to matter to schemas: wrong types, edges of ranges, odd strings. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 53,
    -(2 ** 63),
    1e308,
    "",
    " ",
    "\u0000",
    "\ud800",
    "a".repeat(300),
    "../../etc/passwd",
    "sha256:",
    "sha512-",
    "{}",
    [],
    {},
    [[[[[[[[[[]]]]]]]]]],
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ maxLength: 40 }),
  fc.integer(),
);

type JsonOp = { at: number; kind: "replace" | "remove" | "duplicate"; value: unknown };

/**
 * Inputs made from JSON seeds by changing values at random paths (replaced by odd values,
 * removed, an array element duplicated), serialised, sometimes byte-mutated as well.
 */
export function mutatedJson(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  // Regression seeds need not be JSON (a NUL before the document); they are byte-mutated only.
  const docs = seeds.flatMap((s) => {
    try {
      return [JSON.parse(s.toString("utf8")) as unknown];
    } catch {
      return [];
    }
  });
  const jsonOp: fc.Arbitrary<JsonOp> = fc.record({
    at: frac,
    kind: fc.constantFrom("replace" as const, "replace" as const, "remove" as const, "duplicate" as const),
    value: oddValue,
  });
  const structural = fc
    .tuple(fc.nat(docs.length - 1), fc.array(jsonOp, { minLength: 1, maxLength: 4 }))
    .map(([i, ops]) => {
      let doc = docs[i];
      for (const op of ops) {
        const paths = pathsOf(doc);
        const path = paths[Math.floor(op.at * paths.length)]!;
        if (op.kind === "duplicate") {
          const parent = path.slice(0, -1);
          const last = path[path.length - 1];
          let holder: unknown = doc;
          for (const k of parent) holder = (holder as Record<string | number, unknown>)[k];
          if (Array.isArray(holder) && typeof last === "number") {
            const copy = structuredClone(holder) as unknown[];
            copy.splice(last, 0, ...Array<unknown>(50).fill(copy[last]));
            doc = setAt(doc, parent, copy, false);
          }
        } else doc = setAt(doc, path, op.value, op.kind === "remove" && path.length > 0);
      }
      return Buffer.from(JSON.stringify(doc) ?? "null");
    });
  return fc.oneof(
    { arbitrary: structural, weight: 3 },
    { arbitrary: structural.chain((b) => mutatedBytes([b])), weight: 1 },
    { arbitrary: mutatedBytes(seeds), weight: 1 },
  );
}

/** Any string, including lone surrogates and control characters. */
export const anyText = (maxLength = 200): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: "grapheme", maxLength }),
  );
