// Where the time goes, per benchmark case (`RKT_BENCH_PROFILE=DIR`): after a case's timed rounds
// the harness runs `ours` (and the baseline build, when `RKT_BASELINE` names one) once more per
// view, each in its own fresh state as the subject prepares it:
//   - cpu: `node --cpu-prof` (through NODE_OPTIONS), summarised as the top self-time functions of
//     the main thread, idle and GC included;
//   - syscalls: `strace -f -c` (when strace is installed): calls and time per syscall, all threads;
//   - io: `/proc/self/io` at exit (a --require hook): bytes read and written through syscalls
//     (rchar/wchar) and by the block layer (read_bytes/write_bytes, page cache excluded).
// Raw files (.cpuprofile, strace tables, io counters) stay in DIR.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One way of looking at a run. */
export type ProfileView = "cpu" | "syscalls" | "io";

/** The profile directory, when profiling is asked for. */
export function profileDir(): string | undefined {
  const d = process.env["RKT_BENCH_PROFILE"];
  return d === undefined || d === "" ? undefined : d;
}

/** The views this machine can give (strace may be missing). */
export function profileViews(): ProfileView[] {
  const strace = spawnSync("strace", ["-V"], { stdio: "ignore" }).status === 0;
  return strace ? ["cpu", "syscalls", "io"] : ["cpu", "io"];
}

/** How a node child is started for `view`, with its output under `dir`. */
export interface ProfiledSpawn {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

const ioHook = `const { readFileSync, writeFileSync } = require("node:fs");
process.on("exit", () => {
  try { writeFileSync(process.env.RKT_BENCH_IO_FILE, readFileSync("/proc/self/io", "utf8")); } catch {}
});
`;

/** `node ARGS` rewritten to run under `view`, its results in `dir`. */
export function profiledSpawn(
  view: ProfileView,
  dir: string,
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): ProfiledSpawn {
  mkdirSync(dir, { recursive: true });
  const nodeOptions = (extra: string): string => `${env["NODE_OPTIONS"] ?? ""} ${extra}`.trim();
  switch (view) {
    case "cpu":
      // Node refuses --cpu-prof in NODE_OPTIONS: it goes before the script.
      return { cmd, args: ["--cpu-prof", `--cpu-prof-dir=${dir}`, ...args], env };
    case "syscalls":
      return { cmd: "strace", args: ["-f", "-c", "-o", join(dir, "strace.txt"), cmd, ...args], env };
    case "io": {
      const hook = join(dir, "io-hook.cjs");
      writeFileSync(hook, ioHook);
      return {
        cmd,
        args: [...args],
        env: {
          ...env,
          NODE_OPTIONS: nodeOptions(`--require ${hook}`),
          RKT_BENCH_IO_FILE: join(dir, "io.txt"),
        },
      };
    }
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The top self-time functions of the newest .cpuprofile in `dir`. */
export function cpuSummary(dir: string, top = 10): string {
  const file = readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort()
    .pop();
  if (file === undefined) return "no profile written";
  const p = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i] ?? 0;
    if (n === undefined) continue;
    const cf = n.callFrame;
    const where = cf.url === "" ? "" : ` ${cf.url.split("/").slice(-1)[0]}:${cf.lineNumber + 1}`;
    const k = `${cf.functionName === "" ? "(anonymous)" : cf.functionName}${where}`;
    self.set(k, (self.get(k) ?? 0) + dt);
    total += dt;
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `main thread ${(total / 1000).toFixed(0)} ms sampled; top self time:`,
    ...rows.map(
      ([k, t]) =>
        `    ${(t / 1000).toFixed(0).padStart(6)} ms ${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`,
    ),
  ].join("\n");
}

/** The syscalls with the most calls (and their time) from an `strace -c` table in `dir`. */
export function syscallSummary(dir: string, top = 10): string {
  let text: string;
  try {
    text = readFileSync(join(dir, "strace.txt"), "utf8");
  } catch {
    return "no strace output";
  }
  const rows: { name: string; calls: number; seconds: number }[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (f.length < 5 || !/^\d/.test(f[0]!) || f[f.length - 1] === "total") continue;
    rows.push({ name: f[f.length - 1]!, calls: Number(f[3]), seconds: Number(f[1]) });
  }
  const calls = rows.reduce((n, r) => n + r.calls, 0);
  rows.sort((a, b) => b.calls - a.calls);
  return [
    `${calls} syscalls (all threads); most called:`,
    `    ${rows
      .slice(0, top)
      .map((r) => `${r.name} ${r.calls} (${r.seconds.toFixed(3)} s)`)
      .join(", ")}`,
  ].join("\n");
}

/** Bytes read and written, from the `/proc/self/io` copy in `dir`. */
export function ioSummary(dir: string): string {
  let text: string;
  try {
    text = readFileSync(join(dir, "io.txt"), "utf8");
  } catch {
    return "no io counters";
  }
  const v = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(text)?.[1] ?? NaN);
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `read ${mib(v("rchar"))} (from disk ${mib(v("read_bytes"))}), written ${mib(v("wchar"))} (to disk ${mib(v("write_bytes"))}), ${v("syscr")} read and ${v("syscw")} write calls`;
}

/** The summary of `view` for the run whose results are in `dir`. */
export function profileSummary(view: ProfileView, dir: string): string {
  return view === "cpu" ? cpuSummary(dir) : view === "syscalls" ? syscallSummary(dir) : ioSummary(dir);
}
