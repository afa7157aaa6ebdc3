// Shared by the chaos suites: the built `rkt` as a child process, the checks made after every
// kill (fsck exits 0, the next command completes), the kill loop and its figure line.
// The suites spawn packages/cli/bin/rkt.js: build first (`npm run build`; `npm test` does).
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { PassThrough } from "node:stream";
import { expect } from "vitest";
import { writeAci } from "@rkt/appc";
import { main } from "@rkt/cli";
import { chaosSeed, runNode, seededRandom, type ChildRun } from "@rkt/testkit";

export const bin = resolve(import.meta.dirname, "..", "..", "packages", "cli", "bin", "rkt.js");

/** Every rkt child gets this long before it counts as a hang. */
export const hangMs = 60_000;

/** `rkt --dir DIR ARGS…` as a child. */
export function rkt(
  dir: string,
  args: readonly string[],
  o: { killAfterMs?: number | undefined; cwd?: string | undefined } = {},
): Promise<ChildRun> {
  return runNode(bin, ["--dir", dir, ...args], { ...o, timeoutMs: hangMs });
}

/** The parts of `rkt image fsck --format json` the suites read. */
export interface FsckJson {
  ok: boolean;
  clean: boolean;
  problems: { kind: string; subject: string; message: string }[];
  garbage: { kind: string; subject: string }[];
}

/**
 * Runs `rkt --dir DIR ARGS…` in this process: the same command as the child's, without a
 * second start-up (for the checks after each kill, not for the commands under test).
 */
export async function rktHere(
  dir: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = collect();
  const err = collect();
  const code = await main(["--dir", dir, ...args], {
    stdout: out.stream,
    stderr: err.stream,
    env: {},
    uid: 0,
    cwd: dir,
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** Runs `rkt image fsck --format json`; expects exit 0 (a consistent store) and returns its report. */
export async function fsckOk(dir: string): Promise<FsckJson> {
  const r = await rktHere(dir, ["image", "fsck", "--format", "json"]);
  const said = `rkt image fsck: ${r.stdout}${r.stderr}`;
  expect(r.code, said).toBe(0);
  const report = JSON.parse(r.stdout) as FsckJson;
  expect(report.problems, said).toEqual([]);
  return report;
}

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

/** Expects a child to have exited 0 (not killed, not hung). */
export function expectDone(r: ChildRun, what: string): void {
  expect(r.hung, `${what} hung`).toBe(false);
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
}

/** The seeded generator of one suite; its seed goes into the figure line. */
export function chaosRandom(): { seed: number; random: () => number } {
  const seed = chaosSeed();
  return { seed, random: seededRandom(seed) };
}

/** What a kill loop did. */
export interface KillTally {
  rounds: number;
  kills: number;
  hangs: number;
  /** fsck runs after a kill that reported garbage (reclaimable: exit 0 all the same). */
  withGarbage: number;
  ms: number;
}

/** Options of {@link killLoop}. */
export interface KillLoop {
  /** The store (`--dir`) the commands use. */
  dir: string;
  /** Kills to reach. */
  kills: number;
  random: () => number;
  /** Makes the next round's command have work to do (not timed, not killed). */
  prepare(round: number): Promise<void>;
  /** The command of round `round`, killed after `killAfterMs` (undefined: runs to its end). */
  command(round: number, killAfterMs: number | undefined): Promise<ChildRun>;
  /** After fsck: the next command, which must complete, and whatever the suite checks. */
  next(round: number, killed: ChildRun): Promise<void>;
}

/**
 * Until `kills` children died by SIGKILL (at most 3× as many rounds): prepare, run the command
 * with a kill at a random delay, check `rkt image fsck` exits 0, run the next command. Delays are
 * drawn uniformly from [0.2, 1.05] × the duration of an uninterrupted run (a first run measures
 * it; every command that ends before its kill updates it), so they follow the machine's load. A
 * command that finished before its kill must have succeeded.
 */
export async function killLoop(o: KillLoop): Promise<KillTally> {
  const t: KillTally = { rounds: 0, kills: 0, hangs: 0, withGarbage: 0, ms: 0 };
  const t0 = performance.now();
  await o.prepare(-1);
  const first = await o.command(-1, undefined);
  expectDone(first, "the first, uninterrupted run");
  let full = first.ms;
  while (t.kills < o.kills && t.rounds < 3 * o.kills) {
    const round = t.rounds++;
    await o.prepare(round);
    const delay = Math.round(full * (0.2 + 0.85 * o.random()));
    const r = await o.command(round, delay);
    if (process.env["RKT_CHAOS_DEBUG"] !== undefined) console.log(round, delay, Math.round(r.ms), r.killed);
    if (r.hung) t.hangs++;
    expect(r.hung, `round ${round} hung`).toBe(false);
    if (r.killed) t.kills++;
    else {
      expectDone(r, `round ${round} (not killed at ${delay} ms)`);
      full = (full + r.ms) / 2;
    }
    const report = await fsckOk(o.dir);
    if (report.garbage.length > 0) t.withGarbage++;
    await o.next(round, r);
  }
  t.ms = performance.now() - t0;
  expect(t.kills).toBeGreaterThanOrEqual(o.kills);
  return t;
}

/** Prints one figure line on stdout: `chaos NAME: k=v, …`. */
export function figure(name: string, parts: Readonly<Record<string, string | number>>): void {
  const text = Object.entries(parts)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  console.log(`chaos ${name}: ${text}`);
}

/** Writes an uncompressed ACI of `files` random files of `each` bytes to `file`. */
export async function writeRandomAci(file: string, name: string, files: number, each: number): Promise<void> {
  const manifest = {
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name,
    labels: [
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ],
  };
  const chunks: Buffer[] = [];
  const entries = Array.from({ length: files }, (_, i) => ({
    header: { name: `rootfs/f${i}`, type: "file" as const, mode: 0o644, size: each },
    body: randomBytes(each),
  }));
  for await (const c of writeAci(JSON.stringify(manifest), [
    { header: { name: "rootfs", type: "directory", mode: 0o755 } },
    ...entries,
  ]))
    chunks.push(c as Buffer);
  await writeFile(file, Buffer.concat(chunks));
}

export const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;
