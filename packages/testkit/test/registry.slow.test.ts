// Every registry mode against the real distribution registry and skopeo: push what we built,
// pull it back, and check the bytes the registry serves are the bytes we built.
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, parseIndexOrThrow } from "@rkt/oci";
import {
  inspectRaw,
  pullToLayout,
  pushLayout,
  startRegistry,
  useRegistry,
  writeOciLayout,
  writeOciLayoutIndex,
  type BuiltImage,
  type RegistryMode,
} from "@rkt/testkit";

let work: string;
let layout: string;
let img: BuiltImage;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "rkt-registry-test-"));
  layout = join(work, "layout");
  img = await writeOciLayout(
    layout,
    {
      layers: [
        [
          { path: "etc", type: "dir" },
          { path: "etc/motd", type: "file", content: "hello\n" },
        ],
        [{ path: "etc/motd", type: "whiteout" }],
      ],
      config: { Cmd: ["/bin/true"] },
    },
    { ref: "v1" },
  );
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function status(url: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: auth === undefined ? {} : { authorization: auth } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe.each<RegistryMode>(["plain", "basic", "tls", "token"])("registry mode %s", (mode) => {
  const reg = useRegistry({ mode });

  it("takes a push and serves the same manifest bytes back", async () => {
    const pushed = await pushLayout(layout, "test/app:v1", reg());
    expect(pushed).toBe(img.descriptor.digest);
    const raw = await inspectRaw(reg(), "test/app:v1");
    expect(digestOf(raw)).toBe(img.descriptor.digest);
    expect(raw.equals(img.manifestBytes)).toBe(true);

    const back = join(work, `pulled-${mode}`);
    await pullToLayout(reg(), "test/app:v1", back);
    const index = parseIndexOrThrow(await readFile(join(back, "index.json"))).value;
    expect(index.manifests[0]!.digest).toBe(img.descriptor.digest);
    const layer = img.layers[0]!.digest.slice(7);
    expect(digestOf(await readFile(join(back, "blobs", "sha256", layer)))).toBe(img.layers[0]!.digest);
  });

  it("reports its settings", () => {
    const r = reg();
    expect(r.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.url).toBe(`${mode === "tls" ? "https" : "http"}://${r.host}`);
    expect(r.tls).toBe(mode === "tls");
    expect(r.caPem !== undefined).toBe(mode === "tls");
    expect(r.username !== undefined).toBe(mode === "basic" || mode === "token");
  });

  if (mode === "basic" || mode === "token") {
    it("refuses wrong and missing credentials", async () => {
      await expect(
        inspectRaw(reg(), "test/app:v1", { creds: { username: "rkt", password: "wrong" } }),
      ).rejects.toThrow(/unauthorized|authentication required|invalid username\/password|401/i);
      await expect(inspectRaw(reg(), "test/app:v1", { creds: null })).rejects.toThrow(
        /unauthorized|authentication required|401/i,
      );
      expect(await status(`${reg().url}/v2/`)).toBe(401);
    });
  }

  if (mode === "basic") {
    it("answers 401 to a wrong password and 200 to the right one", async () => {
      const r = reg();
      const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;
      expect(await status(`${r.url}/v2/`, basic(r.username!, "nope"))).toBe(401);
      expect(await status(`${r.url}/v2/`, basic(r.username!, r.password!))).toBe(200);
    });
  }

  if (mode === "token") {
    it("has the token server issue the scopes the client asked for", async () => {
      const r = reg();
      expect(r.tokenRequests.flat()).toContain("repository:test/app:pull,push");
      expect(await status(r.tokenRealm!)).toBe(401);
    });
  }

  if (mode === "tls") {
    it("is trusted with its CA and refused without it", async () => {
      await expect(inspectRaw(reg(), "test/app:v1", { trustCa: false })).rejects.toThrow(/x509|certificate/i);
      const out = execFileSync("openssl", ["x509", "-noout", "-subject", "-in", reg().caFile!]).toString();
      expect(out).toMatch(/rkt testkit CA/);
    });
  }
});

describe("startRegistry", () => {
  it("pushes a multi-platform index with digests preserved", async () => {
    const reg = await startRegistry();
    try {
      const dir = join(work, "multi");
      const idx = await writeOciLayoutIndex(dir, [
        { layers: [[{ path: "a", type: "file", content: "amd64" }]] },
        { layers: [[{ path: "a", type: "file", content: "arm64" }]], architecture: "arm64" },
      ]);
      expect(await pushLayout(dir, "multi/app:1", reg)).toBe(idx.descriptor.digest);
      expect(digestOf(await inspectRaw(reg, "multi/app:1"))).toBe(idx.descriptor.digest);
    } finally {
      await reg.stop();
    }
  });

  it("combines basic auth with TLS", async () => {
    const reg = await startRegistry({ mode: "basic", tls: true });
    try {
      expect(reg.url).toMatch(/^https:/);
      expect(await pushLayout(layout, "both/app:v1", reg)).toBe(img.descriptor.digest);
      await expect(inspectRaw(reg, "both/app:v1", { creds: null })).rejects.toThrow(
        /unauthorized|authentication required/i,
      );
    } finally {
      await reg.stop();
    }
  });

  it("stops idempotently, kills the registry and removes its files", async () => {
    const reg = await startRegistry({ mode: "tls" });
    const storage = reg.storageDir;
    await Promise.all([reg.stop(), reg.stop()]);
    await reg.stop();
    await expect(status(`http://${reg.host}/v2/`)).rejects.toThrow(/ECONNREFUSED/);
    await expect(readFile(join(storage, ".."))).rejects.toThrow(/ENOENT/);
  });

  it("keeps a caller-owned storage dir across restarts", async () => {
    const storageDir = join(work, "kept-storage");
    const a = await startRegistry({ storageDir });
    await pushLayout(layout, "kept/app:v1", a);
    await a.stop();
    const b = await startRegistry({ storageDir });
    try {
      expect(digestOf(await inspectRaw(b, "kept/app:v1"))).toBe(img.descriptor.digest);
    } finally {
      await b.stop();
    }
  });

  it("with accessLog, lists every request it served (method, path, status, bytes)", async () => {
    const reg = await startRegistry({ accessLog: true });
    try {
      await pushLayout(layout, "logged/app:v1", reg);
      const blob = img.layers[0]!;
      await status(`${reg.url}/v2/logged/app/blobs/${blob.digest}`);
      await status(`${reg.url}/v2/logged/app/blobs/sha256:${"0".repeat(64)}`);
      // the log is written as requests end; give its pipe a moment
      for (let i = 0; i < 50 && reg.requests().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      const gets = reg.requests().filter((q) => q.method === "GET" && q.path.includes("/blobs/"));
      expect(gets.slice(-2)).toEqual([
        { method: "GET", path: `/v2/logged/app/blobs/${blob.digest}`, status: 200, bytes: blob.size },
        expect.objectContaining({ path: `/v2/logged/app/blobs/sha256:${"0".repeat(64)}`, status: 404 }),
      ]);
      expect(reg.requests().some((q) => q.method === "PUT" && q.path.includes("/manifests/v1"))).toBe(true);
    } finally {
      await reg.stop();
    }
    expect((await startRegistry().then(async (r) => [r.requests(), await r.stop()]))[0]).toEqual([]);
  });

  it("fails cleanly, leaving nothing behind, when its storage cannot be created", async () => {
    const file = join(work, "not-a-dir");
    await writeFile(file, "x");
    await expect(startRegistry({ storageDir: join(file, "sub") })).rejects.toThrow(/ENOTDIR/);
  });
});
