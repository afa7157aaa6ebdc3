// pullImage against the real docker-registry: cold pulls, `update` with an unchanged and a moved
// tag, `new` and `never`, platform selection from an index, bytes downloaded and reused.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isRktError, parseDockerReference, parseImageRef, type DockerRef } from "@rkt/oci";
import { LocalStore, getRemote, listImages, resolveImage } from "@rkt/store";
import {
  pushLayout,
  randomLayer,
  useRegistry,
  writeOciLayout,
  writeOciLayoutIndex,
  type BuiltImage,
} from "@rkt/testkit";
import { Agent, type Dispatcher } from "undici";
import { dockerRemoteKey, pullImage, type PullImageOptions } from "../src/pull.js";
import { RegistryClient } from "../src/registry/client.js";

const reg = useRegistry({ mode: "plain" });
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-pull-test-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function newStore(): Promise<LocalStore> {
  return LocalStore.open(join(tmp, `store-${n++}`));
}

async function push(spec: Parameters<typeof writeOciLayout>[1], ref: string): Promise<BuiltImage> {
  const dir = join(tmp, `layout-${n++}`);
  const img = await writeOciLayout(dir, spec);
  await pushLayout(dir, ref, reg());
  return img;
}

const base = randomLayer(300_000, { seed: "base", dir: "base" });
const mid = randomLayer(200_000, { seed: "mid", dir: "mid" });

/** Pulls with HTTP allowed, recording which blobs were downloaded and how many bytes. */
async function pull(store: LocalStore, ref: string, o: PullImageOptions = {}) {
  const blobs = new Map<string, number>();
  const r = await pullImage(store, parseDockerReference(`${reg().host}/${ref}`), {
    insecure: { http: true },
    onProgress: (p) => blobs.set(p.digest, p.bytes),
    ...o,
  });
  return { ...r, blobs };
}

function imageBytes(img: BuiltImage): number {
  return img.manifestBytes.length + img.config.size + img.layers.reduce((a, l) => a + l.size, 0);
}

describe("pullImage", () => {
  it("cold pull stores every blob, records name, tag and remote", async () => {
    const img = await push({ layers: [base, mid], config: { Cmd: ["/bin/sh"] } }, "cold/app:v1");
    const store = await newStore();
    try {
      const r = await pull(store, "cold/app:v1");
      expect(r.id).toBe(img.descriptor.digest);
      expect(r.source).toBe("pulled");
      expect(r.name).toBe(`${reg().host}/cold/app`);
      expect(r.digests).toEqual([
        img.descriptor.digest,
        img.config.digest,
        ...img.layers.map((l) => l.digest),
      ]);
      for (const d of r.digests) expect(await store.exists(d)).toBe(true);
      expect(r.bytesDownloaded).toBe(imageBytes(img));
      expect(r.bytesReused).toBe(0);
      expect(r.size).toBe(imageBytes(img));
      expect([...r.blobs.keys()].sort()).toEqual(
        [img.config.digest, ...img.layers.map((l) => l.digest)].sort(),
      );
      const listed = listImages(store).map((i) => ({ id: i.id, name: i.name }));
      expect(listed).toEqual([{ id: img.descriptor.digest, name: `${reg().host}/cold/app` }]);
      const remote = getRemote(store, `docker://${reg().host}/cold/app:v1`);
      expect(remote).toMatchObject({ manifestDigest: img.descriptor.digest, imageId: img.descriptor.digest });
      expect(remote!.downloadTime).toBeGreaterThan(Date.now() - 60_000);
      // The tag resolves by name.
      expect(resolveImage(store, `${reg().host}/cold/app:v1`)).toBe(img.descriptor.digest);
    } finally {
      store.close();
    }
  });

  it("update with an unchanged tag downloads nothing; a moved tag downloads only the new blobs", async () => {
    const v1 = await push({ layers: [base, mid] }, "warm/app:latest");
    const store = await newStore();
    try {
      const cold = await pull(store, "warm/app");
      expect(cold.id).toBe(v1.descriptor.digest);
      // Count every request the warm fetch makes: one manifest HEAD and nothing else.
      const requests: string[] = [];
      const agent = new Agent().compose((dispatch: Dispatcher["dispatch"]) => (opts, handler) => {
        requests.push(`${opts.method} ${opts.path}`);
        return dispatch(opts, handler);
      });
      const client = new RegistryClient(reg().host, { insecure: { http: true }, dispatcher: agent });
      const warm = await pull(store, "warm/app", { policy: "update", client });
      await agent.close();
      expect(requests.filter((r) => !r.endsWith(" /v2/"))).toEqual(["HEAD /v2/warm/app/manifests/latest"]);
      expect(warm.source).toBe("unchanged");
      expect(warm.id).toBe(v1.descriptor.digest);
      expect(warm.bytesDownloaded).toBe(0);
      expect(warm.blobs.size).toBe(0);
      expect(warm.bytesReused).toBe(imageBytes(v1));

      const top = randomLayer(100_000, { seed: "top", dir: "top" });
      const v2 = await push({ layers: [base, mid, top], config: { Env: ["V=2"] } }, "warm/app:latest");
      expect(v2.descriptor.digest).not.toBe(v1.descriptor.digest);
      const moved = await pull(store, "warm/app");
      expect(moved.source).toBe("pulled");
      expect(moved.id).toBe(v2.descriptor.digest);
      expect([...moved.blobs.keys()].sort()).toEqual([v2.config.digest, v2.layers[2]!.digest].sort());
      expect(moved.bytesDownloaded).toBe(v2.manifestBytes.length + v2.config.size + v2.layers[2]!.size);
      expect(moved.bytesReused).toBe(v2.layers[0]!.size + v2.layers[1]!.size);
      // Both images stay; the ref and the remote now name v2.
      expect(
        listImages(store)
          .map((i) => i.id)
          .sort(),
      ).toEqual([v1.descriptor.digest, v2.descriptor.digest].sort());
      const remote = getRemote(store, `docker://${reg().host}/warm/app:latest`);
      expect(remote?.imageId).toBe(v2.descriptor.digest);
      const again = await pull(store, "warm/app");
      expect(again.source).toBe("unchanged");
      expect(again.bytesDownloaded).toBe(0);
    } finally {
      store.close();
    }
  });

  it("new uses the stored image without asking the registry; never fails with rkt's message when absent", async () => {
    const v1 = await push({ layers: [base] }, "pol/app:v1");
    const store = await newStore();
    try {
      const ref = parseDockerReference(`${reg().host}/pol/app:v1`);
      const never = await pullImage(store, ref, { policy: "never" }).catch((e: unknown) => e);
      expect(isRktError(never, ErrorCode.NotFound)).toBe(true);
      expect((never as Error).message).toBe(
        `unable to fetch docker image from URL "docker://${reg().host}/pol/app:v1": either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled`,
      );
      const first = await pull(store, "pol/app:v1", { policy: "new" });
      expect(first.source).toBe("pulled");
      await push({ layers: [base, mid] }, "pol/app:v1");
      const second = await pull(store, "pol/app:v1", { policy: "new" });
      expect(second.source).toBe("store");
      expect(second.id).toBe(v1.descriptor.digest);
      expect(second.blobs.size).toBe(0);
      // `never` works with the registry unreachable: the ref maps to the remote key, not to a request.
      const stored = await pullImage(store, ref, { policy: "never", insecure: { http: true } });
      expect(stored).toMatchObject({ id: v1.descriptor.digest, source: "store", bytesDownloaded: 0 });
      expect(dockerRemoteKey(ref)).toBe(`docker://${reg().host}/pol/app:v1`);
      // The message quotes the image as typed, as rkt's; the remote key is normalised.
      const typed = await pullImage(store, parseImageRef("docker:busybox") as DockerRef, {
        policy: "never",
      }).catch((e: unknown) => e);
      expect((typed as Error).message).toMatch(/^unable to fetch docker image from URL "docker:busybox": /);
      expect(dockerRemoteKey(parseImageRef("docker:busybox") as DockerRef)).toBe(
        "docker://docker.io/library/busybox:latest",
      );
    } finally {
      store.close();
    }
  });

  it("a digest reference that is stored is never asked for again", async () => {
    const img = await push({ layers: [mid] }, "dig/app:v1");
    const store = await newStore();
    try {
      const byDigest = `dig/app@${img.descriptor.digest}`;
      const a = await pull(store, byDigest);
      expect(a.id).toBe(img.descriptor.digest);
      expect(a.remote).toBe(`docker://${reg().host}/dig/app@${img.descriptor.digest}`);
      const b = await pull(store, byDigest, { policy: "update" });
      expect(b.source).toBe("store");
    } finally {
      store.close();
    }
  });

  it("selects the platform from an index and re-checks the platform on update", async () => {
    const dir = join(tmp, `layout-${n++}`);
    const idx = await writeOciLayoutIndex(dir, [
      { layers: [randomLayer(50_000, { seed: "amd" })], architecture: "amd64" },
      { layers: [randomLayer(50_000, { seed: "arm" })], architecture: "arm64" },
    ]);
    await pushLayout(dir, "multi/app:v1", reg());
    const store = await newStore();
    try {
      const amd = await pull(store, "multi/app:v1", { platform: { os: "linux", architecture: "amd64" } });
      expect(amd.id).toBe(idx.images[0]!.descriptor.digest);
      const same = await pull(store, "multi/app:v1", { platform: { os: "linux", architecture: "amd64" } });
      expect(same.source).toBe("unchanged");
      const remote = getRemote(store, `docker://${reg().host}/multi/app:v1`);
      expect(remote?.manifestDigest).toBe(idx.descriptor.digest);
      const arm = await pull(store, "multi/app:v1", { platform: { os: "linux", architecture: "arm64" } });
      expect(arm.source).toBe("pulled");
      expect(arm.id).toBe(idx.images[1]!.descriptor.digest);
    } finally {
      store.close();
    }
  });

  it("downloads blobs in parallel and fails with the registry's reason for an unknown tag", async () => {
    const layers = Array.from({ length: 6 }, (_, i) => randomLayer(40_000, { seed: `p${i}`, dir: `p${i}` }));
    const img = await push({ layers }, "par/app:v1");
    const store = await newStore();
    try {
      let active = 0;
      let peak = 0;
      const open = new Set<string>();
      const r = await pull(store, "par/app:v1", {
        parallel: 3,
        onProgress: (p) => {
          if (!open.has(p.digest) && p.bytes < p.total) {
            open.add(p.digest);
            peak = Math.max(peak, ++active);
          }
          if (p.bytes === p.total && open.delete(p.digest)) active--;
        },
      });
      expect(r.id).toBe(img.descriptor.digest);
      expect(peak).toBeLessThanOrEqual(3);
      const missing = await pull(store, "par/app:nope").catch((e: unknown) => e);
      expect(isRktError(missing, ErrorCode.NotFound)).toBe(true);
      expect((missing as Error).message).toContain(`${reg().host}/par/app:nope`);
      expect(listImages(store)).toHaveLength(1);
    } finally {
      store.close();
    }
  });

  it("refuses a blob whose bytes the registry serves wrong: nothing recorded, nothing stored", async () => {
    const img = await push({ layers: [randomLayer(60_000, { seed: "rot", dir: "rot" })] }, "rot/app:v1");
    const layer = img.layers[0]!.digest;
    // Flip one byte of the layer in the registry's own storage (same size, other content).
    const hex = layer.slice("sha256:".length);
    const file = join(reg().storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const bytes = await readFile(file);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await writeFile(file, bytes);
    const store = await newStore();
    try {
      const e = await pull(store, "rot/app:v1").catch((x: unknown) => x);
      expect(isRktError(e, ErrorCode.DigestMismatch)).toBe(true);
      expect((e as Error).message).toContain(layer);
      expect(listImages(store)).toEqual([]);
      expect(await store.exists(layer)).toBe(false);
      expect(getRemote(store, `docker://${reg().host}/rot/app:v1`)).toBeUndefined();
      // The wrong bytes are not kept for a resume (a sibling blob cut short by the failure may be).
      const ingest = createHash("sha256").update(`blob-${layer}`).digest("hex");
      expect(await readdir(store.paths.ingest).catch(() => [])).not.toContain(ingest);
    } finally {
      store.close();
    }
  });

  it("two concurrent pulls of one image into one store share the blobs", async () => {
    const img = await push(
      {
        layers: [
          randomLayer(500_000, { seed: "c1", dir: "c1" }),
          randomLayer(500_000, { seed: "c2", dir: "c2" }),
        ],
      },
      "conc/app:v1",
    );
    const store = await newStore();
    try {
      const [a, b] = await Promise.all([pull(store, "conc/app:v1"), pull(store, "conc/app:v1")]);
      expect(a.id).toBe(img.descriptor.digest);
      expect(b.id).toBe(img.descriptor.digest);
      expect(listImages(store)).toHaveLength(1);
      for (const d of a.digests) expect(await store.exists(d)).toBe(true);
    } finally {
      store.close();
    }
  });

  it("an aborted pull (Ctrl-C) keeps its ingests and the next pull resumes them", async () => {
    const bigBytes = 8 << 20;
    const img = await push(
      { layers: [randomLayer(bigBytes, { seed: "abort", dir: "abort", compression: "none" })] },
      "abort/app:v1",
    );
    const big = img.layers[0]!;
    const store = await newStore();
    try {
      const ac = new AbortController();
      let cut = 0;
      const first = await pull(store, "abort/app:v1", {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.digest === big.digest && p.bytes >= big.size / 2 && !ac.signal.aborted) {
            cut = p.bytes;
            ac.abort();
          }
        },
      }).catch((e: unknown) => e);
      expect(isRktError(first, ErrorCode.Aborted)).toBe(true);
      expect(listImages(store)).toEqual([]);
      expect(cut).toBeGreaterThan(0);
      // The big layer's ingest holds what reached the disk before the abort.
      const ingest = join(
        store.paths.ingest,
        createHash("sha256").update(`blob-${big.digest}`).digest("hex"),
      );
      const kept = (await stat(join(ingest, "data"))).size;
      expect(kept).toBeGreaterThan(big.size / 4);
      const again = await pull(store, "abort/app:v1");
      expect(again.id).toBe(img.descriptor.digest);
      // What was written before the abort is reused; only the rest is fetched.
      expect(again.bytesReused).toBeGreaterThanOrEqual(kept);
      expect(again.bytesDownloaded).toBeLessThanOrEqual(imageBytes(img) - kept);
      expect(again.bytesDownloaded + again.bytesReused).toBe(imageBytes(img));
    } finally {
      store.close();
    }
  });

  it("render: the layers are extracted while they are pulled; the tree verifies, a shared layer is reused", async () => {
    const img = await push({ layers: [base, mid] }, "render/app:v1");
    const other = await push({ layers: [base] }, "render/base:v1");
    const store = await newStore();
    try {
      // The base layer comes first without rendering: the rendered pull must extract it from the store.
      await pull(store, "render/base:v1");
      const r = await pull(store, "render/app:v1", { render: true });
      expect(r.id).toBe(img.descriptor.digest);
      const { getSnapshot, layerSnapshotKey, storedTreeId, verifyStoredImage } = await import("@rkt/store");
      const treeId = await storedTreeId(store, r.id);
      expect(await readdir(store.paths.trees)).toEqual([treeId]);
      expect(await verifyStoredImage(store, r.id)).toEqual({ status: "ok", treeId });
      const [baseDiff, midDiff] = img.diffIds;
      expect((await getSnapshot(store.paths.layers, layerSnapshotKey(midDiff!)))?.info.hashFrom).toBe(
        "stream",
      );
      expect((await getSnapshot(store.paths.layers, layerSnapshotKey(baseDiff!)))?.info.diffId).toBe(
        baseDiff,
      );
      expect(other.diffIds[0]).toBe(baseDiff);
      // Nothing half-made is left: no snapshot temp dirs, no ingests.
      expect((await readdir(store.paths.layers)).filter((x) => x.startsWith("."))).toEqual([]);
      expect(await readdir(store.paths.ingest)).toEqual([]);
    } finally {
      store.close();
    }
  });
});
