// The registry client against the real distribution registry (Debian docker-registry) on
// loopback, started by @rkt/testkit: plain HTTP (with insecure http), TLS with a test CA, and
// htpasswd Basic over TLS; token auth with an HTTPS realm from the local harness (the testkit's
// token realm is plain http, where this client never sends credentials).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDigester, parseDigest, type Descriptor } from "@rkt/oci";
import { RegistryClient, type RegistryClientOptions } from "../src/registry/client.js";
import { staticCredentials } from "../src/registry/credentials.js";
import { pushLayout as pushToRegistry, startRegistry, type Registry } from "@rkt/testkit";
import {
  makeImage,
  makeIndex,
  pushLayout,
  startTestRegistry,
  writeLayout,
  type Blob,
  type TestImage,
  type TestRegistry,
} from "./registry-harness.js";

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function desc(b: Blob): Descriptor {
  return { mediaType: b.mediaType, digest: parseDigest(b.digest), size: b.size };
}

interface Fixture {
  reg: Registry;
  amd64: TestImage;
  arm64: TestImage;
  index: Blob;
  single: TestImage;
  work: string;
}

async function setUp(mode: "plain" | "tls" | "basic"): Promise<Fixture> {
  // Basic over TLS: the client never sends credentials over plain http.
  const reg = await startRegistry({ mode, tls: mode === "basic" });
  const work = await mkdtemp(join(tmpdir(), "rkt-reg-test-"));
  const amd64 = makeImage({ os: "linux", architecture: "amd64" }, 300_000);
  const arm64 = makeImage({ os: "linux", architecture: "arm64", variant: "v8" }, 200_000);
  const index = makeIndex([amd64, arm64]);
  const all = [amd64, arm64].flatMap((i) => [i.manifest, i.config, i.layer]);
  await writeLayout(join(work, "multi"), [...all, index], index, "multi");
  await pushToRegistry(join(work, "multi"), "test/multi:multi", reg, { layoutRef: "multi" });
  const single = makeImage({ os: "linux", architecture: "amd64" }, 1_000_000);
  await writeLayout(
    join(work, "single"),
    [single.manifest, single.config, single.layer],
    single.manifest,
    "v1",
  );
  await pushToRegistry(join(work, "single"), "test/single:v1", reg, { layoutRef: "v1" });
  return { reg, amd64, arm64, index, single, work };
}

function optionsFor(reg: Registry | TestRegistry): RegistryClientOptions {
  return {
    ...(reg.url.startsWith("http:") ? { insecure: { http: true } } : { caPem: reg.caPem }),
    ...(reg.username === undefined
      ? {}
      : {
          credentials: staticCredentials({
            [reg.host]: { username: reg.username, password: reg.password ?? "" },
          }),
        }),
  };
}

for (const mode of ["plain", "tls", "basic"] as const) {
  describe(`registry client against docker-registry (${mode})`, () => {
    let f: Fixture;
    let client: RegistryClient;
    beforeAll(async () => {
      f = await setUp(mode);
      client = new RegistryClient(f.reg.host, optionsFor(f.reg));
    }, 120_000);
    afterAll(async () => {
      await client?.close();
      await f?.reg.stop();
      if (f !== undefined) await rm(f.work, { recursive: true, force: true });
    });

    it("pings and learns the scheme", async () => {
      const p = await client.ping();
      expect(p.scheme).toBe(mode === "plain" ? "http:" : "https:");
      expect(p.challenges.map((c) => c.scheme)).toEqual(mode === "basic" ? ["basic"] : []);
    });

    it("resolves a tag with HEAD to the manifest descriptor", async () => {
      const d = await client.resolve("test/single", "v1");
      expect(d).toEqual(desc(f.single.manifest));
      const i = await client.resolve("test/multi", "multi");
      expect(i).toEqual(desc(f.index));
    });

    it("gets a manifest by tag and by digest, raw bytes intact", async () => {
      const byTag = await client.getManifest("test/single", "v1");
      expect(Buffer.from(byTag.raw).equals(f.single.manifest.bytes)).toBe(true);
      expect(byTag.descriptor).toEqual(desc(f.single.manifest));
      expect(byTag.document.kind).toBe("manifest");
      const byDigest = await client.getManifest("test/single", f.single.manifest.digest);
      expect(byDigest.descriptor.digest).toBe(f.single.manifest.digest);
    });

    it("selects the platform from an index (host default and explicit)", async () => {
      const amd = await client.getImage("test/multi", "multi", {
        platform: { os: "linux", architecture: "amd64" },
      });
      expect(amd.manifest.descriptor.digest).toBe(f.amd64.manifest.digest);
      expect(amd.index?.descriptor.digest).toBe(f.index.digest);
      expect(Buffer.from(amd.index?.raw ?? []).equals(f.index.bytes)).toBe(true);
      expect(amd.parsed.layers[0]?.digest).toBe(f.amd64.layer.digest);
      const arm = await client.getImage("test/multi", "multi", {
        platform: { os: "linux", architecture: "arm64" },
      });
      expect(arm.manifest.descriptor.digest).toBe(f.arm64.manifest.digest);
      expect(arm.selected?.platform?.architecture).toBe("arm64");
      await expect(
        client.getImage("test/multi", "multi", { platform: { os: "linux", architecture: "s390x" } }),
      ).rejects.toMatchObject({
        code: "RKT_NO_MATCHING_PLATFORM",
        message: expect.stringMatching(/linux\/s390x.*available: linux\/amd64, linux\/arm64/),
      });
    });

    it("streams a blob verified, with progress", async () => {
      let last = 0;
      const s = await client.fetchBlob("test/single", desc(f.single.layer), {
        onProgress: (p) => (last = p.bytes),
      });
      const bytes = await collect(s);
      expect(bytes.equals(f.single.layer.bytes)).toBe(true);
      expect(last).toBe(f.single.layer.size);
    });

    it("resumes a blob from an offset with Range, hashing the held prefix", async () => {
      const offset = 400_000;
      const digester = createDigester();
      digester.update(f.single.layer.bytes.subarray(0, offset));
      const s = await client.fetchBlob("test/single", desc(f.single.layer), { offset, digester });
      const rest = await collect(s);
      expect(rest.equals(f.single.layer.bytes.subarray(offset))).toBe(true);
    });

    it("rejects a resume whose held prefix is wrong with RKT_DIGEST_MISMATCH", async () => {
      const offset = 1000;
      const digester = createDigester();
      digester.update(Buffer.alloc(offset));
      const s = await client.fetchBlob("test/single", desc(f.single.layer), { offset, digester });
      await expect(
        pipeline(s, async function* (src) {
          for await (const _ of src) yield* [];
        }),
      ).rejects.toMatchObject({
        code: "RKT_DIGEST_MISMATCH",
        message: expect.stringContaining(f.single.layer.digest),
      });
    });

    it("reports an unknown tag and an unknown blob as RKT_NOT_FOUND", async () => {
      await expect(client.getManifest("test/single", "nope")).rejects.toMatchObject({
        code: "RKT_NOT_FOUND",
        status: 404,
        message: expect.stringContaining("MANIFEST_UNKNOWN"),
      });
      const missing = parseDigest(`sha256:${createHash("sha256").update("missing").digest("hex")}`);
      await expect(
        client.fetchBlob("test/single", { mediaType: "x", digest: missing, size: 7 }),
      ).rejects.toMatchObject({
        code: "RKT_NOT_FOUND",
        status: 404,
      });
      expect(await client.statBlob("test/single", missing)).toBeUndefined();
      expect((await client.statBlob("test/single", parseDigest(f.single.layer.digest)))?.size).toBe(
        f.single.layer.size,
      );
    });

    if (mode === "basic") {
      it("fails with RKT_UNAUTHORIZED for wrong or missing credentials", async () => {
        const wrong = new RegistryClient(f.reg.host, {
          caPem: f.reg.caPem,
          credentials: staticCredentials({ [f.reg.host]: { username: "rkt", password: "wrong" } }),
          retry: { maxAttempts: 1 },
        });
        const none = new RegistryClient(f.reg.host, { caPem: f.reg.caPem });
        try {
          await expect(wrong.getManifest("test/single", "v1")).rejects.toMatchObject({
            code: "RKT_UNAUTHORIZED",
            status: 401,
          });
          await expect(none.resolve("test/single", "v1")).rejects.toMatchObject({
            code: "RKT_UNAUTHORIZED",
            status: 401,
          });
        } finally {
          await wrong.close();
          await none.close();
        }
      });
    }

    if (mode !== "plain") {
      it("refuses an unknown CA, accepts it with insecure tls", async () => {
        const strict = new RegistryClient(f.reg.host, { retry: { maxAttempts: 1 } });
        const lax = new RegistryClient(f.reg.host, {
          insecure: { tls: true },
          ...(f.reg.username === undefined ? {} : { credentials: optionsFor(f.reg).credentials }),
        });
        try {
          await expect(strict.ping()).rejects.toMatchObject({
            code: "RKT_REGISTRY",
            message: expect.stringMatching(
              /certificate.*\(trust its CA, e\.g\. in \/etc\/containers\/certs\.d\/<host:port>\/ca\.crt, or allow with --insecure-options=tls\)$/i,
            ),
          });
          expect((await lax.resolve("test/single", "v1")).digest).toBe(f.single.manifest.digest);
        } finally {
          await strict.close();
          await lax.close();
        }
      });
    } else {
      it("refuses plain http unless insecure http is allowed", async () => {
        const strict = new RegistryClient(f.reg.host, { retry: { maxAttempts: 1 } });
        try {
          await expect(strict.resolve("test/single", "v1")).rejects.toMatchObject({
            code: "RKT_REGISTRY",
            message: expect.stringMatching(
              /^manifest 127\.0\.0\.1:\d+\/test\/single:v1: ERR_SSL_WRONG_VERSION_NUMBER \(does it speak plain http\? allow with --insecure-options=http\)$/,
            ),
          });
        } finally {
          await strict.close();
        }
      });
    }
  });
}

describe("registry client against docker-registry (token auth, https realm)", () => {
  let reg: TestRegistry;
  let work: string;
  let img: TestImage;
  beforeAll(async () => {
    reg = await startTestRegistry("token");
    work = await mkdtemp(join(tmpdir(), "rkt-reg-token-"));
    img = makeImage({ os: "linux", architecture: "amd64" }, 50_000);
    await writeLayout(join(work, "img"), [img.manifest, img.config, img.layer], img.manifest, "v1");
    await pushLayout(join(work, "img"), "v1", reg, "private/app");
    await pushLayout(join(work, "img"), "v1", reg, "public/app");
  }, 120_000);
  afterAll(async () => {
    await reg?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it("gets a bearer token with the credentials and reuses it for the same scope", async () => {
    const c = new RegistryClient(reg.host, optionsFor(reg));
    try {
      const before = reg.tokenRequests.length;
      expect((await c.resolve("private/app", "v1")).digest).toBe(img.manifest.digest);
      await c.getManifest("private/app", "v1");
      expect(await collect(await c.fetchBlob("private/app", desc(img.layer)))).toEqual(img.layer.bytes);
      const mine = reg.tokenRequests.slice(before);
      expect(mine).toEqual([{ scopes: ["repository:private/app:pull"], authenticated: true }]);
    } finally {
      await c.close();
    }
  });

  it("learns the challenge from a ping, then asks for a token per repository", async () => {
    const c = new RegistryClient(reg.host, optionsFor(reg));
    try {
      const p = await c.ping();
      expect(p.challenges[0]).toMatchObject({ scheme: "bearer", params: { service: "rkt-test-registry" } });
      const before = reg.tokenRequests.length;
      await c.resolve("private/app", "v1");
      await c.resolve("public/app", "v1");
      expect(reg.tokenRequests.slice(before).map((t) => t.scopes)).toEqual([
        ["repository:private/app:pull"],
        ["repository:public/app:pull"],
      ]);
    } finally {
      await c.close();
    }
  });

  it("pulls anonymously where the token server allows it, 401 where it does not", async () => {
    const c = new RegistryClient(reg.host, { caPem: reg.caPem, retry: { maxAttempts: 1 } });
    try {
      expect((await c.getManifest("public/app", "v1")).descriptor.digest).toBe(img.manifest.digest);
      expect(reg.tokenRequests.at(-1)).toEqual({
        scopes: ["repository:public/app:pull"],
        authenticated: false,
      });
      await expect(c.getManifest("private/app", "v1")).rejects.toMatchObject({
        code: "RKT_UNAUTHORIZED",
        status: 401,
        message: expect.stringContaining("UNAUTHORIZED"),
      });
    } finally {
      await c.close();
    }
  });

  it("wrong credentials fail at the token server with RKT_UNAUTHORIZED", async () => {
    const c = new RegistryClient(reg.host, {
      caPem: reg.caPem,
      credentials: staticCredentials({ [reg.host]: { username: "rkt", password: "nope" } }),
      retry: { maxAttempts: 1 },
    });
    try {
      await expect(c.resolve("private/app", "v1")).rejects.toMatchObject({
        code: "RKT_UNAUTHORIZED",
        status: 401,
        message: expect.stringMatching(
          /^token for 127\.0\.0\.1:\d+ from https:\/\/127\.0\.0\.1:\d+\/token: HTTP 401 \(UNAUTHORIZED: bad credentials\)/,
        ),
      });
    } finally {
      await c.close();
    }
  });
});
