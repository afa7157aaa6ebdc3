// sha256 of a 256 MiB file: @rkt/oci createDigester over a read stream vs coreutils sha256sum.
// Both read the same file from a warm page cache, so this compares hashing throughput plus I/O
// overhead per byte, not disk speed.
import { createReadStream, existsSync } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createDigester } from "@rkt/oci";
import { randomStream } from "@rkt/testkit";
import { cacheDir } from "../fixtures.js";
import { bench, spawnMeasured } from "../harness.js";

const size = 256 * 2 ** 20;

async function ourDigest(file: string): Promise<string> {
  const d = createDigester();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), async (src: AsyncIterable<Buffer>) => {
    for await (const chunk of src) d.update(chunk);
  });
  return d.digest();
}

export async function run(): Promise<void> {
  const dir = join(cacheDir(), "data");
  const file = join(dir, "random-256m.bin");
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true });
    await pipeline(randomStream(size, "bench-digest"), createWriteStream(`${file}.partial`));
    await rename(`${file}.partial`, file);
  }
  // Correctness first: both must agree, or the timings mean nothing.
  const ours = await ourDigest(file);
  const theirs = (await spawnMeasured("sha256sum", [file], { capture: true })).stdout.split(" ")[0];
  if (ours !== `sha256:${theirs}`) throw new Error(`digest mismatch: ${ours} vs sha256:${theirs}`);

  await bench("sha256 of 256 MiB (createDigester vs sha256sum)", {
    ours: async () => {
      await ourDigest(file);
    },
    peers: { sha256sum: () => spawnMeasured("sha256sum", [file]) },
    runs: 5,
  });
}
