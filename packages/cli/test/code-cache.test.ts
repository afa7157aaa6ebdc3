// The code cache's file format and the bundle header, without running a bundle.
import { describe, expect, it } from "vitest";
import {
  cacheCandidates,
  cacheCommand,
  cacheKey,
  codeCachePath,
  decodeCodeCache,
  encodeCodeCache,
} from "../src/start/code-cache.js";
import { parseBundleHeader } from "../src/start/bundle.js";

const hash = "a".repeat(64);

describe("code cache file", () => {
  const key = cacheKey(hash, "v20.20.2", "x64");
  const data = Buffer.from("bytecode bytes");

  it("round-trips under its key", () => {
    const r = decodeCodeCache(encodeCodeCache(key, data), key);
    expect(r.state).toBe("hit");
    expect(r.state === "hit" && r.data.equals(data)).toBe(true);
  });

  it("is stale for another bundle or node", () => {
    const file = encodeCodeCache(key, data);
    expect(decodeCodeCache(file, cacheKey("b".repeat(64), "v20.20.2", "x64")).state).toBe("stale");
    expect(decodeCodeCache(file, cacheKey(hash, "v20.19.0", "x64")).state).toBe("stale");
  });

  it("is corrupt when a byte changed, it was cut short, or it is not ours", () => {
    const file = encodeCodeCache(key, data);
    const flipped = Buffer.from(file);
    flipped[flipped.length - 1]! ^= 1;
    expect(decodeCodeCache(flipped, key).state).toBe("corrupt");
    expect(decodeCodeCache(file.subarray(0, file.length - 1), key).state).toBe("corrupt");
    expect(decodeCodeCache(Buffer.from("garbage"), key).state).toBe("corrupt");
    expect(decodeCodeCache(Buffer.alloc(0), key).state).toBe("corrupt");
  });

  it("lives under XDG_CACHE_HOME, else ~/.cache, one file per bundle path and command", () => {
    const a = codeCachePath({ XDG_CACHE_HOME: "/c" }, "/x/rkt.bundle.cjs");
    expect(a).toMatch(/^\/c\/rkt\/code-cache-[0-9a-f]{16}-rkt\.bin$/);
    expect(codeCachePath({ XDG_CACHE_HOME: "/c" }, "/x/rkt.bundle.cjs", ["image", "list"])).toBe(
      a.replace("-rkt.bin", "-rkt-image-list.bin"),
    );
    expect(codeCachePath({ HOME: "/h" }, "/x/rkt.bundle.cjs")).toBe(a.replace("/c/", "/h/.cache/"));
    expect(codeCachePath({ XDG_CACHE_HOME: "/c" }, "/y/rkt.bundle.cjs")).not.toBe(a);
  });
});

describe("bundle header", () => {
  it("parses what scripts/bundle.mjs writes", () => {
    expect(
      parseBundleHeader(
        `// rkt-bundle sha256:${hash} charset:ascii built-after:../../oci/dist/.tsbuildinfo,.tsbuildinfo`,
      ),
    ).toEqual({
      hash,
      charset: "ascii",
      builtAfter: ["../../oci/dist/.tsbuildinfo", ".tsbuildinfo"],
    });
    expect(parseBundleHeader(`// rkt-bundle sha256:${hash} charset:utf8 built-after:`)).toEqual({
      hash,
      charset: "utf8",
      builtAfter: [],
    });
  });

  it("refuses anything else", () => {
    expect(parseBundleHeader('"use strict";')).toBeUndefined();
    expect(
      parseBundleHeader(`// rkt-bundle sha256:${hash.slice(1)} charset:ascii built-after:`),
    ).toBeUndefined();
  });
});

describe("which command's cache", () => {
  it("tries the first two command-like words, then one, then rkt's own", () => {
    expect(cacheCandidates(["--dir=/s", "image", "list", "--format", "json"])).toEqual([
      ["image", "list"],
      ["image"],
      [],
    ]);
    // Paths, references and upper case never name a file.
    expect(cacheCandidates(["--dir", "/tmp/s", "fetch", "docker://h/x:1", "MyImage"])).toEqual([
      ["fetch"],
      [],
    ]);
    expect(cacheCandidates(["--help"])).toEqual([[]]);
  });

  it("saves under the command that ran when the same words find it again", () => {
    expect(cacheCommand(["image", "list"], ["image", "list"])).toEqual(["image", "list"]);
    expect(cacheCommand(["run", "example.com/app", "--net=host"], ["run"])).toEqual(["run"]);
    expect(cacheCommand(["image", "bundle", "inspect", "f"], ["image", "bundle", "inspect"])).toEqual([
      "image",
      "bundle",
    ]);
    expect(cacheCommand(["--help"], [])).toEqual([]);
    // Abbreviated, or a flag's value taken for a command: no later start would read the file.
    expect(cacheCommand(["im", "li"], ["image", "list"])).toBeUndefined();
    expect(cacheCommand(["--dir", "store", "image", "list"], ["image", "list"])).toBeUndefined();
  });
});
