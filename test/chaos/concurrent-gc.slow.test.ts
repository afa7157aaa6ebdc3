// Chaos: 8 `rkt fetch` processes pull overlapping images (shared base and middle layers) from one
// registry into one store while `rkt image gc` runs in a loop. Every fetch succeeds, every image
// is whole, and the registry's access log shows each blob downloaded exactly once: concurrent
// pullers of a blob wait for the one writing it, and gc never takes a blob an import still needs.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, randomLayer, useRegistry, writeOciLayout, type BuiltImage } from "@rkt/testkit";
import { chaosRandom, expectDone, figure, fsckOk, hangMs, rkt, rktHere } from "./helpers.js";

const reg = useRegistry({ mode: "plain", accessLog: true });
const { seed, random } = chaosRandom();
let tmp: string;
const images: { repo: string; img: BuiltImage }[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-chaos-concurrent-"));
  const base = randomLayer(3 << 20, { seed: "base", files: 12, dir: "base" });
  const mids = [0, 1].map((m) => randomLayer(2 << 20, { seed: `mid${m}`, files: 8, dir: "mid" }));
  for (let i = 0; i < 4; i++) {
    const dir = join(tmp, `layout${i}`);
    const own = randomLayer(1 << 20, { seed: `own${i}`, files: 4, dir: "own" });
    const img = await writeOciLayout(dir, { layers: [base, mids[i % 2]!, own] });
    const repo = `chaos/app${i}`;
    await pushLayout(dir, `${repo}:v1`, reg());
    images.push({ repo, img });
  }
}, 180_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("8 concurrent fetches of overlapping images while image gc loops", () => {
  it("all succeed, each blob is downloaded once, the store is consistent", async () => {
    const dir = join(tmp, "store");
    const before = reg().requests().length;
    const url = (i: number): string => `docker://${reg().host}/${images[i % 4]!.repo}:v1`;
    let done = false;
    let gcs = 0;
    const gcLoop = (async () => {
      while (!done) {
        // The default grace period keeps images just fetched; what no image or live import
        // needs (blobs, ingests, leases) is fair game, and gc must tell the two apart.
        const r = await rkt(dir, ["image", "gc"]);
        expectDone(r, "image gc");
        gcs++;
        await new Promise((ok) => setTimeout(ok, Math.floor(random() * 50)));
      }
    })();
    const t0 = performance.now();
    const fetches = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        await new Promise((ok) => setTimeout(ok, Math.floor(random() * 300)));
        return rkt(dir, ["--insecure-options=image,http", "fetch", "--no-render", url(i), url(i + 1)]);
      }),
    );
    const ms = performance.now() - t0;
    done = true;
    await gcLoop;
    for (const [i, r] of fetches.entries()) {
      expectDone(r, `fetch ${i}`);
      expect(r.stdout.trim().split("\n")).toEqual([
        images[i % 4]!.img.descriptor.digest,
        images[(i + 1) % 4]!.img.descriptor.digest,
      ]);
    }
    // Each blob GET the registry served, by digest (repositories share blobs by digest).
    const gets = new Map<string, number>();
    for (const q of reg().requests().slice(before)) {
      const m = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(q.path);
      if (q.method === "GET" && m !== null && (q.status === 200 || q.status === 206))
        gets.set(m[1]!, (gets.get(m[1]!) ?? 0) + 1);
    }
    const blobs = new Set(
      images.flatMap(({ img }) => [img.config.digest, ...img.layers.map((l) => l.digest)]),
    );
    expect(new Set(gets.keys())).toEqual(blobs);
    const twice = [...gets].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);
    const report = await fsckOk(dir);
    expect(report.garbage).toEqual([]);
    const list = await rktHere(dir, ["image", "list", "--no-legend", "--full", "--fields=id"]);
    expect(list.stdout.trim().split("\n").sort()).toEqual(images.map((x) => x.img.descriptor.digest).sort());
    figure("concurrent", {
      fetchers: "8 × 2 overlapping images",
      "image gc runs meanwhile": gcs,
      blobs: `${blobs.size}, each downloaded ${Math.max(...gets.values())} time(s) at most (registry access log)`,
      hangs: fetches.filter((r) => r.hung).length,
      time: `${(ms / 1000).toFixed(1)} s (hang limit ${hangMs / 1000} s each)`,
      seed,
    });
  }, 180_000);
});
