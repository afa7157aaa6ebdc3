// `rkt fetch https://…/x.aci` in-process against a real HTTPS server on loopback (a test CA the
// client trusts through NODE_EXTRA_CA_CERTS) serving the committed signed example ACI.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gunzipSync } from "node:zlib";
import { writeAci } from "@rkt/appc";
import { main } from "@rkt/cli";
import { hostOsArch } from "@rkt/fetch";
import { gnupgHome, startAppcServer, type AppcServer, type GnupgHome } from "@rkt/testkit";
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
  o: { tty?: boolean; env?: Record<string, string> } = {},
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
      env: { NODE_EXTRA_CA_CERTS: server.caCert, ...o.env },
      cwd: repo,
      uid: 0,
    });
    return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  };
}

/** An environment whose keystore trusts the committed demo key for example.com/hello. */
async function trustingDemoKey(): Promise<ReturnType<typeof env>> {
  const rkt = env();
  const trust = ["--prefix", "example.com/hello", "--skip-fingerprint-review", "examples/keys/demo.pub.asc"];
  expect((await rkt(["trust", ...trust])).code).toBe(0);
  return rkt;
}

describe("rkt fetch https://…/x.aci", () => {
  it("verifies against the keystore, prints the ID as rkt; a re-fetch is answered 304", async () => {
    const rkt = await trustingDemoKey();
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
      stderr: `fetch: error downloading the signature file: ${url}.asc: bad HTTP status code: 404\n`,
    });
    expect((await rkt(["image", "list", "--format", "json"])).stdout).toBe("null\n");
    expect(await rkt(["--insecure-options=image", "fetch", url])).toEqual({
      code: 0,
      stdout: `${helloId}\n`,
      stderr: "image: warning: image signature verification has been disabled\n",
    });
  });

  it("--signature FILE is used instead of downloading one", async () => {
    const rkt = await trustingDemoKey();
    const before = server.requests.length;
    const f = await rkt(["fetch", `${server.origin}/unsigned.aci`, "--signature", "examples/hello.aci.asc"]);
    expect(f).toMatchObject({ code: 0, stdout: `${helloId}\n` });
    expect(server.requests.slice(before).map((r) => r.path)).toEqual(["/unsigned.aci"]);
    const missing = await rkt(["fetch", `${server.origin}/unsigned.aci`, "--signature", "nope.asc"]);
    expect(missing.code).toBe(254);
    expect(missing.stderr).toMatch(
      /^fetch: error opening signature file: .*nope\.asc: no such file or directory\n$/,
    );
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

describe("rkt fetch NAME (appc discovery)", () => {
  let gnupg: GnupgHome;
  const name = "127.0.0.1/cli/app";
  let id: string;
  beforeAll(async () => {
    gnupg = gnupgHome(join(tmp, "gnupg"));
    gnupg.generateKey("Cli Publisher <cli@example.com>");
    const { os, arch } = hostOsArch();
    const manifest = {
      acKind: "ImageManifest",
      acVersion: "0.8.11",
      name,
      labels: [
        { name: "version", value: "1.0" },
        { name: "os", value: os },
        { name: "arch", value: arch },
      ],
    };
    const aci = await buffer(writeAci(JSON.stringify(manifest), [{ header: { name: "hi" }, body: "hi\n" }]));
    id = `sha512-${createHash("sha512").update(aci).digest("hex").slice(0, 32)}`;
    server.discovery(
      "/cli/app",
      name,
      [`${server.origin}/cli/{name}-{version}-{os}-{arch}.{ext}`],
      [`${server.origin}/cli/pubkeys.asc`],
    );
    server.route(`/cli/${name}-1.0-${os}-${arch}.aci`, { body: aci });
    server.route(`/cli/${name}-1.0-${os}-${arch}.aci.asc`, {
      body: gnupg.sign("cli@example.com", aci),
    });
    server.route("/cli/pubkeys.asc", { body: gnupg.exportKey("cli@example.com") });
  });
  afterAll(() => gnupg.close());

  it("without a trusted key the signer is refused before the ACI is downloaded", async () => {
    const rkt = env({ env: { RKT_DISCOVERY_PORT: String(server.port) } });
    const before = server.requests.length;
    expect(await rkt(["fetch", `${name}:1.0`])).toEqual({
      code: 254,
      stdout: "",
      stderr:
        "image: If you expected the signing key to change, try running:\n" +
        `image:     rkt trust --prefix "${name}"\n` +
        `fetch: image "${name}" verification failed: openpgp: signature made by unknown entity\n`,
    });
    expect(server.requests.slice(before).some((r) => r.path.endsWith(".aci"))).toBe(false);
    expect((await rkt(["image", "list", "--format", "json"])).stdout).toBe("null\n");
  });

  it("--trust-keys-from-https trusts the discovered key for the name, then fetches and verifies", async () => {
    const rkt = env({ env: { RKT_DISCOVERY_PORT: String(server.port) } });
    const f = await rkt(["--trust-keys-from-https", "fetch", `${name}:1.0`]);
    expect(f.stdout).toBe(`${id}\n`);
    expect(f.code).toBe(0);
    expect(f.stderr).toContain(
      `image: trusting "${server.origin}/cli/pubkeys.asc" for prefix "${name}" (--trust-keys-from-https):\ngpg key fingerprint is: `,
    );
    expect(f.stderr).toContain(`image: added key for prefix "${name}" at "`);
    expect(f.stderr).toMatch(/image: signature verified:\n {2}Cli Publisher <cli@example.com>\n$/);
    // The key is now trusted: a second fetch (new policy: the store) needs no flag and no server.
    const before = server.requests.length;
    expect(await rkt(["fetch", "--pull-policy=new", `${name}:1.0`])).toEqual({
      code: 0,
      stdout: `${id}\n`,
      stderr: "",
    });
    expect(server.requests.length).toBe(before);
  });
});
