// Fuzzing what reads archives from untrusted sources: compression detection and the decoders
// (gzip, bzip2, xz, zstd), the ACI reader, `rkt image validate` on any file (its type detection,
// the tar index of docker-archives, layout archives), and the layer extractor writing into a
// directory, with nothing outside that directory touched.
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { detectCompression, readAci } from "@rkt/appc";
import { validateFile } from "@rkt/fetch";
import { extractLayer } from "@rkt/store";
import { FuzzStats, corpus, fuzz, invariant, maxRss, maxRssMiB, mutatedBytes } from "./harness.js";
import { rawTar, type RawEntry } from "@rkt/testkit";

const stats = new FuzzStats("archives");
const root = mkdtempSync(join(tmpdir(), "rkt-fuzz-archives-"));
const jail = join(root, "jail");
const victim = join(root, "victim");
mkdirSync(jail);
writeFileSync(victim, "untouched\n");
const victimStat = lstatSync(victim);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  console.log(stats.line());
  expect(maxRss()).toBeLessThan(maxRssMiB);
});

// Nothing but the jail and the victim beside it, the victim as it was, the jail empty again.
function assertJailHeld(): void {
  const beside = readdirSync(root).sort().join(", ");
  invariant(beside === "jail, victim", `nothing created beside the jail (found: ${beside})`);
  const st = lstatSync(victim);
  invariant(
    // ctime moves on any write, chmod, chown, link or unlink; nlink counts hard links made to it.
    st.isFile() && st.ctimeMs === victimStat.ctimeMs && st.nlink === 1 && st.mode === victimStat.mode,
    "the file beside the jail is untouched",
  );
  invariant(readFileSync(victim, "utf8") === "untouched\n", "the file beside the jail keeps its content");
  const left = readdirSync(jail);
  invariant(left.length === 0, `the jail is empty once the case is removed (left: ${left.join(", ")})`);
}

// Structure-aware tars: entries whose names, types, links, sizes and PAX records are drawn from
// what hostile layers use.
const names = fc.oneof(
  fc.constantFrom(
    "a",
    "a/b",
    "d/",
    "./x",
    "/abs",
    "../victim",
    "../../victim",
    "a/../../victim",
    "rootfs",
    "rootfs/a",
    "rootfs/../../victim",
    "manifest",
    "manifest.json",
    "repositories",
    "oci-layout",
    "index.json",
    "blobs/sha256/" + "a".repeat(64),
    "l",
    "l/x",
    ".wh.a",
    "d/.wh..wh..opq",
    ".wh..wh..opq",
    ".wh...",
    "x\u0000y",
    "é/ü",
  ),
  fc.string({ unit: fc.constantFrom("a", "/", ".", "-"), minLength: 1, maxLength: 12 }),
  fc.integer({ min: 90, max: 5000 }).map((n) => "n".repeat(n)),
  fc.integer({ min: 2, max: 40 }).map((n) => Array(n).fill("d".repeat(200)).join("/")),
);
const links = fc.oneof(
  fc.constantFrom(
    "a",
    "../victim",
    "../../victim",
    "/",
    victim,
    root,
    jail,
    ".",
    "..",
    "l",
    "d/",
    "rootfs/a",
    "",
  ),
  names,
);
const entry: fc.Arbitrary<RawEntry> = fc.record(
  {
    name: names,
    type: fc.constantFrom(
      "0",
      "0",
      "0",
      "5",
      "5",
      "2",
      "2",
      "1",
      "3",
      "4",
      "6",
      "7",
      "S",
      "K",
      "L",
      "g",
      "x",
      "V",
      "Z",
    ),
    body: fc.oneof(fc.constant(""), fc.string({ maxLength: 40 })),
    size: fc.oneof(fc.constant(undefined), fc.nat({ max: 2000 }), fc.constant(2 ** 40)),
    linkname: links,
    mode: fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(0o4755, 0o777, 0o000, 0o7777),
      fc.nat({ max: 0o7777 }),
    ),
    uid: fc.oneof(fc.constant(undefined), fc.nat({ max: 70000 })),
    devmajor: fc.nat({ max: 300 }),
    devminor: fc.nat({ max: 300 }),
    pax: fc.oneof(
      fc.constant(undefined),
      fc.dictionary(
        fc.constantFrom(
          "path",
          "linkpath",
          "size",
          "mtime",
          "uid",
          "GNU.sparse.major",
          "GNU.sparse.size",
          "SCHILY.xattr.user.a",
          "SCHILY.xattr.security.capability",
        ),
        fc.oneof(
          names,
          fc.constantFrom("-1", "-100000", "1e400", "NaN", "99999999999999999999", "0", "1099511627776"),
        ),
        { maxKeys: 3 },
      ),
    ),
  },
  { requiredKeys: ["name", "type"] },
);
const aciManifest = Buffer.from(
  JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/x" }),
);
// What the archive starts as: anything, an ACI, or a docker-archive (whose index is read by
// header offsets, not by tar-stream).
const dockerManifest = Buffer.from(
  JSON.stringify([{ Config: "c.json", RepoTags: ["a:1"], Layers: ["l.tar"] }]),
);
const starts: Record<"none" | "aci" | "docker", RawEntry[]> = {
  none: [],
  aci: [
    { name: "manifest", body: aciManifest },
    { name: "rootfs", type: "5" },
  ],
  docker: [{ name: "manifest.json", body: dockerManifest }],
};
const structured = fc
  .tuple(
    fc.array(entry, { minLength: 1, maxLength: 12 }),
    fc.constantFrom("none", "aci", "docker"),
    fc.boolean(),
  )
  .map(([entries, start, gz]) => {
    const all: RawEntry[] = [...starts[start], ...entries];
    const tar = rawTar(all);
    return gz ? gzipSync(tar) : tar;
  });

const seeds = corpus("archives").map((c) => c.bytes);
const inputs = fc.oneof(
  { arbitrary: structured, weight: 2 },
  { arbitrary: mutatedBytes(seeds, 256 * 1024), weight: 1 },
);

let n = 0;

describe("archives", () => {
  it("the ACI reader refuses with RktError, never crashes", { timeout: 120_000 }, async () => {
    const target = async (b: Buffer) => {
      detectCompression(b);
      await readAci(
        Readable.from([b]),
        async (_e, body) => {
          for await (const _chunk of body) {
            // bodies are read to the end, as importers do
          }
        },
        { hash: true },
      );
    };
    await fuzz(stats, target, inputs, { numRuns: 700, boundMs: 2000, corpus: seeds });
  });

  it("`image validate` on any file gives a verdict", { timeout: 180_000 }, async () => {
    const target = async (b: Buffer) => {
      const file = join(jail, `v${n++}`);
      writeFileSync(file, b);
      try {
        const r = await validateFile(file);
        for (const i of r.issues) invariant(i.message !== "" && !i.message.includes("\n"), "one-line issues");
      } finally {
        rmSync(file, { force: true });
      }
      assertJailHeld();
    };
    await fuzz(stats, target, inputs, { numRuns: 500, boundMs: 2000, corpus: seeds });
  });

  it("the layer extractor stays in its directory", { timeout: 180_000 }, async () => {
    const target = async ([b, format]: [Buffer, "oci" | "aci"]) => {
      const dest = join(jail, `x${n++}`);
      mkdirSync(dest);
      try {
        await extractLayer(Readable.from([b]), dest, { what: "fuzz layer", format, maxEntrySize: 1 << 20 });
      } finally {
        rmSync(dest, { recursive: true, force: true });
        assertJailHeld();
      }
    };
    const formats = fc.constantFrom("oci" as const, "aci" as const);
    await fuzz(stats, target, fc.tuple(inputs, formats), {
      numRuns: 700,
      boundMs: 2000,
      corpus: seeds.map((s) => [s, "oci"] as [Buffer, "oci" | "aci"]),
    });
  });
});
