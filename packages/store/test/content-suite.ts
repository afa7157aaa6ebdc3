// A conformance suite for ContentStore implementations (containerd core/content/testsuite): run it
// against each store with a factory that makes a fresh, empty one.
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { buffer } from "node:stream/consumers";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, digestOf, isRktError, parseDigest, type ContentStore, type Digest } from "@rkt/oci";

/** A store under test; `reopen` simulates a process restart on the same storage. */
export interface SuiteStore {
  store: ContentStore;
  reopen(): Promise<ContentStore>;
  cleanup(): Promise<void>;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isRktError(e)) return e.code;
    throw e;
  }
  return "resolved";
}

async function read(store: ContentStore, d: Digest, start?: number): Promise<Buffer> {
  return buffer(await store.open(d, start === undefined ? undefined : { start }));
}

async function list(store: ContentStore): Promise<string[]> {
  const out: string[] = [];
  for await (const i of store.walk()) out.push(i.digest);
  return out.sort();
}

/** Registers the suite under `name`. */
export function contentStoreSuite(name: string, make: () => Promise<SuiteStore>): void {
  describe(`ContentStore conformance: ${name}`, () => {
    let s: SuiteStore | undefined;
    const fresh = async (): Promise<SuiteStore> => (s = await make());
    afterEach(async () => {
      await s?.cleanup();
      s = undefined;
    });

    it("commits content that is then readable, listed and described", async () => {
      const { store } = await fresh();
      const bytes = randomBytes(300_000);
      const d = digestOf(bytes);
      const w = await store.writer({ ref: "one", expected: { digest: d, size: bytes.length } });
      await pipeline(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), w.stream);
      expect(w.status()).toEqual({ ref: "one", offset: bytes.length, total: bytes.length });
      const desc = await w.commit();
      expect(desc.digest).toBe(d);
      expect(desc.size).toBe(bytes.length);
      expect((await read(store, d)).equals(bytes)).toBe(true);
      expect((await read(store, d, 299_000)).equals(bytes.subarray(299_000))).toBe(true);
      const info = await store.info(d);
      expect(info.size).toBe(bytes.length);
      expect(await list(store)).toEqual([d]);
    });

    it("hides content until commit", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("not yet");
      const d = digestOf(bytes);
      const w = await store.writer({ ref: "hidden" });
      w.stream.write(bytes);
      expect(await codeOf(store.info(d))).toBe(ErrorCode.NotFound);
      expect(await codeOf(store.open(d))).toBe(ErrorCode.NotFound);
      expect(await list(store)).toEqual([]);
      expect((await w.commit({ digest: d, size: bytes.length })).digest).toBe(d);
      expect((await store.info(d)).size).toBe(bytes.length);
    });

    it("treats committing present content as success, and refuses a writer for it", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("twice");
      const d = digestOf(bytes);
      for (const ref of ["a", "b"]) {
        const w = await store.writer({ ref });
        await pipeline(Readable.from([bytes]), w.stream);
        expect((await w.commit({ digest: d, size: 5 })).digest).toBe(d);
      }
      expect(await list(store)).toEqual([d]);
      expect(await codeOf(store.writer({ ref: "c", expected: { digest: d, size: 5 } }))).toBe(
        ErrorCode.AlreadyExists,
      );
    });

    it("refuses a wrong digest and makes nothing visible", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("content");
      const wrong = digestOf("other content");
      const w = await store.writer({ ref: "bad", expected: { digest: wrong, size: bytes.length } });
      await pipeline(Readable.from([bytes]), w.stream);
      const err = await w.commit().catch((e: unknown) => e);
      expect(isRktError(err, ErrorCode.DigestMismatch)).toBe(true);
      expect((err as Error).message).toContain(wrong);
      expect(await list(store)).toEqual([]);
      expect(await codeOf(store.info(digestOf(bytes)))).toBe(ErrorCode.NotFound);
      // the bad ingest is gone: the same ref starts from zero
      const again = await store.writer({ ref: "bad" });
      expect(again.status().offset).toBe(0);
      await again.abort();
    });

    it("refuses to take content under a digest it cannot verify", async () => {
      const { store } = await fresh();
      const d = parseDigest(`blake3:${digestOf("x").slice(7)}`);
      expect(await codeOf(store.writer({ ref: "b3", expected: { digest: d, size: 1 } }))).toBe(
        ErrorCode.UnsupportedAlgorithm,
      );
      expect(await list(store)).toEqual([]);
    });

    it("refuses a size mismatch at commit and while writing", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("sized");
      const d = digestOf(bytes);
      const w = await store.writer({ ref: "short" });
      await pipeline(Readable.from([bytes]), w.stream);
      expect(await codeOf(w.commit({ digest: d, size: 6 }))).toBe(ErrorCode.SizeMismatch);
      const w2 = await store.writer({ ref: "long", expected: { digest: d, size: 3 } });
      expect(await codeOf(pipeline(Readable.from([bytes]), w2.stream))).toBe(ErrorCode.SizeMismatch);
      await w2.abort();
      expect(await list(store)).toEqual([]);
    });

    it("resumes a closed ingest from its offset, also after a restart", async () => {
      const s0 = await fresh();
      const bytes = randomBytes(100_000);
      const d = digestOf(bytes);
      const expected = { digest: d, size: bytes.length };
      const w1 = await s0.store.writer({ ref: "resume", expected });
      await pipeline(Readable.from([bytes.subarray(0, 40_000)]), w1.stream);
      await w1.close();
      const w2 = await s0.store.writer({ ref: "resume", expected });
      expect(w2.status().offset).toBe(40_000);
      await pipeline(Readable.from([bytes.subarray(40_000, 70_000)]), w2.stream);
      await w2.close();
      const store = await s0.reopen();
      const w3 = await store.writer({ ref: "resume", expected });
      expect(w3.status()).toEqual({ ref: "resume", offset: 70_000, total: bytes.length });
      await pipeline(Readable.from([bytes.subarray(70_000)]), w3.stream);
      expect((await w3.commit()).digest).toBe(d);
      expect((await read(store, d)).equals(bytes)).toBe(true);
    });

    it("resumes an ingest that was closed before any byte was written", async () => {
      const s0 = await fresh();
      const bytes = Buffer.from("late start");
      const expected = { digest: digestOf(bytes), size: bytes.length };
      await (await s0.store.writer({ ref: "empty", expected })).close();
      const store = await s0.reopen();
      const w = await store.writer({ ref: "empty", expected });
      expect(w.status()).toEqual({ ref: "empty", offset: 0, total: bytes.length });
      await pipeline(Readable.from([bytes]), w.stream);
      expect((await w.commit()).digest).toBe(expected.digest);
    });

    it("aborts: the ingest is discarded", async () => {
      const { store } = await fresh();
      const w = await store.writer({ ref: "gone" });
      await pipeline(Readable.from([Buffer.from("partial")]), w.stream);
      await w.abort();
      await w.abort();
      const w2 = await store.writer({ ref: "gone" });
      expect(w2.status().offset).toBe(0);
      await w2.abort();
      expect(await list(store)).toEqual([]);
    });

    it("lets one writer hold a ref; a waiting writer gets it after the commit", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("contended");
      const d = digestOf(bytes);
      const expected = { digest: d, size: bytes.length };
      const w1 = await store.writer({ ref: "one-ref", expected });
      expect(await codeOf(store.writer({ ref: "one-ref", expected }))).toBe(ErrorCode.Unavailable);
      const waiting = codeOf(store.writer({ ref: "one-ref", expected, wait: true }));
      await pipeline(Readable.from([bytes]), w1.stream);
      await w1.commit();
      // the waiter takes the ref, then finds the content committed: nothing left to write
      expect(await waiting).toBe(ErrorCode.AlreadyExists);
    });

    it("aborts a waiting writer through its signal", async () => {
      const { store } = await fresh();
      const w1 = await store.writer({ ref: "held" });
      const ac = new AbortController();
      const waiting = codeOf(store.writer({ ref: "held", wait: true, signal: ac.signal }));
      setTimeout(() => ac.abort(), 50);
      expect(await waiting).toBe(ErrorCode.Aborted);
      await w1.abort();
    });

    it("deletes committed content", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("delete me");
      const d = digestOf(bytes);
      const w = await store.writer({ ref: "del" });
      await pipeline(Readable.from([bytes]), w.stream);
      await w.commit({ digest: d, size: bytes.length });
      await store.delete(d);
      expect(await codeOf(store.info(d))).toBe(ErrorCode.NotFound);
      expect(await codeOf(store.delete(d))).toBe(ErrorCode.NotFound);
      expect(await list(store)).toEqual([]);
    });

    it("hashes with the expected algorithm (sha512)", async () => {
      const { store } = await fresh();
      const bytes = Buffer.from("an archive");
      const d = digestOf(bytes, "sha512");
      const w = await store.writer({ ref: "512", algorithm: "sha512" });
      await pipeline(Readable.from([bytes]), w.stream);
      expect((await w.commit()).digest).toBe(d);
      expect((await store.info(d)).size).toBe(bytes.length);
    });
  });
}
