import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ErrorCode, isRktError, parseDockerReference } from "@rkt/oci";
import {
  builtinLookaside,
  dockerScopes,
  lookasideFor,
  lookasideSignatureUrl,
  lookasideSignatureUrls,
  parseRegistriesD,
  readLookasideSignatures,
  readRegistriesD,
  writeLookasideSignature,
} from "@rkt/trust";
import { afterAll, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);

const hex = "817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e21e9b02ef4ce8c63d";
const digest = `sha256:${hex}`;

function throwsSync(f: () => unknown, code: string, message: string): void {
  let e: unknown;
  try {
    f();
  } catch (err) {
    e = err;
  }
  expect(isRktError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  expect((e as Error).message).toBe(message);
}

describe("lookaside paths", () => {
  it("computes signature-protocols.md URLs", () => {
    expect(lookasideSignatureUrl("https://example.com/lookaside/", "library/busybox", digest, 1)).toBe(
      `https://example.com/lookaside/library/busybox@sha256=${hex}/signature-1`,
    );
    expect(lookasideSignatureUrls("file:///srv/sigs", "ns/app", digest, 2)).toEqual([
      `file:///srv/sigs/ns/app@sha256=${hex}/signature-1`,
      `file:///srv/sigs/ns/app@sha256=${hex}/signature-2`,
    ]);
    throwsSync(
      () => lookasideSignatureUrl("file:///x", "a", digest, 0),
      ErrorCode.InvalidArgument,
      "lookaside signature index 0 must be an integer >= 1",
    );
  });

  it("writes to the first free index and reads back in order until a gap", async () => {
    const dir = tempDir("rkt-trust-la-");
    const base = pathToFileURL(dir).href;
    expect(await readLookasideSignatures(base, "ns/app", digest)).toEqual([]);
    const p1 = await writeLookasideSignature(base, "ns/app", digest, Buffer.from("one"));
    const p2 = await writeLookasideSignature(base, "ns/app", digest, Buffer.from("two"));
    expect(p1).toBe(join(dir, `ns/app@sha256=${hex}/signature-1`));
    expect(p2).toBe(join(dir, `ns/app@sha256=${hex}/signature-2`));
    expect(statSync(p1).mode & 0o777).toBe(0o644);
    writeFileSync(join(dir, `ns/app@sha256=${hex}/signature-4`), "after a gap");
    const got = await readLookasideSignatures(base, "ns/app", digest);
    expect(got.map((b) => Buffer.from(b).toString())).toEqual(["one", "two"]);
    expect(readFileSync(p2, "utf8")).toBe("two");
    await expect(readLookasideSignatures("https://example.com", "ns/app", digest)).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message:
        'lookaside "https://example.com/ns/app@sha256=' +
        hex +
        '/signature-1": only file:// bases are read here; https is read by the fetcher',
    });
  });
});

describe("registries.d", () => {
  const yaml = `
default-docker:
  lookaside-staging: file:///mnt/company/common-lookaside-staging
docker:
  registry.example.com:
    lookaside: https://registry-lookaside.example.com
  registry.example.com/mydepartment:
    lookaside: https://lookaside.mydepartment.example.com
    lookaside-staging: file:///mnt/mydepartment/lookaside-staging
    use-sigstore-attachments: true
  registry.example.com/mydepartment/attach-only:
    use-sigstore-attachments: true
  "*.internal.example":
    sigstore: file:///srv/internal
`;
  const config = parseRegistriesD(yaml, "default.yaml");

  it("parses the containers-registries.d example", () => {
    expect(config.defaultDocker).toEqual({
      lookasideStaging: "file:///mnt/company/common-lookaside-staging",
    });
    expect(config.docker["registry.example.com/mydepartment"]).toEqual({
      lookaside: "https://lookaside.mydepartment.example.com",
      lookasideStaging: "file:///mnt/mydepartment/lookaside-staging",
      useSigstoreAttachments: true,
    });
  });

  it("the most specific scope naming a URL wins; staging is preferred for writes", () => {
    const r = (s: string) => parseDockerReference(s);
    expect(lookasideFor(config, r("registry.example.com/mydepartment/app:1"))).toBe(
      "https://lookaside.mydepartment.example.com",
    );
    expect(lookasideFor(config, r("registry.example.com/mydepartment/app:1"), { write: true })).toBe(
      "file:///mnt/mydepartment/lookaside-staging",
    );
    expect(lookasideFor(config, r("registry.example.com/mydepartment/attach-only:1"))).toBe(
      "https://lookaside.mydepartment.example.com",
    );
    expect(lookasideFor(config, r("registry.example.com/other/app"))).toBe(
      "https://registry-lookaside.example.com",
    );
    expect(lookasideFor(config, r("registry.example.com/other/app"), { write: true })).toBe(
      "https://registry-lookaside.example.com",
    );
    expect(lookasideFor(config, r("a.internal.example:5000/x/y"))).toBe("file:///srv/internal");
    expect(lookasideFor(config, r("quay.io/x/y"), { write: true })).toBe(
      "file:///mnt/company/common-lookaside-staging",
    );
    expect(
      lookasideFor(config, r("quay.io/x/y"), { fallback: builtinLookaside({ uid: 0, home: "/root" }) }),
    ).toBe("file:///var/lib/containers/sigstore");
    expect(builtinLookaside({ uid: 1000, home: "/home/u" })).toBe(
      "file:///home/u/.local/share/containers/sigstore",
    );
  });

  it("lists docker scopes most specific first", () => {
    expect(dockerScopes(parseDockerReference("a.b.example.com:5000/ns/repo:tag"))).toEqual([
      "a.b.example.com:5000/ns/repo:tag",
      "a.b.example.com:5000/ns/repo",
      "a.b.example.com:5000/ns",
      "a.b.example.com:5000",
      "*.b.example.com",
      "*.example.com",
      "*.com",
    ]);
  });

  it.each([
    [
      "docker:\n  r.example.com:\n    lookasid: file:///x\n",
      'f.yaml: $.docker["r.example.com"].lookasid: unknown field',
    ],
    ["dockre: {}\n", "f.yaml: $.dockre: unknown field"],
    [
      "docker:\n  r.example.com:\n    lookaside: /not/a/url\n",
      'f.yaml: $.docker["r.example.com"].lookaside: must be a file://, http:// or https:// URL',
    ],
    [
      "docker:\n  r.example.com:\n    lookaside: file:///a\n    sigstore: file:///b\n",
      'f.yaml: $.docker["r.example.com"].sigstore: duplicates lookaside/sigstore',
    ],
    ["- a\n- b\n", "f.yaml: $: must be a mapping"],
  ])("refuses %j", (text, message) => {
    throwsSync(() => parseRegistriesD(text, "f.yaml"), ErrorCode.InvalidArgument, message);
  });

  it("refuses duplicate YAML keys", () => {
    let e: unknown;
    try {
      parseRegistriesD("docker: {}\ndocker: {}\n", "f.yaml");
    } catch (err) {
      e = err;
    }
    expect(e).toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(/^f\.yaml: \$: .*unique/i),
    });
  });

  it("merges a directory and refuses a scope defined twice", async () => {
    const dir = tempDir("rkt-trust-rd-");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "a.yaml"), "docker:\n  r.example.com:\n    lookaside: file:///a\n");
    writeFileSync(join(dir, "b.yaml"), "default-docker:\n  lookaside: file:///d\n");
    writeFileSync(join(dir, "ignored.txt"), "not yaml: [");
    const merged = await readRegistriesD(dir);
    expect(lookasideFor(merged, parseDockerReference("r.example.com/x"))).toBe("file:///a");
    expect(lookasideFor(merged, parseDockerReference("s.example.com/x"))).toBe("file:///d");
    writeFileSync(join(dir, "c.yaml"), "docker:\n  r.example.com:\n    lookaside: file:///c\n");
    await expect(readRegistriesD(dir)).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: `${join(dir, "c.yaml")}: docker scope "r.example.com" already defined in ${join(dir, "a.yaml")}`,
    });
    expect(await readRegistriesD(join(dir, "missing"))).toEqual({ docker: {} });
  });
});
