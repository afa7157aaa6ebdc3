import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { digestOf } from "@rkt/oci";
import {
  LocalStore,
  readBlobLimited,
  writeBlob,
  acquireLock,
  clearDeadLocks,
  isLocked,
  schemaVersion,
  tryLock,
} from "@rkt/store";
import { contentStoreSuite } from "./content-suite.js";
import { indexDb } from "../src/internal/index-db.js";

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
      const row = indexDb(store).prepare("SELECT size FROM blobs WHERE digest = ?").get(d);
      expect(row).toEqual({ size: bytes.length });
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("locks and the index", () => {
  it("takes over a lock whose holder died or whose pid was reused, never one a live process holds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
    const store = await LocalStore.open(dir);
    try {
      const dead = spawnSync("true").pid;
      const put = indexDb(store).prepare(
        "INSERT OR REPLACE INTO locks (key, owner, pid, start_time, acquired) VALUES (?, 'x', ?, ?, 0)",
      );
      put.run("k1", dead, 1);
      const h1 = tryLock(store, "k1");
      expect("heldBy" in h1).toBe(false);
      // our own pid with another start time: a previous process that had this pid
      put.run("k2", process.pid, 1);
      expect("heldBy" in tryLock(store, "k2")).toBe(false);
      // a live holder (the parent of this process) keeps it
      const ppidStart = Number(
        (await readFile(`/proc/${process.ppid}/stat`, "utf8")).split(") ")[1]!.split(" ")[19],
      );
      put.run("k3", process.ppid, ppidStart);
      expect(tryLock(store, "k3")).toEqual({ heldBy: process.ppid });
      expect(isLocked(store, "k3")).toBe(true);
      await expect(acquireLock(store, "k3", { what: "thing" })).rejects.toThrow(
        `thing is locked by process ${process.ppid}`,
      );
      expect(clearDeadLocks(store)).toBe(0);
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses an index written by a newer version", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
    try {
      const store = await LocalStore.open(dir);
      expect(indexDb(store).pragma("user_version", { simple: true })).toBe(schemaVersion);
      indexDb(store).pragma(`user_version = ${schemaVersion + 1}`);
      store.close();
      await expect(LocalStore.open(dir)).rejects.toThrow(
        `schema version ${schemaVersion + 1} is newer than this rkt supports (${schemaVersion})`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("writeBlob / readBlobLimited", () => {
  it("writes once, skips present content, refuses wrong bytes, caps reads", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
    const store = await LocalStore.open(dir);
    try {
      const bytes = Buffer.from("a config");
      const desc = { mediaType: "application/json", digest: digestOf(bytes), size: bytes.length };
      let opened = 0;
      const src = () => {
        opened++;
        return Promise.resolve(Readable.from([bytes]));
      };
      await writeBlob(store, src, desc);
      await writeBlob(store, src, desc);
      expect(opened).toBe(1);
      expect((await readBlobLimited(store, desc.digest, 100)).equals(bytes)).toBe(true);
      await expect(readBlobLimited(store, desc.digest, 3)).rejects.toThrow(/more than the 3 allowed/);
      const other = { ...desc, digest: digestOf("something else") };
      await expect(writeBlob(store, Readable.from([bytes]), other)).rejects.toMatchObject({
        code: "RKT_DIGEST_MISMATCH",
      });
      expect(await readdir(join(dir, "cas", "ingest"))).toEqual([]);
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
