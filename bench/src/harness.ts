// A small benchmark harness: ours and each peer run interleaved (ours, peer1, peer2, ours, …, with
// the starting subject rotated every round) so that drift in machine load hits all of them alike.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { profileDir, profiledSpawn, profileSummary, profileViews, type ProfileView } from "./profile.js";

/** The `rkt` CLI of this checkout. */
export const rktBin = resolve(import.meta.dirname, "..", "..", "packages", "cli", "bin", "rkt.js");

/** The subject name of the baseline build ({@link withBaseline}). */
export const baselineName = "rkt (baseline)";

/**
 * `RKT_BASELINE`: the `packages/cli/bin/rkt.js` of another checkout (the code before a change),
 * measured beside ours in the same rounds wherever a benchmark runs the CLI.
 */
export function baselineBin(): string | undefined {
  const b = process.env["RKT_BASELINE"];
  return b === undefined || b === "" ? undefined : resolve(b);
}

/** `peers` plus the baseline build's run of the same command (`make(bin)`), when there is one. */
export function withBaseline(
  peers: Record<string, Subject>,
  make: (bin: string) => Subject,
): Record<string, Subject> {
  const b = baselineBin();
  return b === undefined ? peers : { ...peers, [baselineName]: make(b) };
}

// Set while a subject runs once more to be profiled: node children then run under the view.
let profiling: { view: ProfileView; dir: string } | undefined;

/** What a subject may report about one run. */
export interface RunReport {
  /** Peak resident set size in KiB (from {@link spawnMeasured} for a child process). */
  peakRssKiB?: number | undefined;
  /** Wall seconds of the measured part, when the subject prepares state it does not want timed. */
  seconds?: number | undefined;
}

/** One timed unit of work. Resolve when done; throw to fail the benchmark. */
export type Subject = () => Promise<void | RunReport>;

export interface BenchOptions {
  ours: Subject;
  peers: Record<string, Subject>;
  /** Measured runs per subject (default 5; the median is reported). */
  runs?: number | undefined;
  /** Unmeasured warm-up runs per subject (default 1). */
  warmup?: number | undefined;
  /** With `RKT_BENCH_PROFILE`, profile ours and the baseline after the rounds (default true). */
  profile?: boolean | undefined;
}

export interface SubjectResult {
  name: string;
  /** Wall-clock seconds of each measured run, in run order. */
  seconds: number[];
  median: number;
  /** Largest peak RSS seen over the measured runs, KiB, when measured. */
  peakRssKiB?: number | undefined;
}

export interface BenchResult {
  name: string;
  subjects: SubjectResult[];
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// In-process peak RSS: writing "5" to clear_refs resets VmHWM (Linux >= 4.0), so VmHWM read after
// a run is the peak of this process during that run (node's own baseline included).
async function resetPeak(): Promise<boolean> {
  try {
    await writeFile("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}
async function readPeakKiB(): Promise<number | undefined> {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile("/proc/self/status", "utf8"));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

async function measure(
  s: Subject,
  inProcess: boolean,
): Promise<{ seconds: number; rss?: number | undefined }> {
  const canPeak = inProcess && (await resetPeak());
  const t0 = process.hrtime.bigint();
  const report = await s();
  const seconds = report?.seconds ?? Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = report?.peakRssKiB ?? (canPeak ? await readPeakKiB() : undefined);
  return { seconds, rss };
}

/**
 * Runs `ours` and the peers interleaved, prints a table (median seconds, peak RSS, ratio
 * ours/peer of the medians) and returns the numbers. `ours` runs in this process and its peak RSS
 * is this process's VmHWM during the run; peers report theirs through {@link spawnMeasured}.
 */
export async function bench(name: string, o: BenchOptions): Promise<BenchResult> {
  const runs = o.runs ?? 5;
  const warmup = o.warmup ?? 1;
  const subjects: [string, Subject, boolean][] = [
    ["ours", o.ours, true],
    ...Object.entries(o.peers).map(([n, s]): [string, Subject, boolean] => [n, s, false]),
  ];
  const seconds = subjects.map(() => [] as number[]);
  const rss = subjects.map(() => undefined as number | undefined);
  process.stderr.write(`bench ${name}: ${subjects.length} subjects × (${warmup} warm-up + ${runs} runs)\n`);
  for (let round = 0; round < warmup + runs; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const i = (round + k) % subjects.length;
      const [, s, inProcess] = subjects[i]!;
      const m = await measure(s, inProcess);
      if (round < warmup) continue;
      seconds[i]!.push(m.seconds);
      if (m.rss !== undefined) rss[i] = Math.max(rss[i] ?? 0, m.rss);
    }
  }
  const result: BenchResult = {
    name,
    subjects: subjects.map(([n], i) => ({
      name: n,
      seconds: seconds[i]!,
      median: median(seconds[i]!),
      peakRssKiB: rss[i],
    })),
  };
  process.stdout.write(formatTable(result));
  const pdir = profileDir();
  if (pdir !== undefined && o.profile !== false) {
    for (const [n, s] of subjects) {
      if (n !== "ours" && n !== baselineName) continue;
      const lines: string[] = [];
      for (const view of profileViews()) {
        const dir = join(pdir, slug(name), slug(n), view);
        profiling = { view, dir };
        try {
          await s();
        } finally {
          profiling = undefined;
        }
        lines.push(`  ${view}: ${profileSummary(view, dir)}`);
      }
      process.stdout.write(`profile of ${n}, ${name}:\n${lines.join("\n")}\n`);
    }
  }
  return result;
}

function slug(s: string): string {
  return s
    .replace(/[^A-Za-z0-9.-]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 80);
}

/** The result as a text table. */
export function formatTable(r: BenchResult): string {
  const ours = r.subjects[0]!;
  const rows = r.subjects.map((s) => [
    s.name,
    s.median.toFixed(3),
    Math.min(...s.seconds).toFixed(3),
    Math.max(...s.seconds).toFixed(3),
    s.peakRssKiB === undefined ? "-" : (s.peakRssKiB / 1024).toFixed(1),
    s === ours ? "" : (ours.median / s.median).toFixed(2),
  ]);
  const head = ["subject", "median s", "min s", "max s", "peak RSS MiB", "ours/peer"];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]): string =>
    cells.map((x, c) => (c === 0 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join("  ");
  return [`\n## ${r.name}`, line(head), ...rows.map(line), ""].join("\n") + "\n";
}

/**
 * Runs a command to completion under GNU `/usr/bin/time -f %M`, which reports the child's peak
 * RSS (KiB) from wait4's rusage. stdout is discarded unless `capture`; throws on non-zero exit.
 */
export async function spawnMeasured(
  cmd: string,
  args: readonly string[],
  o: {
    capture?: boolean | undefined;
    env?: NodeJS.ProcessEnv | undefined;
    cwd?: string | undefined;
    /** A run that takes longer is killed (its whole process group) and fails; default 10 min. */
    timeoutMs?: number | undefined;
  } = {},
): Promise<RunReport & { stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), "rkt-bench-time-"));
  try {
    const out = join(dir, "rss");
    const chunks: Buffer[] = [];
    let stderr = "";
    const code = await new Promise<number | null>((resolve, reject) => {
      let run = { cmd, args: [...args], env: o.env ?? process.env };
      if (profiling !== undefined && cmd === process.execPath)
        run = profiledSpawn(profiling.view, profiling.dir, cmd, args, run.env);
      const c = spawn("/usr/bin/time", ["-f", "%M", "-o", out, run.cmd, ...run.args], {
        stdio: ["ignore", o.capture === true ? "pipe" : "ignore", "pipe"],
        env: run.env,
        // Its own process group, so that a timeout kills the measured command too, not just time.
        detached: true,
        ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
      });
      // A peer that hangs (rkt 1.30 on some inputs) fails the case instead of stalling the run.
      const timer = setTimeout(() => {
        stderr += `\n(killed after ${(o.timeoutMs ?? 600_000) / 1000} s)`;
        if (c.pid !== undefined) process.kill(-c.pid, "SIGKILL");
      }, o.timeoutMs ?? 600_000);
      c.stdout?.on("data", (b: Buffer) => chunks.push(b));
      c.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
      c.on("error", reject);
      c.on("close", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${code}): ${stderr.slice(-2000)}`);
    const kib = Number((await readFile(out, "utf8")).trim().split("\n").pop());
    return { peakRssKiB: Number.isFinite(kib) ? kib : undefined, stdout: Buffer.concat(chunks).toString() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
