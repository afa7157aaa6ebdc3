// Pushing with the registry client to the real registry (testkit, plain HTTP; and the local
// token-auth harness over TLS), checked by pulling back and by skopeo as an independent client.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest, type Descriptor } from "@rkt/oci";
import { RegistryClient } from "../src/registry/client.js";
import { staticCredentials } from "../src/registry/credentials.js";
import { inspectRaw, pullToLayout, startRegistry, type Registry } from "@rkt/testkit";
import { makeImage, startTestRegistry, type Blob, type TestRegistry } from "./registry-harness.js";

function desc(b: Blob): Descriptor {
  return { mediaType: b.mediaType, digest: parseDigest(b.digest), size: b.size };
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

// Small reads, so that chunked uploads re-cut them.
function source(b: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += 10_000) parts.push(b.subarray(i, i + 10_000));
  return Readable.from(parts);
}

describe("push to docker-registry (plain)", () => {
  let reg: Registry;
  let client: RegistryClient;
  let work: string;
  const img = makeImage({ os: "linux", architecture: "amd64" }, 400_000);
  beforeAll(async () => {
    reg = await startRegistry({ mode: "plain" });
    client = new RegistryClient(reg.host, { insecure: { http: true } });
    work = await mkdtemp(join(tmpdir(), "rkt-push-"));
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it("uploads monolithically, then finds the blob already there", async () => {
    let opened = 0;
    const open = () => (opened++, source(img.layer.bytes));
    expect(await client.pushBlob("push/a", desc(img.layer), open)).toBe("uploaded");
    expect(await client.pushBlob("push/a", desc(img.layer), open)).toBe("exists");
    expect(opened).toBe(1);
    expect((await collect(await client.fetchBlob("push/a", desc(img.layer)))).equals(img.layer.bytes)).toBe(
      true,
    );
  });

  it("uploads in chunks", async () => {
    expect(
      await client.pushBlob("push/b", desc(img.layer), () => source(img.layer.bytes), {
        chunkSize: 64 * 1024,
      }),
    ).toBe("uploaded");
    expect((await collect(await client.fetchBlob("push/b", desc(img.layer)))).equals(img.layer.bytes)).toBe(
      true,
    );
  });

  it("mounts across repositories without sending bytes", async () => {
    const open = () => {
      throw new Error("must not upload");
    };
    expect(await client.pushBlob("push/c", desc(img.layer), open, { mountFrom: "push/a" })).toBe("mounted");
  });

  it("pushes a manifest that skopeo reads back byte for byte", async () => {
    await client.pushBlob("push/a", desc(img.config), () => source(img.config.bytes));
    const d = await client.pushManifest("push/a", "v1", img.manifest.bytes, img.manifest.mediaType);
    expect(d).toEqual(desc(img.manifest));
    expect((await inspectRaw(reg, "push/a:v1")).equals(img.manifest.bytes)).toBe(true);
    await pullToLayout(reg, "push/a:v1", join(work, "out"));
    const pulledLayer = await readFile(join(work, "out", "blobs", "sha256", img.layer.digest.slice(7)));
    expect(pulledLayer.equals(img.layer.bytes)).toBe(true);
  });

  it("refuses a manifest naming a missing blob, and a blob with the wrong digest", async () => {
    const other = makeImage({ os: "linux", architecture: "amd64" }, 1000);
    await expect(
      client.pushManifest("push/a", "broken", other.manifest.bytes, other.manifest.mediaType),
    ).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      status: 400,
      message: expect.stringContaining("MANIFEST_BLOB_UNKNOWN"),
    });
    const lie = { ...desc(other.layer), digest: parseDigest(`sha256:${"e".repeat(64)}`) };
    await expect(client.pushBlob("push/a", lie, () => source(other.layer.bytes))).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      status: 400,
      message: expect.stringContaining("DIGEST_INVALID"),
    });
  });
});

describe("push with token auth (https realm)", () => {
  let reg: TestRegistry;
  const img = makeImage({ os: "linux", architecture: "arm64" }, 20_000);
  beforeAll(async () => {
    reg = await startTestRegistry("token");
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it("gets a push token and mounts with the source's pull scope", async () => {
    const c = new RegistryClient(reg.host, {
      caPem: reg.caPem,
      credentials: staticCredentials({
        [reg.host]: { username: reg.username ?? "", password: reg.password ?? "" },
      }),
    });
    try {
      expect(await c.pushBlob("team/src", desc(img.layer), () => source(img.layer.bytes))).toBe("uploaded");
      expect(
        await c.pushBlob("team/dst", desc(img.layer), () => source(img.layer.bytes), {
          mountFrom: "team/src",
        }),
      ).toBe("mounted");
      await c.pushBlob("team/dst", desc(img.config), () => source(img.config.bytes));
      await c.pushManifest("team/dst", "v1", img.manifest.bytes, img.manifest.mediaType);
      expect((await c.getManifest("team/dst", "v1")).descriptor.digest).toBe(img.manifest.digest);
      const scopes = reg.tokenRequests.map((t) => t.scopes.join(" "));
      expect(scopes).toContain("repository:team/src:pull,push");
      expect(scopes).toContain("repository:team/dst:pull,push repository:team/src:pull");
      expect(scopes).not.toContain("repository:team/src:pull");
    } finally {
      await c.close();
    }
  });

  it("anonymous push is refused with RKT_UNAUTHORIZED", async () => {
    const c = new RegistryClient(reg.host, { caPem: reg.caPem, retry: { maxAttempts: 1 } });
    try {
      await expect(
        c.pushBlob("team/x", desc(img.layer), () => source(img.layer.bytes)),
      ).rejects.toMatchObject({
        code: "RKT_UNAUTHORIZED",
        status: 401,
      });
    } finally {
      await c.close();
    }
  });
});
