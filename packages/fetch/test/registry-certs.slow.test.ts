// certs.d (containers-certs.d(5)): a TLS registry whose CA is not given in the options is trusted
// once the CA sits in <root>/<host:port>/ca.crt, and refused without it; `*.cert`/`*.key` pairs
// are client certificates, shown to a node:https server that requires one (the testkit's
// registry cannot be told to), over both transports (node:https pings, undici blobs).
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "@rkt/oci";
import { RegistryClient, type RegistryClientOptions } from "../src/registry/client.js";
import { startRegistry, type Registry } from "@rkt/testkit";
import { makeCerts, makeImage } from "./registry-harness.js";
import { pullAndCheck, pushImage } from "./net-helpers.js";

const run = promisify(execFile);

let work: string;
const clients: RegistryClient[] = [];
function client(host: string, o: RegistryClientOptions): RegistryClient {
  const c = new RegistryClient(host, { retry: { maxAttempts: 1 }, env: {}, ...o });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "rkt-certs-test-"));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

// A certs.d root under the test's directory with `files` in <root>/<host>/.
async function certsRoot(name: string, host: string, files: Record<string, string>): Promise<string> {
  const root = join(work, name);
  await mkdir(join(root, host), { recursive: true });
  for (const [f, text] of Object.entries(files)) await writeFile(join(root, host, f), text);
  return root;
}

describe("certs.d CAs against a TLS docker-registry", () => {
  let reg: Registry;
  const img = makeImage({ os: "linux", architecture: "amd64" }, 100_000);
  beforeAll(async () => {
    reg = await startRegistry({ mode: "tls" });
    await pushImage(client(reg.host, { caPem: reg.caPem }), "certs/img", "v1", img);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("is refused without its CA, naming certs.d", async () => {
    const empty = join(work, "empty-root");
    await mkdir(empty, { recursive: true });
    await expect(client(reg.host, { certsDirs: [empty] }).ping()).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      message: expect.stringMatching(
        new RegExp(
          `^ping ${reg.host}: [A-Z_]+.*certificate.*\\(trust its CA, e\\.g\\. in /etc/containers/certs\\.d/<host:port>/ca\\.crt, or allow with --insecure-options=tls\\)$`,
          "i",
        ),
      ),
    });
  });

  it("is trusted once its CA is in <root>/<host:port>/ca.crt (node:https and undici)", async () => {
    const root = await certsRoot("trusted", reg.host, { "ca.crt": reg.caPem ?? "" });
    await pullAndCheck(client(reg.host, { certsDirs: [root] }), "certs/img", "v1", img);
  });

  it("reads the roots from RKT_CERTS_D when no option is given", async () => {
    const root = await certsRoot("from-env", reg.host, { "ca.crt": reg.caPem ?? "" });
    const missing = join(work, "no-such-root");
    await pullAndCheck(
      client(reg.host, { env: { RKT_CERTS_D: `${missing}:${root}` } }),
      "certs/img",
      "v1",
      img,
    );
  });

  it("uses the first root that has the host's directory, as containers/image", async () => {
    const good = await certsRoot("good", reg.host, { "ca.crt": reg.caPem ?? "" });
    const shadow = await certsRoot("shadow", reg.host, {});
    await expect(client(reg.host, { certsDirs: [shadow, good] }).ping()).rejects.toMatchObject({
      code: "RKT_REGISTRY",
    });
    await pullAndCheck(client(reg.host, { certsDirs: [join(work, "absent"), good] }), "certs/img", "v1", img);
  });

  it("certDir (skopeo's --cert-dir) holds the files themselves and must exist", async () => {
    await pullAndCheck(client(reg.host, { certDir: reg.certDir }), "certs/img", "v1", img);
    const missing = join(work, "no-such-cert-dir");
    await expect(client(reg.host, { certDir: missing }).ping()).rejects.toMatchObject({
      code: "RKT_INVALID_ARGUMENT",
      message: `cert dir ${missing}: no such directory`,
    });
  });

  it("refuses an unpaired client certificate or key, and a CA file without a certificate", async () => {
    const cases: [string, Record<string, string>, string][] = [
      [
        "lone-cert",
        { "client.cert": "x" },
        "client certificate client.cert has no client.key (CA certificates must end in .crt)",
      ],
      ["lone-key", { "client.key": "x" }, "key client.key has no client certificate client.cert"],
      ["bad-ca", { "ca.crt": "not a certificate" }, "no PEM certificate in this CA file"],
    ];
    for (const [name, files, text] of cases) {
      const root = await certsRoot(name, reg.host, files);
      const e: unknown = await client(reg.host, { certsDirs: [root] })
        .ping()
        .catch((err: unknown) => err);
      expect(e).toMatchObject({ code: "RKT_INVALID_ARGUMENT", message: expect.stringContaining(text) });
      expect((e as Error).message).toContain(join(root, reg.host));
    }
  });
});

// A CA, a client certificate it signed (clientAuth) and a second, unrelated key.
async function clientPki(dir: string): Promise<{ ca: string; cert: string; key: string; otherKey: string }> {
  await mkdir(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const f = (n: string) => join(dir, n);
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=rkt client CA",
  ]);
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    f("client.key"),
    "-out",
    f("client.csr"),
    "-subj",
    "/CN=rkt test client",
  ]);
  await writeFile(f("ext.cnf"), "extendedKeyUsage=clientAuth\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    f("client.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("client.cert"),
    "-days",
    "2",
    "-extfile",
    f("ext.cnf"),
  ]);
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    f("other.key"),
  ]);
  const read = (n: string) => readFile(f(n), "utf8");
  return {
    ca: await read("ca.pem"),
    cert: await read("client.cert"),
    key: await read("client.key"),
    otherKey: await read("other.key"),
  };
}

describe("client certificates (mTLS) from certs.d", () => {
  let server: Server;
  let host: string;
  let serverCa: string;
  let pki: Awaited<ReturnType<typeof clientPki>>;
  const peers: string[] = [];
  const blob = randomBytes(50_000);
  const digest = parseDigest(`sha256:${createHash("sha256").update(blob).digest("hex")}`);

  beforeAll(async () => {
    const s = await makeCerts(await mkdtemp(join(work, "server-")));
    serverCa = await readFile(s.ca, "utf8");
    pki = await clientPki(join(work, "client-pki"));
    server = createServer(
      {
        cert: await readFile(s.cert),
        key: await readFile(s.key),
        ca: pki.ca,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        peers.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
        if (req.url === "/v2/") return void res.end("{}");
        if (req.url === `/v2/r/blobs/${digest}`) {
          res.setHeader("content-length", blob.length);
          return void res.end(blob);
        }
        res.statusCode = 404;
        res.end();
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
  });

  it("presents the *.cert/*.key pair to a server that requires one (ping and blob)", async () => {
    peers.length = 0;
    const root = await certsRoot("mtls", host, {
      "ca.crt": serverCa,
      "client.cert": pki.cert,
      "client.key": pki.key,
    });
    const c = client(host, { certsDirs: [root] });
    await c.ping();
    const chunks: Buffer[] = [];
    for await (const x of await c.fetchBlob("r", {
      mediaType: "application/octet-stream",
      digest,
      size: blob.length,
    })) {
      chunks.push(x as Buffer);
    }
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    expect(peers).toEqual(["rkt test client", "rkt test client"]);
  });

  it("a pair is loaded with --insecure-options=tls too (no CA needed)", async () => {
    const root = await certsRoot("mtls-insecure", host, { "client.cert": pki.cert, "client.key": pki.key });
    await client(host, { certsDirs: [root], insecure: { tls: true } }).ping();
  });

  it("without the pair the server's refusal is a network error", async () => {
    const root = await certsRoot("mtls-none", host, { "ca.crt": serverCa });
    await expect(client(host, { certsDirs: [root] }).ping()).rejects.toMatchObject({ code: "RKT_REGISTRY" });
  });

  it("a key that is not the certificate's is refused before connecting", async () => {
    const root = await certsRoot("mtls-wrong-key", host, {
      "ca.crt": serverCa,
      "client.cert": pki.cert,
      "client.key": pki.otherKey,
    });
    await expect(client(host, { certsDirs: [root] }).ping()).rejects.toMatchObject({
      code: "RKT_INVALID_ARGUMENT",
      message: `${join(root, host)}: client.key is not the key of client.cert`,
    });
  });

  it("the pair is also picked up from skopeo-style certDir", async () => {
    const dir = join(work, "flat");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "ca.crt"), serverCa);
    await writeFile(join(dir, "me.cert"), pki.cert);
    await writeFile(join(dir, "me.key"), pki.key);
    await copyFile(join(dir, "ca.crt"), join(dir, "ignored.pem"));
    await client(host, { certDir: dir }).ping();
  });
});
