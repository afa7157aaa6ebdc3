// importAci's beforeCommit hook (used by @rkt/fetch to verify signatures before an image becomes
// visible): what it is given, and that a refusal leaves nothing behind.
import { Buffer } from "node:buffer";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, RktError } from "@rkt/oci";
import { fsck, importAci, listImages, type BeforeCommitInfo } from "@rkt/store";
import { gzip, leftovers, makeAci, readable, sha512Id, tempStore, type TempStore } from "./helpers.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

async function readAll(info: BeforeCommitInfo): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await info.open()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("importAci beforeCommit", () => {
  it("sees the manifest, the compression and the exact uncompressed bytes before the commit", async () => {
    const tar = await makeAci("example.com/hook", { version: "1.0" });
    const seen: { name: string; compression: string; size: number; bytes: Buffer; listed: number }[] = [];
    const r = await importAci(t.store, readable(gzip(tar)), {
      beforeCommit: async (info) => {
        seen.push({
          name: info.manifest.name,
          compression: info.compression,
          size: info.size,
          bytes: await readAll(info),
          listed: listImages(t.store).length,
        });
      },
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      name: "example.com/hook",
      compression: "gzip",
      size: tar.length,
      listed: 0,
    });
    expect(seen[0]!.bytes.equals(tar)).toBe(true);
    expect(r.id).toBe(sha512Id(tar));
    expect(listImages(t.store).map((i) => i.id)).toEqual([r.id]);
  });

  it("a throwing hook refuses the image: its error unchanged, nothing stored, no ingest left", async () => {
    const tar = await makeAci("example.com/hook");
    const refusal = new RktError(ErrorCode.KeyUntrusted, "openpgp: signature made by unknown entity");
    const e = await importAci(t.store, readable(tar), {
      what: "hook.aci",
      beforeCommit: () => Promise.reject(refusal),
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBe(refusal);
    expect(listImages(t.store)).toEqual([]);
    expect(await leftovers(t.dir)).toEqual({ ingest: [], tmp: [] });
    expect(await readdir(join(t.dir, "cas", "blobs", "sha512"))).toEqual([]);
    const report = await fsck(t.store);
    expect(report.problems).toEqual([]);
    expect(report.garbage).toEqual([]);
  });
});
