import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, linkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Header } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TarParser, encodeTarHeader, tarEnd, tarPadding, tarStream } from "../src/index.js";

interface Seen {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkname: string;
  mtime: number;
  sha: string;
  xattrs: string[];
}

function seen(h: Header, body: Buffer): Seen {
  const pax = (h.pax ?? {}) as Record<string, string>;
  return {
    name: h.name,
    type: h.type,
    size: h.type === "file" ? h.size : 0,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    linkname: h.linkname ?? "",
    mtime: h.mtime.getTime(),
    sha: createHash("sha256").update(body).digest("hex"),
    xattrs: Object.keys(pax).filter((k) => k.startsWith("SCHILY.xattr.")),
  };
}

// Parses with the codec, feeding `cut`-byte chunks.
function parse(archive: Buffer, cut = archive.length): Seen[] {
  const out: Seen[] = [];
  let h: Header | undefined;
  let parts: Buffer[] = [];
  const done = (): void => {
    if (h !== undefined) out.push(seen(h, Buffer.concat(parts)));
    h = undefined;
    parts = [];
  };
  const p = new TarParser({
    entry(header) {
      done();
      h = header;
      return true;
    },
    body(c) {
      parts.push(Buffer.from(c));
    },
  });
  for (let off = 0; off < archive.length; off += cut) p.push(archive.subarray(off, off + cut));
  p.end();
  done();
  return out;
}

// The same with tar-stream, the reference the rest of the project reads with.
async function parseReference(archive: Buffer): Promise<Seen[]> {
  const out: Seen[] = [];
  const ex = tarStream().extract();
  Readable.from([archive]).pipe(ex);
  for await (const e of ex) {
    const parts: Buffer[] = [];
    for await (const c of e as AsyncIterable<Buffer>) parts.push(c);
    out.push(seen(e.header, Buffer.concat(parts)));
  }
  return out;
}

// A header block with another type flag, its checksum recomputed.
function withFlag(block: Buffer, flag: string): Buffer {
  block[156] = flag.charCodeAt(0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return block;
}

let dir: string;
const longDir = `deep-${"d".repeat(90)}/${"e".repeat(90)}`;
const longFile = `${longDir}/${"f".repeat(120)}.txt`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tar-codec-"));
  const root = join(dir, "root");
  mkdirSync(join(root, longDir), { recursive: true });
  writeFileSync(join(root, "small"), "hello\n");
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "big"), Buffer.alloc(70_000, 7));
  writeFileSync(join(root, longFile), "long name\n");
  writeFileSync(join(root, "caf\u00e9-\u00fc.txt"), "utf-8 name\n");
  symlinkSync(`/target/${"t".repeat(150)}`, join(root, "long-link"));
  symlinkSync("small", join(root, "short-link"));
  linkSync(join(root, "small"), join(root, "hard"));
  execFileSync("mkfifo", [join(root, "pipe")]);
  try {
    execFileSync("setfattr", ["-n", "user.note", "-v", "x", join(root, "small")], { stdio: "ignore" });
  } catch {
    // no setfattr or no user xattrs here: the xattr check below compares whatever tar stored
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("TarParser", () => {
  for (const format of ["pax", "gnu", "ustar"] as const) {
    it(`reads GNU tar's ${format} archives as tar-stream does, whatever the chunking`, async () => {
      const file = join(dir, `${format}.tar`);
      const args = ["--format", format, "--sort=name", "-cf", file, "-C", join(dir, "root"), "."];
      if (format === "pax") args.unshift("--xattrs");
      if (format === "ustar") {
        // ustar cannot hold the long link or the deepest name: leave them out
        args.unshift("--exclude=./long-link", `--exclude=./${longDir}`);
      }
      execFileSync("tar", args);
      const archive = readFileSync(file);
      const want = await parseReference(archive);
      expect(want.length).toBeGreaterThan(8);
      expect(parse(archive)).toEqual(want);
      for (const cut of [1, 511, 512, 513, 4096, 65_537]) expect(parse(archive, cut)).toEqual(want);
    });
  }

  it("stops at the first zero block and ignores what follows", () => {
    const archive = Buffer.concat([
      encodeTarHeader({ name: "a", size: 3 }),
      Buffer.from("abc"),
      Buffer.alloc(tarPadding(3)),
      tarEnd(),
      Buffer.from("trailing garbage"),
    ]);
    expect(parse(archive).map((e) => e.name)).toEqual(["a"]);
  });

  it("refuses an archive cut inside an entry, naming the entry", () => {
    const archive = Buffer.concat([encodeTarHeader({ name: "cut-file", size: 1000 }), Buffer.alloc(10)]);
    expect(() => parse(archive)).toThrow(/truncated in entry "cut-file"/);
    expect(() => parse(archive.subarray(0, 300))).toThrow(/truncated in a header/);
  });

  it("refuses a bad checksum, a header that is not ustar, and a type flag it cannot read", () => {
    const bad = encodeTarHeader({ name: "x" });
    bad[0] = 0x79;
    expect(() => parse(Buffer.concat([bad, tarEnd()]))).toThrow(/checksum mismatch/);
    const noMagic = Buffer.alloc(512, 0x41);
    expect(() => parse(noMagic)).toThrow(/checksum mismatch|unknown format/);
    const sparse = withFlag(encodeTarHeader({ name: "sparse" }), "S");
    expect(() => parse(Buffer.concat([sparse, tarEnd()]))).toThrow(
      /"sparse" has type "S", which is not supported/,
    );
  });

  it("refuses a pax header too large to be metadata", () => {
    const h = withFlag(encodeTarHeader({ name: "PaxHeader", size: 2 << 20 }), "x");
    expect(() => parse(h)).toThrow(/pax-header of 2097152 bytes is too large/);
  });
});

describe("encodeTarHeader", () => {
  const entries: { h: Parameters<typeof encodeTarHeader>[0]; body?: string }[] = [
    { h: { name: "dir", type: "directory", mode: 0o755 } },
    {
      h: { name: "dir/file", mode: 0o600, uid: 1000, gid: 1000, uname: "u", gname: "g", size: 5 },
      body: "12345",
    },
    { h: { name: `${"p".repeat(150)}/${"n".repeat(99)}`, size: 1 }, body: "x" },
    { h: { name: `${"q".repeat(300)}`, size: 1 }, body: "y" },
    { h: { name: "r\u00e9sum\u00e9", size: 2 }, body: "ok" },
    { h: { name: "sym", type: "symlink", linkname: `/${"l".repeat(200)}` } },
    { h: { name: "hard", type: "link", linkname: "dir/file" } },
    { h: { name: "with-xattr", size: 0, pax: { "SCHILY.xattr.user.k": "v" } } },
    { h: { name: "dev", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 } },
  ];

  function build(): Buffer {
    const parts: Buffer[] = [];
    for (const { h, body } of entries) {
      parts.push(encodeTarHeader({ mtime: new Date(1_700_000_000_000), ...h }));
      if (body !== undefined)
        parts.push(Buffer.from(body), Buffer.alloc(tarPadding(Buffer.byteLength(body))));
    }
    parts.push(tarEnd());
    return Buffer.concat(parts);
  }

  it("writes what GNU tar and tar-stream read back field by field", async () => {
    const archive = build();
    const file = join(dir, "written.tar");
    writeFileSync(file, archive);
    const listed = execFileSync("tar", ["--numeric-owner", "-tvf", file], { encoding: "utf8" });
    expect(listed).toContain(`${"q".repeat(300)}`);
    expect(listed).toContain(`sym -> /${"l".repeat(200)}`);
    expect(listed).toContain("hard link to dir/file");
    expect(listed).toContain("r\u00e9sum\u00e9");
    expect(listed).toMatch(/^-rw------- 1000\/1000\s+5 /m);
    const ours = parse(archive);
    expect(ours).toEqual(await parseReference(archive));
    expect(ours.map((e) => e.name)).toEqual(
      entries.map(({ h }) => (h.type === "directory" ? `${h.name}/` : h.name)),
    );
    expect(ours.find((e) => e.name === "with-xattr")?.xattrs).toEqual(["SCHILY.xattr.user.k"]);
  });

  it("writes sizes beyond octal in base-256, as GNU tar reads them", () => {
    const h = encodeTarHeader({ name: "huge", size: 10 * 2 ** 30 });
    expect(h[124]).toBe(0x80);
    const p = new TarParser({
      entry(x) {
        expect(x.size).toBe(10 * 2 ** 30);
        return false;
      },
      body: () => undefined,
    });
    p.push(h);
  });
});
