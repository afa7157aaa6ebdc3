import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOffThreadHash } from "../src/offthread-hash.js";

describe("createOffThreadHash", () => {
  it("gives the digest createHash gives, across ring wrap-arounds and a ring-sized backlog", async () => {
    const data = randomBytes(24 << 20);
    for (const algorithm of ["sha256", "sha512"]) {
      // Chunks larger than the 4 MiB ring, and writes that wait for the worker.
      const h = createOffThreadHash(algorithm);
      for (let off = 0, n = 1; off < data.length; off += n, n = (n * 7919 + 13) % (9 << 20)) {
        h.update(data.subarray(off, off + n));
      }
      expect(h.bytes).toBe(data.length);
      expect(await h.digest()).toBe(createHash(algorithm).update(data).digest("hex"));
    }
  });

  it("hashes empty input", async () => {
    const h = createOffThreadHash("sha512");
    expect(await h.digest()).toBe(createHash("sha512").digest("hex"));
  });

  it("reports a worker stopped before the digest", async () => {
    const h = createOffThreadHash("sha256");
    h.update(Buffer.from("abc"));
    h.abort();
    await expect(h.digest()).rejects.toThrow(/hash worker exited/);
  });

  it("fails for an algorithm the worker cannot make", async () => {
    await expect(createOffThreadHash("no-such-hash").digest()).rejects.toThrow(
      /Digest method not supported|Invalid digest/,
    );
  });
});
