// `rkt image serve`: a node whose store was filled by `rkt fetch` from a real registry serves it;
// a neighbour's `rkt fetch` goes through a registries.conf mirror entry naming it while the
// origin is stopped, skopeo copies from it, and the built binary stops cleanly on SIGTERM.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { runRkt } from "./helpers.js";

const exec = promisify(execFile);
const bin = resolve(import.meta.dirname, "..", "bin", "rkt.js");
let tmp: string;
let origin: Registry;
let digest: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-image-serve-"));
  origin = await startRegistry({ mode: "plain" });
  const img = await writeOciLayout(join(tmp, "layout"), {
    layers: [[{ path: "hello.txt", type: "file", content: Buffer.alloc(100_000, "h") }]],
  });
  digest = img.descriptor.digest;
  await pushLayout(join(tmp, "layout"), "team/app:v1", origin);
  const r = await runRkt(
    [
      "--dir",
      join(tmp, "warm"),
      "--insecure-options=image,http",
      "fetch",
      "--no-render",
      `docker://${origin.host}/team/app:v1`,
    ],
    { cwd: tmp },
  );
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await origin?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

// Resolves with the address once the command printed its `listening on` line.
function listening(out: PassThrough): Promise<string> {
  return new Promise((done) => {
    let text = "";
    out.on("data", (c: Buffer) => {
      text += c.toString();
      const m = /listening on https?:\/\/(\S+)\n/.exec(text);
      if (m?.[1] !== undefined) done(m[1]);
    });
  });
}

describe("rkt image serve", () => {
  it("is a mirror for a neighbour's rkt fetch with the origin stopped, and skopeo copies from it", async () => {
    const ac = new AbortController();
    const out = new PassThrough();
    const served = runRkt(["--dir", join(tmp, "warm"), "image", "serve", "--listen", "127.0.0.1:0"], {
      cwd: tmp,
      stdout: out,
      signal: ac.signal,
    });
    const addr = await listening(out);
    try {
      await origin.stop();
      const conf = join(tmp, "registries.conf");
      writeFileSync(
        conf,
        `[[registry]]\nprefix = "${origin.host}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${addr}"\ninsecure = true\n`,
      );
      const r = await runRkt(
        [
          "--dir",
          join(tmp, "neighbour"),
          "--insecure-options=image,http",
          "fetch",
          "--no-render",
          `docker://${origin.host}/team/app:v1`,
        ],
        { cwd: tmp, env: { CONTAINERS_REGISTRIES_CONF: conf } },
      );
      expect(r.stderr).not.toContain("failed");
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(digest);
      await exec("skopeo", [
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        `docker://${addr}/team/app:v1`,
        `oci:${join(tmp, "skopeo")}:v1`,
      ]);
      const index = JSON.parse(readFileSync(join(tmp, "skopeo", "index.json"), "utf8")) as {
        manifests: { digest: string }[];
      };
      expect(index.manifests[0]?.digest).toBe(digest);
    } finally {
      ac.abort();
    }
    expect((await served).code).toBe(0);
  });

  it("refuses bad flags before listening", async () => {
    const noListen = await runRkt(["--dir", join(tmp, "warm"), "image", "serve"], { cwd: tmp });
    expect(noListen).toMatchObject({ code: 254, stderr: expect.stringContaining("--listen") as unknown });
    const half = await runRkt(
      ["--dir", join(tmp, "warm"), "image", "serve", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"],
      { cwd: tmp },
    );
    expect(half).toMatchObject({ code: 254, stderr: expect.stringContaining("--tls-key") as unknown });
    const bad = await runRkt(["--dir", join(tmp, "warm"), "image", "serve", "--listen", "nowhere"], {
      cwd: tmp,
    });
    expect(bad).toMatchObject({
      code: 254,
      stderr: expect.stringContaining("invalid listen address") as unknown,
    });
  });

  it("the binary logs requests with --debug and exits 0 on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [bin, "--dir", join(tmp, "warm"), "--debug", "image", "serve", "--listen", "127.0.0.1:0"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
    const out = new PassThrough();
    child.stdout.pipe(out);
    const addr = await listening(out);
    const res = await fetch(`http://${addr}/v2/team/app/tags/list`);
    expect(await res.json()).toEqual({ name: "team/app", tags: ["v1"] });
    await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/GET \/v2\/team\/app\/tags\/list 200/);
  });
});
