import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { digestOf } from "@rkt/oci";
import { LocalStore } from "@rkt/store";
import { contentStoreSuite } from "./content-suite.js";

contentStoreSuite("LocalStore", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
  let current = await LocalStore.open(dir);
  return {
    store: current,
    async reopen() {
      current.close();
      current = await LocalStore.open(dir);
      return current;
    },
    async cleanup() {
      current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe("LocalStore on disk", () => {
  it("stores blobs read-only at blobs/<alg>/<hex> and leaves no ingest behind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
    const store = await LocalStore.open(dir);
    try {
      const bytes = Buffer.from("layout");
      const d = digestOf(bytes);
      const w = await store.writer({ ref: "x" });
      await pipeline(Readable.from([bytes]), w.stream);
      await w.commit({ digest: d, size: bytes.length });
      const st = await stat(join(dir, "cas", "blobs", "sha256", d.slice(7)));
      expect(st.mode & 0o777).toBe(0o444);
      expect(await readdir(join(dir, "cas", "ingest"))).toEqual([]);
      const row = store.db.prepare("SELECT size FROM blobs WHERE digest = ?").get(d);
      expect(row).toEqual({ size: bytes.length });
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
