// The pure halves of appc fetching: auth.d files, cache headers, identities and URLs.
import { authorizationFor, mergeAppcAuth, parseAppcAuth } from "../src/appc/auth.js";
import { isFresh, parseMaxAge, rangeValidator } from "../src/appc/cache-control.js";
import { parseContentRange } from "../src/content-range.js";
import {
  appKey,
  ascUrlFromAciUrl,
  checkManifestIdentity,
  hostOsArch,
  withOsArchDefaults,
} from "../src/appc/identity.js";
import { parseImageManifestOrThrow } from "@rkt/appc";
import { ErrorCode } from "@rkt/oci";
import { describe, expect, it } from "vitest";

const basic = {
  rktKind: "auth",
  rktVersion: "v1",
  domains: ["Example.com", "example.org:8443"],
  type: "basic",
  credentials: { user: "bar", password: "baz" },
};

describe("auth.d (kind auth)", () => {
  it("parses basic and oauth; other kinds are not ours", () => {
    expect(parseAppcAuth(basic, "a.json")).toEqual({
      domains: ["example.com", "example.org:8443"],
      type: "basic",
      authorization: `Basic ${Buffer.from("bar:baz").toString("base64")}`,
    });
    expect(
      parseAppcAuth({ ...basic, type: "oauth", credentials: { token: "sometoken" } }, "o.json")
        ?.authorization,
    ).toBe("Bearer sometoken");
    expect(parseAppcAuth({ rktKind: "dockerAuth" }, "d.json")).toBeUndefined();
  });

  it("refuses malformed files with one line naming the file", () => {
    const bad: [unknown, string][] = [
      [[], "a.json: expected a JSON object"],
      [{ ...basic, rktVersion: "v2" }, 'a.json: unsupported rktVersion "v2" (want "v1")'],
      [{ ...basic, domains: [] }, 'a.json: "domains" must be a non-empty list of host names'],
      [{ ...basic, type: "digest" }, 'a.json: unknown auth type "digest"'],
      [
        { ...basic, credentials: { user: "x" } },
        'a.json: basic auth needs string "credentials.user" and "credentials.password"',
      ],
      [{ ...basic, type: "oauth", credentials: {} }, 'a.json: oauth needs a string "credentials.token"'],
    ];
    for (const [json, message] of bad) {
      expect(() => parseAppcAuth(json, "a.json")).toThrow(
        expect.objectContaining({ code: ErrorCode.InvalidArgument, message }),
      );
    }
  });

  it("a later directory overrides per domain; a domain twice in one directory is an error", () => {
    const a = parseAppcAuth(basic, "sys/a.json")!;
    const b = parseAppcAuth(
      { ...basic, domains: ["example.com"], type: "oauth", credentials: { token: "t" } },
      "etc/b.json",
    )!;
    const m = mergeAppcAuth([[{ what: "sys/a.json", config: a }], [{ what: "etc/b.json", config: b }]]);
    expect(m.get("example.com")).toBe("Bearer t");
    expect(m.get("example.org:8443")).toBe(a.authorization);
    expect(() =>
      mergeAppcAuth([
        [
          { what: "sys/a.json", config: a },
          { what: "sys/b.json", config: b },
        ],
      ]),
    ).toThrow('sys/b.json: auth for domain "example.com" is already specified in sys/a.json');
  });

  it("headers only over https and only to the exact host (with its port)", () => {
    const m = mergeAppcAuth([[{ what: "a", config: parseAppcAuth(basic, "a")! }]]);
    expect(authorizationFor(m, new URL("https://example.com/x.aci"))).toBe(m.get("example.com"));
    expect(authorizationFor(m, new URL("https://EXAMPLE.com:443/x.aci"))).toBe(m.get("example.com"));
    expect(authorizationFor(m, new URL("http://example.com/x.aci"))).toBeUndefined();
    expect(authorizationFor(m, new URL("https://example.com:8443/x.aci"))).toBeUndefined();
    expect(authorizationFor(m, new URL("https://sub.example.com/x.aci"))).toBeUndefined();
    expect(authorizationFor(m, new URL("https://example.org:8443/x.aci"))).toBe(m.get("example.org:8443"));
  });
});

describe("cache headers", () => {
  it("parseMaxAge reads Cache-Control as rkt's getMaxAge", () => {
    expect(parseMaxAge(undefined)).toBe(0);
    expect(parseMaxAge("max-age=10")).toBe(10);
    expect(parseMaxAge("public, max-age=86400")).toBe(86400);
    expect(parseMaxAge("max-age=10, no-cache")).toBe(0);
    expect(parseMaxAge("no-store, max-age=5")).toBe(5);
    expect(parseMaxAge("max-age=-3")).toBe(0);
    expect(parseMaxAge("max-age=010")).toBe(0);
    expect(parseMaxAge("max-age=abc")).toBe(0);
  });

  it("isFresh, rangeValidator, parseContentRange", () => {
    expect(isFresh({ maxAge: 10, downloadTime: 1_000 }, 10_999)).toBe(true);
    expect(isFresh({ maxAge: 10, downloadTime: 1_000 }, 11_000)).toBe(false);
    expect(isFresh({ maxAge: undefined, downloadTime: 1_000 }, 1_000)).toBe(false);
    expect(rangeValidator({ etag: '"abc"' })).toBe('"abc"');
    expect(rangeValidator({ etag: 'W/"abc"', lastModified: "Sun, 29 Nov 2026 05:00:00 GMT" })).toBe(
      "Sun, 29 Nov 2026 05:00:00 GMT",
    );
    expect(rangeValidator({ etag: 'W/"abc"' })).toBeUndefined();
    expect(parseContentRange("bytes 100-199/200")).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange(" BYTES 5-9/* ")).toEqual({ start: 5, end: 9, total: undefined });
    for (const bad of [
      "bytes */200",
      "bytes 9-5/20",
      "bytes 0-20/20",
      "items 0-1/2",
      `bytes 0-1/${"9".repeat(16)}`,
    ])
      expect(parseContentRange(bad)).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
  });
});

describe("identities and URLs", () => {
  it("ascUrlFromAciUrl keeps query and fragment (rkt)", () => {
    expect(ascUrlFromAciUrl("http://e.com/image.aci?foo=bar#blah")).toBe(
      "http://e.com/image.aci.asc?foo=bar#blah",
    );
    expect(ascUrlFromAciUrl("https://e.com/image")).toBe("https://e.com/image.aci.asc");
  });

  it("os/arch default to the host's in appc terms; keys ignore label order", () => {
    expect(hostOsArch("linux", "x64")).toEqual({ os: "linux", arch: "amd64" });
    expect(hostOsArch("linux", "arm64")).toEqual({ os: "linux", arch: "aarch64" });
    const app = withOsArchDefaults(
      { name: "example.com/a", labels: new Map([["arch", "i386"]]) },
      hostOsArch("linux", "x64"),
    );
    expect([...app.labels]).toEqual([
      ["arch", "i386"],
      ["os", "linux"],
    ]);
    expect(appKey(app)).toBe(
      appKey({
        name: "example.com/a",
        labels: new Map([
          ["os", "linux"],
          ["arch", "i386"],
        ]),
      }),
    );
  });

  it("checkManifestIdentity uses rkt's messages", () => {
    const m = parseImageManifestOrThrow(
      JSON.stringify({
        acKind: "ImageManifest",
        acVersion: "0.8.11",
        name: "example.com/a",
        labels: [{ name: "version", value: "1.2.0" }],
      }),
    ).value;
    expect(() =>
      checkManifestIdentity({ name: "example.com/a", labels: new Map([["version", "1.2.0"]]) }, m),
    ).not.toThrow();
    expect(() => checkManifestIdentity({ name: "example.com/b", labels: new Map() }, m)).toThrow(
      'error when reading the app name: "example.com/b" expected but "example.com/a" found',
    );
    expect(() =>
      checkManifestIdentity({ name: "example.com/a", labels: new Map([["arch", "amd64"]]) }, m),
    ).toThrow('requested label "arch" not provided by the image manifest');
  });
});
