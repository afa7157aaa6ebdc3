// The pure half of `rkt image serve`: request targets to routes (hostile paths refused before the
// store is asked anything) and Range headers to byte ranges.
import { describe, expect, it } from "vitest";
import { parseListenAddress, parseRange, parseRoute } from "../src/index.js";

const d = `sha256:${"ab".repeat(32)}`;

describe("parseRoute", () => {
  it("reads the read-only endpoints, names with or without their registry", () => {
    expect(parseRoute("/v2/")).toEqual({ kind: "base" });
    expect(parseRoute("/v2")).toEqual({ kind: "base" });
    expect(parseRoute("/v2/app/hello/manifests/v1")).toEqual({
      kind: "manifest",
      name: "app/hello",
      tag: "v1",
    });
    expect(parseRoute(`/v2/127.0.0.1:5000/app/manifests/${d}`)).toEqual({
      kind: "manifest",
      name: "127.0.0.1:5000/app",
      digest: d,
    });
    expect(parseRoute(`/v2/app/blobs/${d}`)).toEqual({ kind: "blob", name: "app", digest: d });
    expect(parseRoute("/v2/app/tags/list?n=2&last=v1")).toEqual({
      kind: "tags",
      name: "app",
      n: 2,
      last: "v1",
    });
    expect(parseRoute("/v2/_catalog?n=100000")).toEqual({ kind: "catalog", n: 10_000, last: undefined });
    // A repository may itself be called "manifests" or "blobs": the last marker wins.
    expect(parseRoute("/v2/x/manifests/manifests/v1")).toMatchObject({ name: "x/manifests", tag: "v1" });
  });

  it("refuses traversal, encoded paths, absolute and malformed digests before any lookup", () => {
    const refused = [
      "/v2/../etc/passwd/manifests/v1",
      "/v2/app/../../blobs/x/manifests/v1",
      "/v2/%2e%2e/app/manifests/v1",
      "/v2/app%2fhello/manifests/v1",
      "/v2/app/blobs/sha256:..%2f..%2fetc",
      "/v2/app/blobs/..",
      `/v2/app/blobs/sha256:${"AB".repeat(32)}`,
      "/v2/app/blobs/sha256:abc",
      "/v2/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
      `/v2/app/blobs//sha256:${"ab".repeat(32)}`,
      "/v2/app/manifests/..",
      "/v2//app/manifests/v1",
      "/v2/.hidden/manifests/v1",
      "/v2/app/tags/list?n=-1",
      "/v2/app/blobs/uploads/",
      "/etc/passwd",
      "http://evil/v2/",
      `/v2/${"a".repeat(300)}/manifests/v1`,
    ];
    for (const t of refused) {
      const r = parseRoute(t);
      expect(r.kind, t).toBe("error");
      if (r.kind === "error") expect(r.status, t).toBeGreaterThanOrEqual(400);
      if (r.kind === "error") expect(r.status, t).toBeLessThan(500);
    }
    expect(parseRoute("/v2/app/blobs/sha256:abc")).toMatchObject({ status: 400, code: "DIGEST_INVALID" });
    expect(parseRoute("/v2/%2e%2e/app/manifests/v1")).toMatchObject({ status: 400, code: "NAME_INVALID" });
  });
});

describe("parseRange", () => {
  it("honours one range, clipped to the blob", () => {
    expect(parseRange(undefined, 10)).toEqual({ kind: "full" });
    expect(parseRange("bytes=2-5", 10)).toEqual({ kind: "partial", start: 2, end: 5 });
    expect(parseRange("bytes=2-", 10)).toEqual({ kind: "partial", start: 2, end: 9 });
    expect(parseRange("bytes=-3", 10)).toEqual({ kind: "partial", start: 7, end: 9 });
    expect(parseRange("bytes=-30", 10)).toEqual({ kind: "partial", start: 0, end: 9 });
    expect(parseRange("bytes=5-99999999999999999999999", 10)).toEqual({ kind: "partial", start: 5, end: 9 });
  });

  it("416 for a start beyond the end, a reversed or empty range; the rest is sent whole", () => {
    for (const h of ["bytes=10-", "bytes=10-20", "bytes=5-1", "bytes=-0", `bytes=${"9".repeat(5000)}-`])
      expect(parseRange(h, 10), h.slice(0, 20)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
    for (const h of ["bytes=0-1,3-4", "items=0-1", "bytes=x-y", "bytes=-", "garbage"])
      expect(parseRange(h, 10), h).toEqual({ kind: "full" });
  });

  // Found by test/fuzz (headers): optional spaces around optional digits made the regex
  // backtrack quadratically on a header of spaces, a second of CPU per 16 kB request.
  it("reads spaces around the parts, and a header of spaces in one pass", () => {
    expect(parseRange(" bytes = 2 - 5 ", 10)).toEqual({ kind: "partial", start: 2, end: 5 });
    expect(parseRange(`bytes=${" ".repeat(200_000)}x`, 10)).toEqual({ kind: "full" });
    expect(parseRange(`bytes=${" ".repeat(200_000)}-3`, 10)).toEqual({ kind: "partial", start: 7, end: 9 });
  });
});

describe("parseListenAddress", () => {
  it("reads HOST:PORT and [V6]:PORT, refuses the rest", () => {
    expect(parseListenAddress("127.0.0.1:5000")).toEqual({ host: "127.0.0.1", port: 5000 });
    expect(parseListenAddress("[::1]:0")).toEqual({ host: "::1", port: 0 });
    for (const s of ["127.0.0.1", ":80", "host:99999", "[::1]"])
      expect(() => parseListenAddress(s), s).toThrow(/invalid listen address/);
  });
});
