import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  RktError,
  digestAlgorithm,
  digestHex,
  formatDockerReference,
  formatImageRef,
  isRktError,
  parseDigest,
  parseDockerReference,
  parseImageRef,
  registryApiHost,
  type ImageRef,
} from "@rkt/oci";

const hex = "ea0d189fdb19c8e7c4d42fb7b5d3cc4f9a4c58ab75ae0a18e5f0dbb0cd374950";
const sha = `sha256:${hex}`;

function refusal(s: string): RktError {
  try {
    parseImageRef(s);
  } catch (e) {
    expect(isRktError(e, ErrorCode.InvalidReference)).toBe(true);
    return e as RktError;
  }
  throw new Error(`expected ${s} to be refused`);
}

const withoutRaw = (r: ImageRef) => {
  const { raw: _raw, ...rest } = r as ImageRef & { ref?: { raw?: string } };
  if (rest.ref !== undefined && typeof rest.ref === "object") {
    const { raw: _r, ...inner } = rest.ref;
    return { ...rest, ref: inner };
  }
  return rest;
};

describe("docker references (rkt TestDistFromImageString, docker2aci TestParseDockerURL)", () => {
  const rows: [string, string, string, string | undefined, string | undefined][] = [
    ["docker:busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker://busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker:busybox:latest", "docker.io", "library/busybox", "latest", undefined],
    ["docker://busybox:latest", "docker.io", "library/busybox", "latest", undefined],
    ["docker:busybox:1.0", "docker.io", "library/busybox", "1.0", undefined],
    [`docker:busybox@${sha}`, "docker.io", "library/busybox", undefined, sha],
    [
      "docker:myregistry.example.com:4000/busybox",
      "myregistry.example.com:4000",
      "busybox",
      "latest",
      undefined,
    ],
    [
      "docker:myregistry.example.com:4000/busybox:1.0",
      "myregistry.example.com:4000",
      "busybox",
      "1.0",
      undefined,
    ],
    ["docker://library/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker://docker.io/library/busybox:1", "docker.io", "library/busybox", "1", undefined],
    ["docker://index.docker.io/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker://registry-1.docker.io/busybox", "docker.io", "library/busybox", "latest", undefined],
    [
      "docker://gcr.io/google-samples/node-hello:1.0",
      "gcr.io",
      "google-samples/node-hello",
      "1.0",
      undefined,
    ],
    [`docker://alpine@${sha}`, "docker.io", "library/alpine", undefined, sha],
    [`docker://alpine:3.19@${sha}`, "docker.io", "library/alpine", "3.19", sha],
    ["docker://localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", undefined],
    ["docker://localhost/foo", "localhost", "foo", "latest", undefined],
    ["docker://Registry.Example/foo", "Registry.Example", "foo", "latest", undefined],
    ["docker://[::1]:5000/a/b_c__d-e--f.g", "[::1]:5000", "a/b_c__d-e--f.g", "latest", undefined],
    ["docker://127.0.0.1:5000/x:V_1.2-rc", "127.0.0.1:5000", "x", "V_1.2-rc", undefined],
    ["docker://user/repo", "docker.io", "user/repo", "latest", undefined],
  ];
  for (const [input, registry, repository, tag, digest] of rows) {
    it(input, () => {
      const r = parseImageRef(input);
      expect(r).toEqual({
        transport: "docker",
        registry,
        repository,
        ...(tag === undefined ? {} : { tag }),
        ...(digest === undefined ? {} : { digest }),
        raw: input,
      });
    });
  }

  it("serves Docker Hub from registry-1.docker.io", () => {
    expect(registryApiHost("docker.io")).toBe("registry-1.docker.io");
    expect(registryApiHost("localhost:5000")).toBe("localhost:5000");
    const r = parseDockerReference("busybox");
    expect(formatDockerReference(r)).toBe("docker.io/library/busybox:latest");
  });

  const bad: [string, RegExp][] = [
    ["docker:", /empty reference/],
    ["docker://", /empty reference/],
    ["docker://Busybox", /repository name must be lowercase/],
    ["docker://example.com/Foo/bar", /repository name must be lowercase/],
    ["docker://busybox:", /empty tag/],
    ["docker://busybox:-x", /invalid tag "-x"/],
    ["docker://busybox:a/b", /invalid registry host "busybox:a"/],
    [`docker://busybox:${"a".repeat(129)}`, /invalid tag/],
    ["docker://busybox@sha256:abc", /sha256 needs 64 lowercase hex/],
    [`docker://busybox@sha256:${hex.toUpperCase()}`, /lowercase hex/],
    ["docker://busybox@md5:abc", /unsupported algorithm "md5"/],
    ["docker://busybox@", /not algorithm:hex/],
    ["docker://:tag", /empty repository name/],
    ["docker://example.com/", /empty path component/],
    ["docker://a//b", /empty path component/],
    ["docker://a/-b", /invalid repository path component "-b"/],
    ["docker://a/b_", /invalid repository path component "b_"/],
    ["docker://a/b___c", /invalid repository path component/],
    ["docker://exa_mple.com/foo", /invalid registry host "exa_mple.com"/],
    ["docker://-example.com/foo", /invalid registry host/],
    [`docker://example.com/${"a".repeat(250)}`, /not be more than 255 characters/],
  ];
  for (const [input, reason] of bad) {
    it(`refuses ${input.slice(0, 40)}`, () => {
      const e = refusal(input);
      expect(e.message).toMatch(/^invalid image reference ".*": /);
      expect(e.message).toMatch(reason);
    });
  }

  it("keeps the digest error as the cause", () => {
    expect(isRktError(refusal(`docker://busybox@blake3:${hex}`).cause, ErrorCode.UnsupportedAlgorithm)).toBe(
      true,
    );
  });
});

describe("local transports", () => {
  it("parses oci: and oci-archive: with a ref name or an index", () => {
    expect(parseImageRef("oci:/srv/layout")).toEqual({
      transport: "oci",
      path: "/srv/layout",
      raw: "oci:/srv/layout",
    });
    expect(parseImageRef("oci:./layout:v1.2")).toMatchObject({
      transport: "oci",
      path: "./layout",
      ref: "v1.2",
    });
    expect(parseImageRef("oci:layout:example.com/app:1--rc")).toMatchObject({ ref: "example.com/app:1--rc" });
    expect(parseImageRef("oci:layout:@2")).toMatchObject({ transport: "oci", path: "layout", index: 2 });
    expect(parseImageRef("oci-archive:/tmp/img.tar:latest")).toMatchObject({
      transport: "oci-archive",
      path: "/tmp/img.tar",
      ref: "latest",
    });
  });

  it("parses docker-archive: with NAME:TAG, @DIGEST or @N", () => {
    expect(parseImageRef("docker-archive:/tmp/a.tar")).toEqual({
      transport: "docker-archive",
      path: "/tmp/a.tar",
      raw: "docker-archive:/tmp/a.tar",
    });
    const named = parseImageRef("docker-archive:/tmp/a.tar:busybox:1.36");
    expect(named).toMatchObject({
      transport: "docker-archive",
      path: "/tmp/a.tar",
      ref: { registry: "docker.io", repository: "library/busybox", tag: "1.36" },
    });
    expect(parseImageRef("docker-archive:a.tar:busybox")).toMatchObject({ ref: { tag: "latest" } });
    expect(parseImageRef(`docker-archive:a.tar:@${sha}`)).toMatchObject({ digest: sha });
    expect(parseImageRef("docker-archive:a.tar:@0")).toMatchObject({ index: 0 });
  });

  const bad: [string, RegExp][] = [
    ["oci:", /oci: needs a path/],
    ["oci::tag", /oci: needs a path/],
    ["oci:dir:", /empty reference after the path/],
    ["oci:dir:bad ref", /invalid reference name "bad ref"/],
    ["oci:dir:-x", /invalid reference name/],
    ["oci-archive:", /needs a path/],
    ["docker-archive:", /needs a path/],
    ["docker-archive:a.tar:@sha256:12", /sha256 needs 64/],
    [`docker-archive:a.tar:busybox@${sha}`, /not NAME@DIGEST/],
    ["docker-archive:a.tar:Busybox", /lowercase/],
  ];
  for (const [input, reason] of bad) {
    it(`refuses ${input}`, () => {
      expect(refusal(input).message).toMatch(reason);
    });
  }
});

describe("appc classification (rkt TestGuessAppcOrPath, TestDistFromImageString)", () => {
  const rows: [string, ImageRef["transport"], string?][] = [
    ["/usr/libexec/rkt/stage1.aci", "file", "/usr/libexec/rkt/stage1.aci"],
    ["example.com/stage1:1.2.3", "appc-name"],
    ["some/relative/../path/with/dots/file", "file", "some/relative/../path/with/dots/file"],
    ["./another/obviously/relative/path", "file", "./another/obviously/relative/path"],
    ["some/relative/path/with/aci/extension.aci", "file", "some/relative/path/with/aci/extension.aci"],
    ["example.com/stage1", "appc-name"],
    ["example.com/stage1,version=1.2.3,foo=bar", "appc-name"],
    ["example.com/app01:v1.0.0,label01=?&*/", "appc-name"],
    ["some-image-name", "appc-name"],
    ["some-image-name:v1.0.0", "appc-name"],
    ["my-app:v1.0", "appc-name"],
    ["/absolute/path/to/file", "file", "/absolute/path/to/file"],
    ["file:///absolute/path/to/file.aci", "file", "/absolute/path/to/file.aci"],
    ["file:///with%20space/x.aci", "file", "/with space/x.aci"],
    ["file://localhost/x.aci", "file", "/x.aci"],
  ];
  for (const [input, transport, path] of rows) {
    it(`${input} is ${transport}`, () => {
      const r = parseImageRef(input);
      expect(r.transport).toBe(transport);
      expect(r.raw).toBe(input);
      if (path !== undefined) expect(r).toMatchObject({ path });
    });
  }

  it("classifies http(s) URLs of .aci files", () => {
    expect(parseImageRef("https://example.com/app.aci")).toEqual({
      transport: "http",
      url: "https://example.com/app.aci",
      raw: "https://example.com/app.aci",
    });
    expect(parseImageRef("http://127.0.0.1:8080/x/app.aci?x=1")).toMatchObject({ transport: "http" });
  });

  it("asks the caller whether a relative argument is an existing file", () => {
    expect(parseImageRef("image").transport).toBe("appc-name");
    expect(parseImageRef("image", { isFile: (p) => p === "image" })).toEqual({
      transport: "file",
      path: "image",
      raw: "image",
    });
  });

  const bad: [string, RegExp][] = [
    ["", /empty image argument/],
    ["   ", /empty image argument/],
    ["file:///absolute/path/to/file", /must name an \.aci file/],
    ["file:///absolute/path/to/file.tar", /must name an \.aci file/],
    ["https://example.com/app", /must name an \.aci file/],
    ["http://", /not a valid URL/],
    ["file://otherhost/x.aci", /must not name a host/],
    ["file:///bad%zz.aci", /not a valid URL|percent-encoding/],
    ["cimd:appc:v=0:example.com/app", /cimd: distribution URIs/],
  ];
  for (const [input, reason] of bad) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      expect(refusal(input).message).toMatch(reason);
    });
  }
});

describe("formatImageRef", () => {
  it("formats every transport", () => {
    const cases: [string, string][] = [
      ["docker:busybox", "docker://docker.io/library/busybox:latest"],
      [`docker://localhost:5000/a@${sha}`, `docker://localhost:5000/a@${sha}`],
      ["oci:dir:v1", "oci:dir:v1"],
      ["oci-archive:x.tar:@3", "oci-archive:x.tar:@3"],
      ["docker-archive:a.tar:busybox", "docker-archive:a.tar:docker.io/library/busybox:latest"],
      [`docker-archive:a.tar:@${sha}`, `docker-archive:a.tar:@${sha}`],
      ["docker-archive:a.tar:@1", "docker-archive:a.tar:@1"],
      ["/x/y.aci", "/x/y.aci"],
      ["https://example.com/app.aci", "https://example.com/app.aci"],
      ["example.com/app:1", "example.com/app:1"],
    ];
    for (const [input, out] of cases) expect(formatImageRef(parseImageRef(input))).toBe(out);
  });
});

// Generators of valid pieces, following distribution's grammar.
const lower = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789".split(""));
const alnum = fc.string({ unit: lower, minLength: 1, maxLength: 6 });
const sep = fc.constantFrom(".", "_", "__", "-", "--");
const pathComponent = fc
  .tuple(alnum, fc.array(fc.tuple(sep, alnum), { maxLength: 2 }))
  .map(([a, rest]) => a + rest.map(([s, b]) => s + b).join(""));
const repository = fc.array(pathComponent, { minLength: 1, maxLength: 3 }).map((c) => c.join("/"));
const hostLabel = fc
  .string({
    unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-".split("")),
    minLength: 1,
    maxLength: 8,
  })
  .filter((s) => !s.startsWith("-") && !s.endsWith("-"));
const registry = fc.oneof(
  fc.constant(undefined),
  fc.constant("localhost"),
  fc
    .tuple(fc.array(hostLabel, { minLength: 2, maxLength: 3 }), fc.option(fc.integer({ min: 1, max: 65535 })))
    .map(([labels, port]) => labels.join(".") + (port === null ? "" : `:${port}`)),
);
const tagChar = fc.constantFrom(..."abcXYZ019_.-".split(""));
const tag = fc
  .tuple(fc.constantFrom(..."aZ9_".split("")), fc.string({ unit: tagChar, maxLength: 20 }))
  .map(([a, b]) => a + b);
const hexString = (n: number) =>
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef".split("")), minLength: n, maxLength: n });
const digest = fc.oneof(
  hexString(64).map((h) => `sha256:${h}`),
  hexString(128).map((h) => `sha512:${h}`),
);

describe("properties", () => {
  it("digests round-trip through parseDigest", () => {
    fc.assert(
      fc.property(digest, (d) => {
        const p = parseDigest(d);
        expect(p).toBe(d);
        expect(`${digestAlgorithm(p)}:${digestHex(p)}`).toBe(d);
      }),
    );
  });

  it("docker references round-trip through formatImageRef", () => {
    const ref = fc
      .tuple(registry, repository, fc.option(tag), fc.option(digest), fc.constantFrom("docker://", "docker:"))
      // Without a registry, a first component containing "." is a host (docker's rule).
      .filter(([reg, repo]) => reg !== undefined || !/^[^/]*\.[^/]*\//.test(repo))
      .map(
        ([reg, repo, t, d, prefix]) =>
          prefix +
          (reg === undefined ? "" : `${reg}/`) +
          repo +
          (t === null ? "" : `:${t}`) +
          (d === null ? "" : `@${d}`),
      );
    fc.assert(
      fc.property(ref, (s) => {
        const r = parseImageRef(s);
        const again = parseImageRef(formatImageRef(r));
        expect(withoutRaw(again)).toEqual(withoutRaw(r));
        expect(formatImageRef(again)).toBe(formatImageRef(r));
      }),
      { numRuns: 500 },
    );
  });

  it("local references round-trip through formatImageRef", () => {
    const path = fc.string({ unit: fc.constantFrom(..."abc/._- ".split("")), minLength: 1, maxLength: 12 });
    const ref = fc.tuple(
      fc.constantFrom("oci", "oci-archive", "docker-archive"),
      path,
      fc.oneof(
        fc.constant(""),
        fc.nat({ max: 99 }).map((n) => `:@${n}`),
        pathComponent.map((t) => `:${t}`),
        fc.tuple(pathComponent, tag).map(([n, t]) => `:${n}:${t}`),
        digest.map((d) => `:@${d}`),
      ),
    );
    fc.assert(
      fc.property(ref, ([t, p, sel]) => {
        if (
          t !== "docker-archive" &&
          (sel.startsWith(":@sha") || sel.split(":").length > 2 || sel.includes("__"))
        ) {
          return; // docker-archive only, or outside the ref.name grammar ("__" is not a separator)
        }
        const r = parseImageRef(`${t}:${p}${sel}`);
        expect(withoutRaw(parseImageRef(formatImageRef(r)))).toEqual(withoutRaw(r));
      }),
      { numRuns: 300 },
    );
  });

  it("throws nothing but RktError on arbitrary input", () => {
    const anyPrefix = fc.constantFrom(
      "",
      "docker://",
      "docker:",
      "oci:",
      "oci-archive:",
      "docker-archive:",
      "file://",
      "https://",
      "http:",
    );
    fc.assert(
      fc.property(anyPrefix, fc.string({ maxLength: 60 }), (prefix, s) => {
        try {
          const r = parseImageRef(prefix + s);
          expect(typeof formatImageRef(r)).toBe("string");
        } catch (e) {
          expect(isRktError(e, ErrorCode.InvalidReference)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), (s) => {
        try {
          parseDigest(s);
        } catch (e) {
          expect(e).toBeInstanceOf(RktError);
        }
      }),
    );
  });
});
