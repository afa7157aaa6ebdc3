// `rkt fetch https://…/x.aci` in-process against a real HTTPS server on loopback (a test CA the
// client trusts through NODE_EXTRA_CA_CERTS) serving the committed signed example ACI.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { gunzipSync } from "node:zlib";
import { main } from "@rkt/cli";
import { startAppcServer, type AppcServer } from "@rkt/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloAci = readFileSync(join(repo, "examples", "hello.aci"));
const helloSig = readFileSync(join(repo, "examples", "hello.aci.asc"));
const helloId = `sha512-${createHash("sha512").update(gunzipSync(helloAci)).digest("hex").slice(0, 32)}`;

let tmp: string;
let server: AppcServer;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-fetch-appc-"));
  server = await startAppcServer();
  server.route("/hello.aci", { body: helloAci });
  server.route("/hello.aci.asc", { body: helloSig });
  server.route("/unsigned.aci", { body: helloAci });
});
afterAll(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
function env(
  o: { tty?: boolean } = {},
): (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }> {
  const d = join(tmp, `env-${n++}`);
  const globals = [
    `--dir=${join(d, "data")}`,
    `--local-config=${join(d, "etc")}`,
    `--system-config=${join(d, "lib")}`,
  ];
  return async (args) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdout = new PassThrough().on("data", (c: Buffer) => out.push(c));
    const stderr = new PassThrough().on("data", (c: Buffer) => err.push(c));
    if (o.tty === true) Object.assign(stderr, { isTTY: true });
    const code = await main([...globals, ...args], {
      stdout,
      stderr,
      env: { NODE_EXTRA_CA_CERTS: server.caCert },
      cwd: repo,
      uid: 0,
    });
    return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  };
}

describe("rkt fetch https://…/x.aci", () => {
  it("verifies against the keystore, prints the ID as rkt; a re-fetch is answered 304", async () => {
    const rkt = env();
    const t = await rkt([
      "trust",
      "--prefix",
      "example.com/hello",
      "--skip-fingerprint-review",
      "examples/keys/demo.pub.asc",
    ]);
    expect(t.code).toBe(0);
    const url = `${server.origin}/hello.aci`;
    expect(await rkt(["fetch", url])).toEqual({
      code: 0,
      stdout: `${helloId}\n`,
      stderr:
        "image: signature verified:\n  rkt demo signer (throwaway; private key discarded) <demo@example.com>\n",
    });
    const again = await rkt(["fetch", "--format", "json", url]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject([{ name: "example.com/hello", bytesDownloaded: 0 }]);
    expect(server.requests.filter((r) => r.path === "/hello.aci").map((r) => r.status)).toEqual([200, 304]);
  });

  it("an unsigned ACI exits 254 with rkt's line and stores nothing; --insecure-options=image warns", async () => {
    const rkt = env();
    const url = `${server.origin}/unsigned.aci`;
    expect(await rkt(["fetch", url])).toEqual({
      code: 254,
      stdout: "",
      stderr: "fetch: error downloading the signature file: bad HTTP status code: 404\n",
    });
    expect((await rkt(["image", "list", "--format", "json"])).stdout).toBe("null\n");
    expect(await rkt(["--insecure-options=image", "fetch", url])).toEqual({
      code: 0,
      stdout: `${helloId}\n`,
      stderr: "image: warning: image signature verification has been disabled\n",
    });
  });

  it("on a terminal a Downloading ACI line is drawn and cleared", async () => {
    const rkt = env({ tty: true });
    const f = await rkt(["--insecure-options=image", "fetch", `${server.origin}/unsigned.aci`]);
    expect(f.code).toBe(0);
    expect(f.stdout).toBe(`${helloId}\n`);
    const kib = (helloAci.length / (1 << 20)).toFixed(1);
    expect(f.stderr).toContain(`\r\x1b[KDownloading ACI: ${kib} MiB / ${kib} MiB`);
    expect(f.stderr.endsWith("\r\x1b[K")).toBe(true);
  });
});
