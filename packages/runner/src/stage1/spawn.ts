// Starting a stage1 process with the pod's streams: the caller's own descriptors when they are the
// process's (a terminal stays a terminal, nothing is copied), else pipes copied as they arrive.
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { access, constants as fsConstants } from "node:fs/promises";
import { constants } from "node:os";
import { ErrorCode, RktError } from "@rkt/oci";
import type { LaunchIO } from "./stage1.js";

/** Options of {@link spawnWithIO}. */
export interface SpawnIOOptions {
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Connect stdin (only for `--interactive` and `enter`: rkt pods read no stdin otherwise). */
  readonly stdin?: boolean | undefined;
  readonly what: string;
}

function fdOf(s: unknown, fd: number): boolean {
  return (s as { fd?: unknown }).fd === fd;
}

/** Spawns `cmd args` with `io`; resolves its exit status (128 + signal number when killed). */
export function spawnWithIO(
  cmd: string,
  args: readonly string[],
  io: LaunchIO,
  o: SpawnIOOptions,
  onSpawn?: (child: ChildProcess) => void,
): Promise<number> {
  const stdio: StdioOptions = [
    o.stdin === true ? (fdOf(io.stdin, 0) ? "inherit" : "pipe") : "ignore",
    fdOf(io.stdout, 1) ? "inherit" : "pipe",
    fdOf(io.stderr, 2) ? "inherit" : "pipe",
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio, env: o.env ?? process.env });
    if (child.stdin !== null) io.stdin.pipe(child.stdin).on("error", () => undefined);
    child.stdout?.on("data", (b: Buffer) => io.stdout.write(b));
    child.stderr?.on("data", (b: Buffer) => io.stderr.write(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      const hint = e.code === "ENOENT" ? ` (${cmd} is not installed; run scripts/setup.sh)` : "";
      reject(new RktError(ErrorCode.Io, `${o.what}: cannot run ${cmd}: ${e.message}${hint}`, { cause: e }));
    });
    child.on("close", (code, signal) => {
      if (child.stdin !== null) io.stdin.unpipe(child.stdin);
      resolve(code ?? 128 + signalNumber(signal));
    });
    onSpawn?.(child);
  });
}

function signalNumber(s: NodeJS.Signals | null): number {
  return s === null ? 0 : (constants.signals[s] ?? 0);
}

/** The first executable called `name` on the host's PATH, or undefined. */
export async function which(name: string): Promise<string | undefined> {
  const dirs = (process.env["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(
    ":",
  );
  for (const d of [...dirs, "/usr/sbin", "/sbin"]) {
    const p = `${d}/${name}`;
    if (
      await access(p, fsConstants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p;
  }
  return undefined;
}
