// Shared by the CLI tests that call `main` in process.
import { readFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { main, type MainIO } from "@rkt/cli";

/** A stream that collects what a command writes to it. */
export function sink(): { stream: PassThrough; text: () => string; bytes: () => Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  const bytes = (): Buffer => Buffer.concat(chunks);
  return { stream, bytes, text: () => bytes().toString("utf8") };
}

/** What one `rkt` run printed. */
export interface RktRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `rkt ARGS` in process as root with an empty environment; `io` overrides (cwd, env,
 * stdin…). A `stdout` given in `io` receives the output instead (`stdout` is then "").
 */
export async function runRkt(
  args: readonly string[],
  io: Partial<MainIO> & { cwd: string },
): Promise<RktRun> {
  const out = sink();
  const err = sink();
  const code = await main([...args], { stdout: out.stream, stderr: err.stream, env: {}, uid: 0, ...io });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** Mount points under `root`, in mount order (repeats kept: a test may count stacked mounts). */
export function mountsUnder(root: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((mp) => mp.startsWith(`${root}/`));
}
