// Layer decompression: every zstd backend against the reference `zstd` tool's output, gzip and
// sniffed types, and corrupt input failing the stream.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { MediaType } from "@rkt/oci";
import { decompressLayer, zstdDecompressor, type ZstdBackend } from "../src/registry/layer-decompress.js";

// Half random, half repetitive: exercises both literal and match sequences.
const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(300_000, "rkt layer "), randomBytes(1000)]);
const zst = spawnSync("zstd", ["-c", "-3", "-q"], { input: plain, maxBuffer: 1 << 26 }).stdout;

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function chunked(b: Buffer, size = 7000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return Readable.from(parts);
}

describe("zstd backends", () => {
  it("has a zstd fixture from the reference tool", () => {
    expect(zst.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
  });

  for (const backend of ["auto", "process", "fzstd"] as const satisfies readonly ZstdBackend[]) {
    it(`${backend}: decompresses what zstd wrote, byte for byte`, async () => {
      const d = zstdDecompressor(backend);
      const out = collect(d);
      chunked(zst).pipe(d);
      expect((await out).equals(plain)).toBe(true);
    });

    it(`${backend}: fails on truncated input`, async () => {
      const s = await decompressLayer(chunked(zst.subarray(0, zst.length - 100)), MediaType.OciLayerZstd, {
        zstd: backend,
      });
      await expect(collect(s)).rejects.toThrow(/zstd|unexpected|end/i);
    });
  }

  it("node: used when the runtime's zlib has zstd, refused otherwise", () => {
    if ("createZstdDecompress" in zlib) expect(zstdDecompressor("node")).toBeDefined();
    else
      expect(() => zstdDecompressor("node")).toThrow(
        expect.objectContaining({ code: "RKT_INVALID_ARGUMENT" }),
      );
  });
});

describe("decompressLayer", () => {
  it("gunzips gzip layers and passes uncompressed ones through", async () => {
    expect(
      (await collect(await decompressLayer(chunked(zlib.gzipSync(plain)), MediaType.OciLayerGzip))).equals(
        plain,
      ),
    ).toBe(true);
    expect((await collect(await decompressLayer(chunked(plain), MediaType.OciLayer))).equals(plain)).toBe(
      true,
    );
  });

  it("sniffs Docker's .tar type, which some producers compressed anyway", async () => {
    expect((await collect(await decompressLayer(chunked(zst), MediaType.DockerLayer))).equals(plain)).toBe(
      true,
    );
    expect(
      (await collect(await decompressLayer(chunked(zlib.gzipSync(plain)), MediaType.DockerLayer))).equals(
        plain,
      ),
    ).toBe(true);
  });

  it("fails a corrupt gzip layer", async () => {
    const bad = zlib.gzipSync(plain);
    bad[100] = bad[100]! ^ 0xff;
    await expect(collect(await decompressLayer(chunked(bad), MediaType.DockerLayerGzip))).rejects.toThrow();
  });
});
