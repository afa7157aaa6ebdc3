import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { rawTar } from "@rkt/testkit";
import { indexTarFile } from "../src/tar-index.js";

let dir: string;
const long = `${"a".repeat(110)}/${"b".repeat(110)}/manifest.json`;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "d2a-tarindex-"));
  await mkdir(join(dir, "src", "a".repeat(110), "b".repeat(110)), { recursive: true });
  await writeFile(join(dir, "src", long), '{"x":1}');
  await writeFile(join(dir, "src", "manifest.json"), "[]");
  await writeFile(join(dir, "src", "big"), Buffer.alloc(70_000, 7));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("indexTarFile", () => {
  it.each(["gnu", "pax", "ustar"])("finds members, spans and documents of a %s tar", async (format) => {
    const file = join(dir, `${format}.tar`);
    const names = format === "ustar" ? ["manifest.json", "big"] : ["manifest.json", "big", long];
    execFileSync("tar", [`--format=${format}`, "-cf", file, "-C", join(dir, "src"), ...names]);
    const idx = await indexTarFile(file);
    expect(idx).toBeDefined();
    expect(idx!.entries.get("big")).toMatchObject({ type: "file", size: 70_000 });
    expect(Buffer.from(idx!.docs.get("manifest.json")!).toString()).toBe("[]");
    if (format !== "ustar") {
      // The long name is read whole (a GNU `L` entry or a PAX `path` record) and its body located.
      const span = idx!.spans.get(long)!;
      const bytes = (await readFile(file)).subarray(span.offset, span.offset + span.size);
      expect(bytes.toString()).toBe('{"x":1}');
    }
    expect(idx!.spans.get("big")!.offset % 512).toBe(0);
  });

  it("returns undefined for a file that is not a plain tar, and refuses a truncated one", async () => {
    await writeFile(join(dir, "junk"), Buffer.alloc(2048, 0x41));
    expect(await indexTarFile(join(dir, "junk"))).toBeUndefined();
    const file = join(dir, "t.tar");
    execFileSync("tar", ["-cf", file, "-C", join(dir, "src"), "big", "manifest.json"]);
    await writeFile(join(dir, "cut.tar"), (await readFile(file)).subarray(0, 30_000));
    await expect(indexTarFile(join(dir, "cut.tar"))).rejects.toThrow(/truncated/);
  });

  // Found by test/fuzz (archives): a negative PAX size sent the walk backwards forever, a huge
  // extended header was allocated whole (a RangeError), a size of 1e400 read as infinity.
  it("refuses sizes that are not counts, and extended headers over 1 MiB", async () => {
    const cases: [string, Buffer, RegExp][] = [
      [
        "neg",
        rawTar([{ name: "a", body: "x".repeat(2000), pax: { size: "-3000" } }, { name: "b" }]),
        /invalid PAX size "-3000"/,
      ],
      ["inf", rawTar([{ name: "a", body: "x", pax: { size: "1e400" } }]), /invalid PAX size "1e400"/],
      [
        "huge",
        Buffer.concat([
          rawTar([{ name: "x", type: "x", size: 2 ** 40 }]).subarray(0, 512),
          Buffer.alloc(2048),
        ]),
        /1099511627776-byte extended header/,
      ],
    ];
    for (const [name, bytes, why] of cases) {
      const file = join(dir, `${name}.tar`);
      await writeFile(file, bytes);
      const e: unknown = await indexTarFile(file).catch((x: unknown) => x);
      expect(isRktError(e, ErrorCode.InvalidArchive), name).toBe(true);
      expect((e as Error).message).toMatch(why);
    }
  });
});
