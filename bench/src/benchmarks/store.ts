// The content store from the CLI (issue 3):
// - ingest of a 1 GiB ACI with `rkt fetch` (a child process, so its peak RSS is ours alone) vs
//   `cp` + `sha512sum` of the same file in the same run; the ACI is a plain tar of 1 GiB of
//   deterministic random bytes, built once into the bench cache; every run starts from an empty
//   store (a re-import of a known file would be a cache hit);
// - `rkt image list` and `rkt image gc` on a store holding 10,000 images. The store is built once
//   in the cache by importing 10,000 tiny distinct ACIs through @rkt/store's importAci (the real
//   import path: blob commit + index rows), then copied per gc run (gc destroys it; the copy is not
//   timed).
import { spawnSync } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { writeAci } from "@rkt/appc";
import { LocalStore, importAci } from "@rkt/store";
import { randomStream } from "@rkt/testkit";
import { cacheDir } from "../fixtures.js";
import {
  bench,
  formatTable,
  median,
  rktBin,
  spawnMeasured,
  withBaseline,
  type BenchResult,
} from "../harness.js";

const rkt = rktBin;
const bigSize = 2 ** 30;
const storeImages = 10_000;
/** Peak RSS the issue allows for the 1 GiB ingest. */
const rssLimitMiB = 150;

function manifest(name: string): string {
  return JSON.stringify({
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name,
    labels: [
      { name: "version", value: "1.0.0" },
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ],
  });
}

async function bigAci(): Promise<string> {
  const dir = join(cacheDir(), "data");
  const file = join(dir, "random-1g.aci");
  if (existsSync(file)) return file;
  await mkdir(dir, { recursive: true });
  process.stderr.write(`bench store: building ${file} (once)\n`);
  const aci = writeAci(manifest("bench.example/big"), [
    { header: { name: "data", size: bigSize, mode: 0o644 }, body: randomStream(bigSize, "bench-store-1g") },
  ]);
  await pipeline(aci, createWriteStream(`${file}.partial`, { highWaterMark: 1 << 20 }));
  await rename(`${file}.partial`, file);
  return file;
}

async function manyImagesStore(): Promise<string> {
  const dir = join(cacheDir(), `store-10k-v1`);
  if (existsSync(join(dir, "done"))) return dir;
  await rm(dir, { recursive: true, force: true });
  process.stderr.write(`bench store: importing ${storeImages} tiny ACIs into ${dir} (once)\n`);
  const store = await LocalStore.open(dir);
  try {
    for (let i = 0; i < storeImages; i++) {
      const aci = writeAci(manifest(`bench.example/img-${i}`), [
        { header: { name: "id", mode: 0o644 }, body: `${i}\n` },
      ]);
      await importAci(store, aci, { what: `tiny ACI ${i}` });
    }
  } finally {
    store.close();
  }
  await writeFile(join(dir, "done"), "");
  return dir;
}

async function timedRuns(
  name: string,
  runs: number,
  prepare: () => Promise<string>,
  args: (dir: string) => string[],
): Promise<BenchResult> {
  const seconds: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    const dir = await prepare();
    try {
      const t0 = process.hrtime.bigint();
      const r = await spawnMeasured(process.execPath, [rkt, "--dir", dir, ...args(dir)]);
      seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
      rss = Math.max(rss, r.peakRssKiB ?? 0);
    } finally {
      if (dir.includes("rkt-bench-store-")) await rm(dir, { recursive: true, force: true });
    }
  }
  const result: BenchResult = {
    name,
    subjects: [{ name: "ours", seconds, median: median(seconds), peakRssKiB: rss }],
  };
  process.stdout.write(formatTable(result));
  return result;
}

export async function run(): Promise<void> {
  const file = await bigAci();
  const scratch = join(cacheDir(), "scratch");
  await mkdir(scratch, { recursive: true });
  const fresh = () => mkdtemp(join(scratch, "rkt-bench-store-"));
  const ingestWith = (bin: string) => async () => {
    const dir = await fresh();
    try {
      return await spawnMeasured(process.execPath, [
        bin,
        "--dir",
        dir,
        "--insecure-options=image",
        "fetch",
        // The ingest alone: as root with overlayfs, fetch would also render (the render bench's case).
        "--no-render",
        file,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  const ingest = await bench("ingest a 1 GiB ACI: rkt fetch vs cp + sha512sum", {
    ours: ingestWith(rkt),
    peers: withBaseline(
      {
        "cp+sha512sum": async () => {
          const dir = await fresh();
          try {
            const copy = join(dir, "copy.aci");
            const cp = await spawnMeasured("cp", [file, copy]);
            const sum = await spawnMeasured("sha512sum", [copy]);
            return { peakRssKiB: Math.max(cp.peakRssKiB ?? 0, sum.peakRssKiB ?? 0) };
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      },
      ingestWith,
    ),
    runs: 3,
    warmup: 1,
  });
  const oursRss = (ingest.subjects[0]?.peakRssKiB ?? 0) / 1024;
  process.stdout.write(
    `1 GiB ingest: ${(1024 / ingest.subjects[0]!.median).toFixed(0)} MiB/s, peak RSS ${oursRss.toFixed(1)} MiB (limit ${rssLimitMiB} MiB: ${oursRss <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
  );

  const many = await manyImagesStore();
  const list = (bin: string) => () => spawnMeasured(process.execPath, [bin, "--dir", many, "image", "list"]);
  const listed = await bench(`rkt image list, ${storeImages} images, vs node -e 0`, {
    ours: list(rkt),
    peers: withBaseline({ "node -e 0": () => spawnMeasured(process.execPath, ["-e", "0"]) }, list),
    runs: 5,
  });
  process.stdout.write(
    `image list: ${(listed.subjects[0]!.median / listed.subjects[1]!.median).toFixed(2)}× node -e 0 (goal ≤ 2.0×)\n`,
  );
  await timedRuns(
    `rkt image list --format=json, ${storeImages} images`,
    5,
    () => Promise.resolve(many),
    () => ["image", "list", "--format=json"],
  );
  const copy = async (): Promise<string> => {
    const dir = await fresh();
    const r = spawnSync("cp", ["-a", `${many}/.`, dir]);
    if (r.status !== 0) throw new Error(`cp -a ${many}: ${r.stderr.toString()}`);
    return dir;
  };
  // A grace period longer than the cached store's age, so that nothing is collected whenever it was built.
  await timedRuns(`rkt image gc (nothing to collect), ${storeImages} images`, 3, copy, () => [
    "image",
    "gc",
    "--grace-period=876000h",
  ]);
  await timedRuns(`rkt image gc --grace-period=0s (all ${storeImages} removed)`, 3, copy, () => [
    "image",
    "gc",
    "--grace-period=0s",
  ]);
}
