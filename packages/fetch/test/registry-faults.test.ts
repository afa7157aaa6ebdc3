// Faults the real registry cannot produce, from a small misbehaving node:http(s) server on
// 127.0.0.1: wrong content, truncated and stalled bodies, 429/5xx, redirect loops and redirects
// across hosts and to http, oversized and schema1 manifests, an index without our platform.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
  type Server,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseDigest, type Descriptor } from "@rkt/oci";
import { RegistryClient, type RegistryClientOptions } from "../src/registry/client.js";
import { staticCredentials } from "../src/registry/credentials.js";
import { makeCerts } from "./registry-harness.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface FakeServer {
  readonly host: string;
  readonly origin: string;
  readonly requests: { method: string; url: string; headers: IncomingMessage["headers"] }[];
  handle: Handler;
  close(): Promise<void>;
}

const servers: FakeServer[] = [];
let tls: { cert: string; key: string; ca: string } | undefined;
let certDir: string;

beforeAll(async () => {
  certDir = await mkdtemp(join(tmpdir(), "rkt-fault-certs-"));
  const c = await makeCerts(certDir);
  tls = {
    cert: await readFile(c.cert, "utf8"),
    key: await readFile(c.key, "utf8"),
    ca: await readFile(c.ca, "utf8"),
  };
});
afterAll(async () => {
  await rm(certDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(secure = false): Promise<FakeServer> {
  const fake: FakeServer = {
    host: "",
    origin: "",
    requests: [],
    handle: (_req, res) => {
      res.statusCode = 404;
      res.end();
    },
    close: () => Promise.resolve(),
  };
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    fake.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    fake.handle(req, res);
  };
  const server: Server = secure
    ? createHttpsServer({ cert: tls?.cert, key: tls?.key }, listener)
    : createHttpServer(listener);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(fake, {
    host: `127.0.0.1:${port}`,
    origin: `${secure ? "https" : "http"}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  servers.push(fake);
  return fake;
}

const fast: RegistryClientOptions = {
  insecure: { http: true },
  retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 3000, maxElapsedMs: 10_000 },
  stallTimeoutMs: 300,
};

const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
function client(s: FakeServer, o: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient(s.host, { ...fast, ...o });
  clients.push(c);
  return c;
}

function blobOf(bytes: Buffer, mediaType = "application/octet-stream"): Descriptor & { bytes: Buffer } {
  return {
    mediaType,
    digest: parseDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`),
    size: bytes.length,
    bytes,
  };
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const t = Date.now();
  const [result] = await Promise.allSettled([p]);
  return { ms: Date.now() - t, result: result };
}

function reason(r: PromiseSettledResult<unknown>): unknown {
  expect(r.status).toBe("rejected");
  return r.status === "rejected" ? r.reason : undefined;
}

// Serves `blob` at /v2/r/blobs/<digest>, honouring Range; `mutate` may misbehave per attempt.
function blobRoute(
  blob: { bytes: Buffer; digest: string },
  mutate?: (attempt: number, req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean,
): Handler {
  let attempt = 0;
  return (req, res) => {
    if (req.url === "/v2/") return void res.end();
    if (req.url !== `/v2/r/blobs/${blob.digest}`) {
      res.statusCode = 404;
      return void res.end();
    }
    attempt++;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m === null ? 0 : Number(m[1]);
    const body = blob.bytes.subarray(start);
    if (m !== null) {
      res.statusCode = 206;
      res.setHeader("content-range", `bytes ${start}-${blob.bytes.length - 1}/${blob.bytes.length}`);
    }
    if (mutate?.(attempt, req, res, body) === true) return;
    res.setHeader("content-length", body.length);
    res.end(body);
  };
}

describe("blob faults", () => {
  const blob = blobOf(randomBytes(256 * 1024));

  it("wrong bytes of the right size fail with RKT_DIGEST_MISMATCH at the end", async () => {
    const s = await serve();
    const wrong = Buffer.from(blob.bytes);
    wrong[1000] = wrong[1000]! ^ 0xff;
    s.handle = blobRoute({ ...blob, bytes: wrong });
    const stream = await client(s).fetchBlob("r", blob);
    const e = reason((await timed(collect(stream))).result);
    expect(e).toMatchObject({
      code: "RKT_DIGEST_MISMATCH",
      expected: blob.digest,
      message: expect.stringContaining(`blob ${blob.digest}`),
    });
  });

  it("a longer body fails with RKT_SIZE_MISMATCH before reading it all", async () => {
    const s = await serve();
    s.handle = blobRoute({ ...blob, bytes: Buffer.concat([blob.bytes, Buffer.alloc(10)]) });
    await expect(client(s).fetchBlob("r", blob)).rejects.toMatchObject({
      code: "RKT_SIZE_MISMATCH",
      expected: blob.size,
      actual: blob.size + 10,
    });
  });

  it("a connection reset mid-body resumes with Range from the received offset", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (attempt, _req, res, body) => {
      if (attempt !== 1) return false;
      res.setHeader("content-length", body.length);
      res.write(body.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 20));
      return true;
    });
    const got = await collect(await client(s).fetchBlob("r", blob));
    expect(got.equals(blob.bytes)).toBe(true);
    const ranges = s.requests.filter((r) => r.url.includes("/blobs/")).map((r) => r.headers.range);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(ranges[1] ?? "")?.[0])).toBeGreaterThan(0);
  });

  it("a body truncated every time gives up after the bounded attempts", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (_a, _req, res, body) => {
      res.setHeader("content-length", body.length);
      res.write(body.subarray(0, 10_000), () => setTimeout(() => res.socket?.destroy(), 10));
      return true;
    });
    const stream = await client(s).fetchBlob("r", blob);
    const { ms, result } = await timed(collect(stream));
    expect(reason(result)).toMatchObject({
      code: "RKT_REGISTRY",
      temporary: true,
      message: expect.stringContaining(`blob ${blob.digest}`),
    });
    expect(s.requests.filter((r) => r.url.includes("/blobs/"))).toHaveLength(3);
    expect(ms).toBeLessThan(5000);
  });

  it("a body that ends cleanly but short resumes, then fails with RKT_SIZE_MISMATCH", async () => {
    const s = await serve();
    const short = blob.bytes.subarray(0, 1000);
    // No Content-Length: the server just closes (HTTP/1.0-style), so the client sees a clean end.
    s.handle = (req, res) => {
      if (req.headers.range !== undefined) {
        res.statusCode = 416;
        return void res.end();
      }
      res.write(short); // chunked, so the body ends cleanly
      res.end();
    };
    const stream = await client(s).fetchBlob("r", blob);
    expect(reason((await timed(collect(stream))).result)).toMatchObject({
      code: "RKT_SIZE_MISMATCH",
      expected: blob.size,
      actual: 1000,
    });
  });

  it("a stalled body hits the stall timeout and resumes", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (attempt, _req, res, body) => {
      if (attempt !== 1) return false;
      res.setHeader("content-length", body.length);
      res.write(body.subarray(0, 50_000)); // then nothing, connection left open
      return true;
    });
    const { ms, result } = await timed(client(s).fetchBlob("r", blob).then(collect));
    expect(result.status).toBe("fulfilled");
    expect(result.status === "fulfilled" && result.value.equals(blob.bytes)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
  });

  it("a body that always stalls fails with a stall error in bounded time", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (_a, _req, res, body) => {
      res.setHeader("content-length", body.length);
      res.write(body.subarray(0, 1000));
      return true;
    });
    const { ms, result } = await timed(client(s).fetchBlob("r", blob).then(collect));
    expect(reason(result)).toMatchObject({
      code: "RKT_REGISTRY",
      temporary: true,
      message: expect.stringContaining("stalled"),
    });
    // undici checks body timeouts on a ~1 s tick, so each stall costs up to a second here.
    expect(ms).toBeLessThan(5000);
  });

  it("a server ignoring Range (200) has the held prefix skipped", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (_a, _req, res) => {
      res.statusCode = 200;
      res.removeHeader("content-range");
      res.setHeader("content-length", blob.size);
      res.end(blob.bytes);
      return true;
    });
    const { createDigester } = await import("@rkt/oci");
    const d = createDigester();
    d.update(blob.bytes.subarray(0, 5000));
    const rest = await collect(await client(s).fetchBlob("r", blob, { offset: 5000, digester: d }));
    expect(rest.equals(blob.bytes.subarray(5000))).toBe(true);
  });

  it("a resume at the very end (and an empty blob) needs no request and still verifies", async () => {
    const s = await serve();
    const { createDigester } = await import("@rkt/oci");
    const d = createDigester();
    d.update(blob.bytes);
    expect(
      await collect(await client(s).fetchBlob("r", blob, { offset: blob.size, digester: d })),
    ).toHaveLength(0);
    const empty = blobOf(Buffer.alloc(0));
    expect(await collect(await client(s).fetchBlob("r", empty))).toHaveLength(0);
    expect(s.requests).toHaveLength(0);
    const wrong = createDigester();
    wrong.update(Buffer.alloc(blob.size));
    const stream = await client(s).fetchBlob("r", blob, { offset: blob.size, digester: wrong });
    await expect(collect(stream)).rejects.toMatchObject({ code: "RKT_DIGEST_MISMATCH" });
  });

  it("refuses an offset without the matching hash state", async () => {
    const s = await serve();
    await expect(client(s).fetchBlob("r", blob, { offset: 10 })).rejects.toMatchObject({
      code: "RKT_INVALID_ARGUMENT",
      message: expect.stringContaining("needs the digester of exactly those 10 bytes"),
    });
  });

  it("429 with Retry-After waits that long, then succeeds", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (attempt, _req, res) => {
      if (attempt !== 1) return false;
      res.statusCode = 429;
      res.setHeader("retry-after", "1");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }));
      return true;
    });
    const { ms, result } = await timed(client(s).fetchBlob("r", blob).then(collect));
    expect(result.status).toBe("fulfilled");
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(3000);
  });

  it("a 500 is retried, then succeeds", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (attempt, _req, res) => {
      if (attempt !== 1) return false;
      res.statusCode = 500;
      res.end("<html>oops</html>");
      return true;
    });
    expect((await collect(await client(s).fetchBlob("r", blob))).equals(blob.bytes)).toBe(true);
  });

  it("retries are bounded: always 503 gives up with the registry's diagnostics", async () => {
    const s = await serve();
    s.handle = (_req, res) => {
      res.statusCode = 503;
      res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "maintenance" }] }));
    };
    const { ms, result } = await timed(client(s).fetchBlob("r", blob));
    expect(reason(result)).toMatchObject({
      code: "RKT_REGISTRY",
      status: 503,
      temporary: true,
      diagnostics: [{ code: "UNAVAILABLE", message: "maintenance" }],
      message: expect.stringContaining("HTTP 503 (UNAVAILABLE: maintenance)"),
    });
    expect(s.requests.filter((r) => r.url.includes("/blobs/"))).toHaveLength(3);
    expect(ms).toBeLessThan(2000);
  });

  it("a Retry-After longer than the retry bound gives up at once", async () => {
    const s = await serve();
    s.handle = (_req, res) => {
      res.statusCode = 429;
      res.setHeader("retry-after", "3600");
      res.end();
    };
    const { ms, result } = await timed(client(s).fetchBlob("r", blob));
    expect(reason(result)).toMatchObject({ code: "RKT_REGISTRY", status: 429, retryAfterMs: 3_600_000 });
    expect(ms).toBeLessThan(1000);
  });

  it("an error body is read at most 64 KiB", async () => {
    const s = await serve();
    s.handle = (_req, res) => {
      res.statusCode = 400;
      res.write("x".repeat(1 << 20));
      res.end();
    };
    await expect(client(s).fetchBlob("r", blob)).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      status: 400,
      diagnostics: [],
    });
  });

  it("aborting fails with RKT_ABORTED", async () => {
    const s = await serve();
    s.handle = blobRoute(blob, (_a, _req, res, body) => {
      res.setHeader("content-length", body.length);
      res.write(body.subarray(0, 1000));
      return true;
    });
    const ac = new AbortController();
    const stream = await client(s, { stallTimeoutMs: 30_000 }).fetchBlob("r", blob, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    expect(reason((await timed(collect(stream))).result)).toMatchObject({ code: "RKT_ABORTED" });
  });
});

describe("redirects", () => {
  const blob = blobOf(randomBytes(10_000));

  it("a redirect loop stops after 10 redirects", async () => {
    const s = await serve();
    let n = 0;
    s.handle = (_req, res) => {
      res.statusCode = 302;
      res.setHeader("location", `/v2/r/blobs/loop-${n++}`);
      res.end();
    };
    const { ms, result } = await timed(client(s).fetchBlob("r", blob));
    expect(reason(result)).toMatchObject({
      code: "RKT_REGISTRY",
      message: expect.stringContaining("more than 10 redirects"),
    });
    expect(s.requests).toHaveLength(11);
    expect(ms).toBeLessThan(2000);
  });

  it("a redirect to another host does not carry Authorization", async () => {
    const storage = await serve();
    storage.handle = (_req, res) => {
      res.setHeader("content-length", blob.size);
      res.end(blob.bytes);
    };
    const reg = await serve();
    let tokens = 0;
    reg.handle = (req, res) => {
      if (req.url?.startsWith("/token")) {
        tokens++;
        res.setHeader("content-type", "application/json");
        return void res.end(JSON.stringify({ token: "tok-123", expires_in: 300 }));
      }
      if (req.headers.authorization !== "Bearer tok-123") {
        res.statusCode = 401;
        res.setHeader(
          "www-authenticate",
          `Bearer realm="${reg.origin}/token",service="fake",scope="repository:r:pull"`,
        );
        return void res.end();
      }
      res.statusCode = 307;
      res.setHeader("location", `${storage.origin}/bucket/blob?sig=abc`);
      res.end();
    };
    const c = client(reg);
    expect((await collect(await c.fetchBlob("r", blob))).equals(blob.bytes)).toBe(true);
    expect((await collect(await c.fetchBlob("r", blob))).equals(blob.bytes)).toBe(true);
    expect(tokens).toBe(1); // the token is reused for the same scope
    const authed = reg.requests.filter(
      (r) => r.url.includes("/blobs/") && r.headers.authorization === "Bearer tok-123",
    );
    expect(authed.length).toBe(2);
    expect(storage.requests).toHaveLength(2);
    for (const r of storage.requests) expect(r.headers.authorization).toBeUndefined();
    const tokenReq = reg.requests.find((r) => r.url.startsWith("/token"));
    expect(tokenReq?.url).toBe("/token?service=fake&scope=repository%3Ar%3Apull");
  });

  it("a redirect from https to http is refused without insecure http", async () => {
    const plain = await serve();
    const reg = await serve(true);
    reg.handle = (_req, res) => {
      res.statusCode = 307;
      res.setHeader("location", `${plain.origin}/bucket/blob`);
      res.end();
    };
    const c = client(reg, { insecure: undefined, caPem: tls?.ca });
    await expect(c.fetchBlob("r", blob)).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      message: expect.stringContaining(`refusing redirect to plain http ${plain.origin}/bucket/blob`),
    });
    expect(plain.requests).toHaveLength(0);
  });

  // Basic credentials over TLS, then a redirect of a blob GET elsewhere: to storage on another
  // origin over TLS, and to plain http where --insecure-options=http allows the hop itself.
  for (const secure of [true, false]) {
    it(`Basic credentials never follow a redirect to ${secure ? "another host" : "plain http"}`, async () => {
      const storage = await serve(secure);
      storage.handle = (_req, res) => {
        res.setHeader("content-length", blob.size);
        res.end(blob.bytes);
      };
      const reg = await serve(true);
      const expected = `Basic ${Buffer.from("u:p").toString("base64")}`;
      reg.handle = (req, res) => {
        if (req.headers.authorization !== expected) {
          res.statusCode = 401;
          res.setHeader("www-authenticate", 'Basic realm="fake"');
          return void res.end();
        }
        res.statusCode = 307;
        res.setHeader("location", `${storage.origin}/bucket/blob`);
        res.end();
      };
      const c = client(reg, {
        insecure: { http: !secure },
        caPem: tls?.ca,
        credentials: staticCredentials({ [reg.host]: { username: "u", password: "p" } }),
      });
      expect((await collect(await c.fetchBlob("r", blob))).equals(blob.bytes)).toBe(true);
      expect(reg.requests.some((r) => r.headers.authorization === expected)).toBe(true);
      expect(storage.requests).toHaveLength(1);
      expect(storage.requests[0]?.headers.authorization).toBeUndefined();
    });
  }

  it("Basic credentials go only over TLS: an http registry never gets them", async () => {
    const reg = await serve();
    reg.handle = (_req, res) => {
      res.statusCode = 401;
      res.setHeader("www-authenticate", 'Basic realm="fake"');
      res.end();
    };
    let asked = 0;
    const c = client(reg, {
      credentials: { credentialsFor: () => (asked++, Promise.resolve({ username: "u", password: "p" })) },
    });
    await expect(c.getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_UNAUTHORIZED",
      message: expect.stringContaining("credentials are never sent over plain http"),
    });
    expect(asked).toBe(0);
    for (const r of reg.requests) expect(r.headers.authorization).toBeUndefined();
  });

  it("Basic credentials are sent over TLS to the registry only", async () => {
    const reg = await serve(true);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {
          mediaType: "application/vnd.oci.image.config.v1+json",
          digest: `sha256:${"a".repeat(64)}`,
          size: 2,
        },
        layers: [
          {
            mediaType: "application/vnd.oci.image.layer.v1.tar",
            digest: `sha256:${"c".repeat(64)}`,
            size: 1,
          },
        ],
      }),
    );
    const expected = `Basic ${Buffer.from("u:p").toString("base64")}`;
    reg.handle = (req, res) => {
      if (req.headers.authorization !== expected) {
        res.statusCode = 401;
        res.setHeader("www-authenticate", 'Basic realm="fake"');
        return void res.end();
      }
      res.setHeader("content-type", "application/vnd.oci.image.manifest.v1+json");
      res.end(manifest);
    };
    const c = client(reg, {
      insecure: undefined,
      caPem: tls?.ca,
      credentials: staticCredentials({ [reg.host]: { username: "u", password: "p" } }),
    });
    const m = await c.getManifest("r", "latest");
    expect(Buffer.from(m.raw).equals(manifest)).toBe(true);
  });
});

describe("bearer tokens", () => {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${"d".repeat(64)}`,
        size: 2,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${"c".repeat(64)}`, size: 1 },
      ],
    }),
  );

  // A registry whose token endpoint is itself; tokens are "tok:<scopes>".
  function tokenRegistry(
    reg: FakeServer,
    onToken: (req: IncomingMessage, body: string) => string | undefined,
  ): void {
    reg.handle = (req, res) => {
      if (req.url?.startsWith("/token")) {
        let body = "";
        req.setEncoding("utf8").on("data", (d: string) => (body += d));
        req.on("end", () => {
          const tok = onToken(req, body);
          if (tok === undefined) {
            res.statusCode = 401;
            return void res.end();
          }
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ access_token: tok, expires_in: 300 }));
        });
        return;
      }
      const repo = /^\/v2\/(.+)\/manifests\//.exec(req.url ?? "")?.[1] ?? "";
      if (req.headers.authorization !== `Bearer tok:repository:${repo}:pull`) {
        res.statusCode = 401;
        res.setHeader(
          "www-authenticate",
          `Bearer realm="${reg.origin}/token",service="fake",scope="repository:${repo}:pull"`,
        );
        return void res.end();
      }
      res.setHeader("content-type", "application/vnd.oci.image.manifest.v1+json");
      res.end(manifest);
    };
  }

  it("asks one token per repository scope, never mixing a previous challenge's scope in", async () => {
    const reg = await serve();
    const asked: string[][] = [];
    tokenRegistry(reg, (req) => {
      const scopes = new URL(req.url ?? "", "http://x").searchParams.getAll("scope");
      asked.push(scopes);
      return `tok:${scopes.join(" ")}`;
    });
    const c = client(reg);
    await c.getManifest("a/one", "latest");
    await c.getManifest("b/two", "latest");
    await c.getManifest("a/one", "latest");
    expect(asked).toEqual([["repository:a/one:pull"], ["repository:b/two:pull"]]);
  });

  it("keeps a token at least 60 s even when the server says less (distribution's client rule)", async () => {
    const reg = await serve();
    let issued = 0;
    reg.handle = (req, res) => {
      if (req.url?.startsWith("/token")) {
        issued++;
        res.setHeader("content-type", "application/json");
        return void res.end(JSON.stringify({ token: "short", expires_in: 1 }));
      }
      if (req.headers.authorization !== "Bearer short") {
        res.statusCode = 401;
        res.setHeader("www-authenticate", `Bearer realm="${reg.origin}/token",service="fake"`);
        return void res.end();
      }
      res.setHeader("content-type", "application/vnd.oci.image.manifest.v1+json");
      res.end(manifest);
    };
    const c = client(reg);
    await c.getManifest("r", "latest");
    await new Promise((r) => setTimeout(r, 1200));
    await c.getManifest("r", "latest");
    expect(issued).toBe(1);
  });

  it("exchanges an identity token with the OAuth2 refresh_token grant (POST, over TLS)", async () => {
    const reg = await serve(true);
    let form: URLSearchParams | undefined;
    tokenRegistry(reg, (req, body) => {
      if (req.method !== "POST") return undefined;
      form = new URLSearchParams(body);
      return form.get("refresh_token") === "refresh-me" ? `tok:${form.get("scope") ?? ""}` : undefined;
    });
    const c = client(reg, {
      insecure: undefined,
      caPem: tls?.ca,
      credentials: staticCredentials({ [reg.host]: { identityToken: "refresh-me" } }),
    });
    expect(Buffer.from((await c.getManifest("r", "latest")).raw).equals(manifest)).toBe(true);
    expect(Object.fromEntries(form ?? [])).toMatchObject({
      grant_type: "refresh_token",
      service: "fake",
      scope: "repository:r:pull",
    });
  });
});

describe("manifest faults", () => {
  const ociManifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${"b".repeat(64)}`,
        size: 2,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${"c".repeat(64)}`, size: 1 },
      ],
    }),
  );
  const digest = `sha256:${createHash("sha256").update(ociManifest).digest("hex")}`;

  function manifestRoute(body: Buffer | string, type: string, extra: Record<string, string> = {}): Handler {
    return (req, res) => {
      if (req.url === "/v2/") return void res.end();
      res.setHeader("content-type", type);
      for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
      res.end(req.method === "HEAD" ? undefined : body);
    };
  }

  it("sends Accept for OCI and Docker types, never schema1", async () => {
    const s = await serve();
    s.handle = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json");
    await client(s).getManifest("r", "latest");
    const accept = s.requests.at(-1)?.headers.accept ?? "";
    expect(accept).toContain("application/vnd.oci.image.index.v1+json");
    expect(accept).toContain("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(accept).not.toContain("v1+prettyjws");
  });

  it("a manifest whose bytes do not match the requested digest fails with RKT_DIGEST_MISMATCH", async () => {
    const s = await serve();
    s.handle = manifestRoute(
      Buffer.concat([ociManifest, Buffer.from(" ")]),
      "application/vnd.oci.image.manifest.v1+json",
    );
    await expect(client(s).getManifest("r", digest)).rejects.toMatchObject({
      code: "RKT_DIGEST_MISMATCH",
      expected: digest,
      message: expect.stringContaining(`manifest ${s.host}/r@${digest}`),
    });
  });

  it("a tag whose Docker-Content-Digest disagrees with the body fails with RKT_DIGEST_MISMATCH", async () => {
    const s = await serve();
    s.handle = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json", {
      "docker-content-digest": `sha256:${"c".repeat(64)}`,
    });
    await expect(client(s).getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_DIGEST_MISMATCH",
      message: expect.stringContaining("Docker-Content-Digest"),
    });
  });

  it("a manifest over the size cap fails with RKT_TOO_LARGE (declared or streamed)", async () => {
    const s = await serve();
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    s.handle = manifestRoute(big, "application/vnd.oci.image.manifest.v1+json");
    await expect(client(s).getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_TOO_LARGE",
      message: expect.stringContaining("4194304-byte manifest limit"),
    });
    s.handle = (_req, res) => {
      res.setHeader("content-type", "application/vnd.oci.image.manifest.v1+json");
      res.write(big.subarray(0, 1 << 20)); // chunked: no Content-Length to refuse up front
      res.write(big.subarray(0, 1 << 20));
      res.end(big.subarray(0, 3 << 20));
    };
    await expect(client(s, { maxManifestBytes: 1 << 20 }).getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_TOO_LARGE",
    });
  });

  it("schema1 is refused with a clear message (by Content-Type and by body)", async () => {
    const s = await serve();
    const schema1 = JSON.stringify({ schemaVersion: 1, name: "r", tag: "latest", fsLayers: [], history: [] });
    s.handle = manifestRoute(schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws");
    await expect(client(s).getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_UNSUPPORTED_MEDIA_TYPE",
      message: expect.stringMatching(/^manifest .*r:latest: schema1 manifests are not supported/),
    });
    await expect(client(s).resolve("r", "latest")).rejects.toMatchObject({
      code: "RKT_UNSUPPORTED_MEDIA_TYPE",
    });
    s.handle = manifestRoute(schema1, "application/json");
    await expect(client(s).getManifest("r", "latest")).rejects.toMatchObject({
      code: "RKT_UNSUPPORTED_MEDIA_TYPE",
      message: expect.stringContaining("schema1"),
    });
  });

  it("an index with no matching platform fails with RKT_NO_MATCHING_PLATFORM", async () => {
    const s = await serve();
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest,
          size: ociManifest.length,
          platform: { os: "windows", architecture: "amd64" },
        },
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest,
          size: ociManifest.length,
          platform: { os: "linux", architecture: "ppc64le" },
        },
      ],
    });
    s.handle = manifestRoute(index, "application/vnd.oci.image.index.v1+json");
    await expect(
      client(s).getImage("r", "latest", { platform: { os: "linux", architecture: "arm64" } }),
    ).rejects.toMatchObject({
      code: "RKT_NO_MATCHING_PLATFORM",
      message: expect.stringContaining(
        "no manifest for linux/arm64; available: windows/amd64, linux/ppc64le",
      ),
    });
  });

  it("an index entry whose manifest differs in size is refused", async () => {
    const s = await serve();
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest,
          size: ociManifest.length + 1,
          platform: { os: "linux", architecture: "amd64" },
        },
      ],
    });
    s.handle = (req, res) => {
      const isIndex = req.url?.endsWith("/latest") === true;
      res.setHeader(
        "content-type",
        isIndex ? "application/vnd.oci.image.index.v1+json" : "application/vnd.oci.image.manifest.v1+json",
      );
      res.end(isIndex ? index : ociManifest);
    };
    await expect(
      client(s).getImage("r", "latest", { platform: { os: "linux", architecture: "amd64" } }),
    ).rejects.toMatchObject({ code: "RKT_SIZE_MISMATCH" });
  });

  it("HEAD without Docker-Content-Digest falls back to a verified GET", async () => {
    const s = await serve();
    s.handle = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json");
    const d = await client(s).resolve("r", "latest");
    expect(d).toEqual({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest,
      size: ociManifest.length,
    });
    expect(s.requests.map((r) => r.method)).toEqual(["HEAD", "GET"]);
  });

  // Pings, HEADs and tokens go over node:http, not undici: the same stall and retry rules.
  it("a manifest HEAD whose headers stall is retried after the stall timeout", async () => {
    const s = await serve();
    const answer = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json", {
      "docker-content-digest": digest,
    });
    let heads = 0;
    s.handle = (req, res) => {
      if (req.method === "HEAD" && ++heads === 1) return; // never answers
      answer(req, res);
    };
    const { ms, result } = await timed(client(s).resolve("r", "latest"));
    expect(result).toMatchObject({ status: "fulfilled", value: { digest, size: ociManifest.length } });
    expect(heads).toBe(2);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
  });

  it("a manifest HEAD that always stalls fails with a stall error in bounded time", async () => {
    const s = await serve();
    s.handle = (req, res) => {
      if (req.url === "/v2/") res.end(); // the HEAD is never answered
    };
    const { ms, result } = await timed(client(s).resolve("r", "latest"));
    expect(reason(result)).toMatchObject({
      code: "RKT_REGISTRY",
      temporary: true,
      message: expect.stringContaining("stalled"),
    });
    expect(ms).toBeLessThan(3000);
  });

  it("a connection reset before a manifest HEAD's headers is retried", async () => {
    const s = await serve();
    const answer = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json", {
      "docker-content-digest": digest,
    });
    let heads = 0;
    s.handle = (req, res) => {
      if (req.method === "HEAD" && ++heads === 1) return void req.socket.destroy();
      answer(req, res);
    };
    expect(await client(s).resolve("r", "latest")).toMatchObject({ digest, size: ociManifest.length });
    expect(heads).toBe(2);
  });

  it("a manifest GET whose body is cut short (reset after the headers) is retried", async () => {
    const s = await serve();
    const answer = manifestRoute(ociManifest, "application/vnd.oci.image.manifest.v1+json");
    let gets = 0;
    s.handle = (req, res) => {
      if (req.method === "GET" && req.url !== "/v2/" && ++gets === 1) {
        res.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "content-length": String(ociManifest.length),
        });
        res.write(ociManifest.subarray(0, 10));
        return void setImmediate(() => req.socket.resetAndDestroy());
      }
      answer(req, res);
    };
    const m = await client(s).getManifest("r", "latest");
    expect(m.descriptor).toMatchObject({ digest, size: ociManifest.length });
    expect(gets).toBe(2);
  });

  it("rejects invalid names before any request", async () => {
    const s = await serve();
    await expect(client(s).getManifest("Bad/Name", "latest")).rejects.toMatchObject({
      code: "RKT_INVALID_REFERENCE",
    });
    await expect(client(s).getManifest("r", "bad tag")).rejects.toMatchObject({
      code: "RKT_INVALID_REFERENCE",
    });
    expect(s.requests).toHaveLength(0);
  });
});
