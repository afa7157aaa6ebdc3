// The real `rkt` binary with the bundle (scripts/bundle.mjs) and its code cache, as a child
// process: what each run did is read from its RKT_DEBUG_STARTUP=1 line on stderr.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(root, "packages", "cli", "bin", "rkt.js");
const work = mkdtempSync(join(tmpdir(), "rkt-bundle-test-"));

function rkt(args: readonly string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "", HOME: work, RKT_DEBUG_STARTUP: "1", ...env },
  });
  const startup = /^rkt-startup: (.*)$/m.exec(r.stderr)?.[1] ?? "";
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, startup };
}

let n = 0;
/** A fresh, empty cache home. */
const freshCache = (): string => join(work, `cache-${n++}`);

beforeAll(() => {
  // npm test builds the bundle (scripts/setup.sh → npm run build); rebuild it here only when it is
  // missing or older than tsc's output, so this file also runs after a bare `tsc -b`.
  if (!rkt(["version"], { XDG_CACHE_HOME: freshCache() }).startup.startsWith("bundle ")) {
    const b = spawnSync(process.execPath, [join(root, "scripts", "bundle.mjs"), "--quiet"], {
      encoding: "utf8",
    });
    expect(b.status, b.stderr).toBe(0);
  }
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the bundled rkt", () => {
  it("runs --help from the bundle, writes the code cache, then uses it", () => {
    const cache = freshCache();
    const first = rkt(["--help"], { XDG_CACHE_HOME: cache });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("USAGE:");
    expect(first.startup).toMatch(/^bundle cache=missing path=\S+-rkt\.bin wrote=yes$/);
    const path = /path=(\S+)/.exec(first.startup)![1]!;
    expect(path.startsWith(join(cache, "rkt"))).toBe(true);
    const second = rkt(["--help"], { XDG_CACHE_HOME: cache });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    // "hit": our checksum and key matched and V8 did not reject the data (else "rejected").
    expect(second.startup).toBe(`bundle cache=hit path=${path}`);
  });

  it("keeps one cache per command, starting from rkt's own", () => {
    const cache = freshCache();
    const dir = join(work, "store");
    const list = (): ReturnType<typeof rkt> => {
      const r = rkt(["--dir", dir, "image", "list"], { XDG_CACHE_HOME: cache });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("ID\tNAME\tSIZE\tIMPORT TIME\tLAST USED\n");
      return r;
    };
    // Another command's cache is not read...
    expect(rkt(["version"], { XDG_CACHE_HOME: cache }).startup).toMatch(/-rkt-version\.bin wrote=yes$/);
    const own = /^bundle cache=missing path=(\S+-rkt-image-list\.bin) wrote=yes$/.exec(list().startup)?.[1];
    expect(own).toBeDefined();
    expect(list().startup).toBe(`bundle cache=hit path=${own}`);
    // ...but rkt's own (the top level) is, until the command has its own.
    const other = freshCache();
    const top = /path=(\S+)/.exec(rkt(["--help"], { XDG_CACHE_HOME: other }).startup)![1]!;
    const r = rkt(["--dir", dir, "image", "list"], { XDG_CACHE_HOME: other });
    expect(r.startup).toBe(`bundle cache=hit path=${top} wrote=yes to=${join(other, "rkt", basename(own!))}`);
    expect(rkt(["--dir", dir, "image", "list"], { XDG_CACHE_HOME: other }).startup).toMatch(
      /^bundle cache=hit path=\S+-rkt-image-list\.bin$/,
    );
  });

  it("ignores a corrupted cache file and rewrites it", () => {
    const cache = freshCache();
    const path = /path=(\S+)/.exec(rkt(["version"], { XDG_CACHE_HOME: cache }).startup)![1]!;
    const bytes = readFileSync(path);
    bytes[bytes.length - 100]! ^= 0xff; // one flipped payload byte: V8 alone would not notice
    writeFileSync(path, bytes);
    const r = rkt(["version"], { XDG_CACHE_HOME: cache });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("rkt Version:");
    expect(r.startup).toMatch(/^bundle cache=corrupt path=\S+ wrote=yes$/);
    writeFileSync(path, "not a cache");
    expect(rkt(["version"], { XDG_CACHE_HOME: cache }).startup).toMatch(
      /^bundle cache=corrupt path=\S+ wrote=yes$/,
    );
    expect(rkt(["version"], { XDG_CACHE_HOME: cache }).startup).toMatch(/^bundle cache=hit /);
  });

  it("still runs when the cache cannot be written", () => {
    const file = join(work, "not-a-dir");
    writeFileSync(file, "");
    const r = rkt(["version"], { XDG_CACHE_HOME: file });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("rkt Version:");
    expect(r.startup).toMatch(/^bundle cache=missing path=\S+ wrote=no$/);
  });

  it("runs the tsc output with RKT_NO_BUNDLE=1, with the same output", () => {
    const cache = freshCache();
    const bundled = rkt(["--help"], { XDG_CACHE_HOME: cache });
    const plain = rkt(["--help"], { XDG_CACHE_HOME: cache, RKT_NO_BUNDLE: "1" });
    expect(plain.code).toBe(0);
    expect(plain.startup).toBe("unbundled reason=RKT_NO_BUNDLE");
    expect(plain.stdout).toBe(bundled.stdout);
    const dir = join(work, "store-plain");
    const list = rkt(["--dir", dir, "image", "list"], { RKT_NO_BUNDLE: "1" });
    expect(list.code).toBe(0);
    expect(list.stdout).toBe("ID\tNAME\tSIZE\tIMPORT TIME\tLAST USED\n");
  });

  it("prints nothing about start-up without RKT_DEBUG_STARTUP", () => {
    const r = spawnSync(process.execPath, [bin, "version"], {
      encoding: "utf8",
      env: { PATH: process.env["PATH"] ?? "", XDG_CACHE_HOME: freshCache() },
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
  });
});
