// Child processes for crash and chaos tests: run a node script, optionally SIGKILL it after a
// delay, and always bound how long it may take (a child that outlives its timeout is a hang).
import { spawn } from "node:child_process";

/** How a child ended. */
export interface ChildRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
  /** We killed it at `killAfterMs` (it had not exited by then). */
  readonly killed: boolean;
  /** It was still running at `timeoutMs` and was killed for that: a hang. */
  readonly hung: boolean;
}

/** Options of {@link runNode}. */
export interface RunNodeOptions {
  /** SIGKILL the child this many ms after spawning it, if it still runs. */
  killAfterMs?: number | undefined;
  /** SIGKILL it after this long regardless and report `hung` (default 120 s). */
  timeoutMs?: number | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  cwd?: string | undefined;
}

/**
 * Runs `node SCRIPT ARGS…` with pipes for stdout and stderr and resolves when it exits. Never
 * rejects for the child's own failure (only when it cannot be spawned). Asynchronous, so servers
 * in the calling process (registries, proxies) keep answering while it runs.
 */
export function runNode(script: string, args: readonly string[], o: RunNodeOptions = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [script, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: o.env ?? process.env,
      cwd: o.cwd,
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    let hung = false;
    p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const kill =
      o.killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            killed = p.exitCode === null && p.signalCode === null;
            p.kill("SIGKILL");
          }, o.killAfterMs);
    const limit = setTimeout(() => {
      hung = true;
      p.kill("SIGKILL");
    }, o.timeoutMs ?? 120_000);
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(kill);
      clearTimeout(limit);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        ms: performance.now() - t0,
        killed: killed && signal === "SIGKILL",
        hung,
      });
    });
  });
}
