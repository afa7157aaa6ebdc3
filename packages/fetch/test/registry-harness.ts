// Test harness for the registry client: the real Debian `docker-registry` (distribution 2.8) on a
// loopback port, in plain, basic (htpasswd over TLS) or TLS mode, and OCI layouts pushed to it
// with skopeo. Local to these tests until the testkit's startRegistry() lands.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { X509Certificate, createHash, createPrivateKey, randomBytes, sign } from "node:crypto";
import { createServer as createHttpsServer } from "node:https";
import type { Server } from "node:https";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import bcrypt from "bcryptjs";

const run = promisify(execFile);

export type RegistryMode = "plain" | "basic" | "tls" | "token";

export interface TestRegistry {
  readonly host: string;
  readonly url: string;
  readonly mode: RegistryMode;
  readonly caPem?: string | undefined;
  readonly caDir?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Token mode: the scopes of every token issued, and whether the request carried credentials. */
  readonly tokenRequests: { scopes: string[]; authenticated: boolean }[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const key = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const cert = join(dir, "server.crt");
  const ext = join(dir, "ext.cnf");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    "/CN=rkt test CA",
  ]);
  await run("openssl", [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return { ca, cert, key };
}

/** Starts docker-registry on 127.0.0.1; resolves once `/v2/` answers. */
export async function startTestRegistry(mode: RegistryMode): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "rkt-registry-"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tls = mode !== "plain";
  const lines = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${host}`,
    "  secret: rkt-test-secret",
  ];
  let caPem: string | undefined;
  let caDir: string | undefined;
  if (tls) {
    const c = await makeCerts(dir);
    lines.push("  tls:", `    certificate: ${c.cert}`, `    key: ${c.key}`);
    caPem = await readFile(c.ca, "utf8");
    caDir = join(dir, "certs.d");
    await mkdir(caDir);
    await writeFile(join(caDir, "ca.crt"), caPem);
  }
  const username = "rkt";
  const password = "s3cret:with-colon";
  if (mode === "basic") {
    const htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, `${username}:${bcrypt.hashSync(password, 5)}\n`);
    lines.push("auth:", "  htpasswd:", "    realm: rkt-test", `    path: ${htpasswd}`);
  }
  const tokenRequests: TestRegistry["tokenRequests"] = [];
  let tokenServer: Server | undefined;
  if (mode === "token") {
    // distribution 2.8 checks the JWT's x5c certificate against rootcertbundle.
    const signerKey = join(dir, "signer.key");
    const signerCert = join(dir, "signer.crt");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      signerKey,
      "-out",
      signerCert,
      "-days",
      "2",
      "-subj",
      "/CN=rkt token signer",
    ]);
    const key = createPrivateKey(await readFile(signerKey));
    const der = new X509Certificate(await readFile(signerCert)).raw.toString("base64");
    const expected = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    const server = createHttpsServer(
      { cert: await readFile(join(dir, "server.crt")), key: await readFile(join(dir, "server.key")) },
      (req, res) => {
        const url = new URL(req.url ?? "/", "https://127.0.0.1");
        const authenticated = req.headers.authorization === expected;
        if (req.headers.authorization !== undefined && !authenticated) {
          res.writeHead(401, { "content-type": "application/json" });
          return void res.end(
            JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }),
          );
        }
        const scopes = url.searchParams.getAll("scope");
        tokenRequests.push({ scopes, authenticated });
        // Anonymous users may pull public/*; the user may do anything.
        const access = scopes.flatMap((sc) => {
          const first = sc.indexOf(":");
          const last = sc.lastIndexOf(":");
          const name = sc.slice(first + 1, last);
          const actions = sc
            .slice(last + 1)
            .split(",")
            .filter((a) => authenticated || (a === "pull" && name.startsWith("public/")));
          return actions.length === 0 ? [] : [{ type: sc.slice(0, first), name, actions }];
        });
        const now = Math.floor(Date.now() / 1000);
        const b64 = (x: string | Buffer) => Buffer.from(x).toString("base64url");
        const input = `${b64(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [der] }))}.${b64(
          JSON.stringify({
            iss: "rkt-test",
            sub: authenticated ? username : "",
            aud: "rkt-test-registry",
            exp: now + 300,
            nbf: now - 10,
            iat: now,
            jti: randomBytes(8).toString("hex"),
            access,
          }),
        )}`;
        const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ access_token: `${input}.${b64(sig)}`, expires_in: 300 }));
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    tokenServer = server;
    const realm = `https://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${realm}`,
      "    service: rkt-test-registry",
      "    issuer: rkt-test",
      `    rootcertbundle: ${signerCert}`,
    );
  }
  const config = join(dir, "config.yml");
  await writeFile(config, `${lines.join("\n")}\n`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
  const child: ChildProcess = spawn("docker-registry", ["serve", config], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const url = `${tls ? "https" : "http"}://${host}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    url,
    mode,
    caPem,
    caDir,
    ...(mode === "basic" || mode === "token" ? { username, password } : {}),
    tokenRequests,
    async stop() {
      if (tokenServer !== undefined) {
        tokenServer.closeAllConnections();
        tokenServer.close();
      }
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Blob {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly bytes: Buffer;
}

function blobOf(mediaType: string, bytes: Buffer): Blob {
  return {
    mediaType,
    digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    size: bytes.length,
    bytes,
  };
}

function tarOf(name: string, content: Buffer): Buffer {
  // A minimal ustar archive: one regular file, then two zero blocks.
  const h = Buffer.alloc(512);
  h.write(name, 0, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${content.length.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write("0", 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([h, content, pad, Buffer.alloc(1024)]);
}

export interface TestImage {
  readonly manifest: Blob;
  readonly config: Blob;
  readonly layer: Blob;
  readonly platform: { os: string; architecture: string; variant?: string };
}

/** A one-layer image whose layer holds `layerBytes` random bytes (gzip, so about as large). */
export function makeImage(platform: TestImage["platform"], layerBytes: number): TestImage {
  const layer = blobOf(
    "application/vnd.oci.image.layer.v1.tar+gzip",
    gzipSync(tarOf("data.bin", randomBytes(layerBytes)), { level: 1 }),
  );
  const diffId = `sha256:${createHash("sha256")
    .update(tarOf("x", Buffer.alloc(0)))
    .digest("hex")}`;
  const config = blobOf(
    "application/vnd.oci.image.config.v1+json",
    Buffer.from(JSON.stringify({ ...platform, rootfs: { type: "layers", diff_ids: [diffId] }, config: {} })),
  );
  const manifest = blobOf(
    "application/vnd.oci.image.manifest.v1+json",
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
      }),
    ),
  );
  return { manifest, config, layer, platform };
}

export function makeIndex(images: readonly TestImage[]): Blob {
  return blobOf(
    "application/vnd.oci.image.index.v1+json",
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: images.map((i) => ({
          mediaType: i.manifest.mediaType,
          digest: i.manifest.digest,
          size: i.manifest.size,
          platform: i.platform,
        })),
      }),
    ),
  );
}

/** Writes an OCI layout holding `blobs`, with `top` tagged `tag` in index.json. */
export async function writeLayout(
  dir: string,
  blobs: readonly Blob[],
  top: Blob,
  tag: string,
): Promise<void> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const b of blobs) await writeFile(join(dir, "blobs", "sha256", b.digest.slice(7)), b.bytes);
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: top.mediaType,
          digest: top.digest,
          size: top.size,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
}

/** skopeo copy of a layout's `tag` to `<registry>/<repository>:<tag>`, keeping digests. */
export async function pushLayout(
  dir: string,
  tag: string,
  reg: TestRegistry,
  repository: string,
): Promise<void> {
  const args = ["--insecure-policy", "copy", "--all", "--preserve-digests", "-q"];
  if (reg.mode === "plain") args.push("--dest-tls-verify=false");
  else args.push("--dest-cert-dir", reg.caDir ?? "");
  if (reg.username !== undefined) args.push("--dest-creds", `${reg.username}:${reg.password ?? ""}`);
  args.push(`oci:${dir}:${tag}`, `docker://${reg.host}/${repository}:${tag}`);
  await run("skopeo", args, { env: { ...process.env, HOME: dir } });
}
