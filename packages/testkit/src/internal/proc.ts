import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { ErrorCode, RktError } from "@rkt/oci";

/** Output of a finished command. */
export interface RunResult {
  stdout: string;
  /** stdout as bytes, for binary or exact output (raw manifests). */
  stdoutBytes: Buffer;
  stderr: string;
}

/**
 * Runs a command to completion and returns its output. Throws RKT_INTERNAL naming the command,
 * its exit status and the tail of its stderr when it fails or cannot start (tool missing).
 */
export async function run(
  cmd: string,
  args: readonly string[],
  o: { cwd?: string | undefined; env?: NodeJS.ProcessEnv | undefined; input?: string | undefined } = {},
): Promise<RunResult> {
  return await new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    if (o.input !== undefined) child.stdin?.end(o.input);
    child.on("error", (e) =>
      reject(new RktError(ErrorCode.Internal, `cannot run ${cmd}: ${e.message}`, { cause: e })),
    );
    child.on("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      const stdout = stdoutBytes.toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) {
        resolve({ stdout, stdoutBytes, stderr });
        return;
      }
      const how = signal === null ? `exit status ${code}` : `signal ${signal}`;
      reject(
        new RktError(
          ErrorCode.Internal,
          `${cmd} ${args.join(" ")} failed (${how}): ${tail(stderr || stdout, 2000)}`,
        ),
      );
    });
  });
}

/** The last `n` characters of `s`, trimmed; what goes into an error message. */
export function tail(s: string, n: number): string {
  const t = s.trim();
  return t.length <= n ? t : `…${t.slice(-n)}`;
}

/**
 * A loopback TCP port that was free a moment ago: bind to port 0, read the port, close. Another
 * process can take it before the caller binds, so callers retry on "address already in use".
 */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
