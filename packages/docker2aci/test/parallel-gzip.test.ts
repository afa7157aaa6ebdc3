import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createParallelGzip } from "../src/parallel-gzip.js";

describe("parallel gzip", () => {
  it("writes concatenated members that gunzip to the input, in order", async () => {
    const input = Buffer.concat([randomBytes(300_000), Buffer.alloc(500_000, 1), randomBytes(123_457)]);
    const chunks = [input.subarray(0, 1), input.subarray(1, 400_000), input.subarray(400_000)];
    const out = await buffer(
      Readable.from(chunks).pipe(createParallelGzip({ blockSize: 64 * 1024, parallel: 3 })),
    );
    expect(out[0]).toBe(0x1f);
    expect(gunzipSync(out).equals(input)).toBe(true);
  });

  it("gives a valid empty gzip file for empty input", async () => {
    const out = await buffer(Readable.from([]).pipe(createParallelGzip()));
    expect(gunzipSync(out).length).toBe(0);
  });
});
