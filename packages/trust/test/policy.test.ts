import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, digestOf, isRktError, parseDockerReference } from "@rkt/oci";
import {
  createSimpleSignature,
  evaluatePolicy,
  matchSignedIdentity,
  parseNamedRef,
  parsePolicy,
  parsePolicyOrThrow,
  policyPaths,
  readPolicy,
  requirementsFor,
  type Policy,
  type SignedIdentity,
} from "@rkt/trust";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);

const digest = digestOf("the manifest");
const otherDigest = digestOf("another manifest");

function issue(json: string): string {
  const r = parsePolicy(json);
  expect(r.ok).toBe(false);
  if (r.ok) return "";
  return `${r.issues[0]!.path}: ${r.issues[0]!.message}`;
}

describe("parsePolicy (strict)", () => {
  it("parses the containers-policy.json(5) shapes", () => {
    const r = parsePolicy(
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: {
          docker: {
            "": [{ type: "insecureAcceptAnything" }],
            "registry.example.com/ns/repo:tag": [
              {
                type: "signedBy",
                keyType: "GPGKeys",
                keyPath: "/k.gpg",
                signedIdentity: { type: "matchExact" },
              },
            ],
            "registry.example.com/ns": [{ type: "signedBy", keyType: "GPGKeys", keyPaths: ["/a", "/b"] }],
            "*.example.com": [
              {
                type: "signedBy",
                keyType: "GPGKeys",
                keyData: "AAAA",
                signedIdentity: {
                  type: "remapIdentity",
                  prefix: "mirror.example.com",
                  signedPrefix: "docker.io",
                },
              },
            ],
            "localhost:5000": [{ type: "reject" }],
          },
          oci: { "/srv/images": [{ type: "insecureAcceptAnything" }] },
        },
      }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.transports["docker"]!["registry.example.com/ns"]).toEqual([
      {
        type: "signedBy",
        keyType: "GPGKeys",
        keyPaths: ["/a", "/b"],
        signedIdentity: { type: "matchRepoDigestOrExact" },
      },
    ]);
  });

  it.each([
    ['{"default":[{"type":"reject"}],"defaults":[]}', "$.defaults: unknown field"],
    ['{"transports":{}}', '$: missing field "default"'],
    ['{"default":[]}', "$.default: list of requirements must not be empty"],
    ['{"default":[{"type":"reject","keyType":"GPGKeys"}]}', "$.default[0].keyType: unknown field"],
    ['{"default":[{"type":"allow"}]}', '$.default[0].type: unknown requirement type "allow"'],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPth":"/k"}]}',
      "$.default[0].keyPth: unknown field",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}]}',
      '$.default[0].keyType: unsupported keyType "X509Certificates"; only "GPGKeys" is',
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"AAAA"}]}',
      "$.default[0]: exactly one of keyPath, keyPaths and keyData must be given (found 2)",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}',
      "$.default[0]: exactly one of keyPath, keyPaths and keyData must be given (found 0)",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}]}',
      "$.default[0].keyPaths: must be a non-empty array of paths",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyData":"not base64!"}]}',
      "$.default[0].keyData: must be base64 of a keyring",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","extra":1}}]}',
      "$.default[0].signedIdentity.extra: unknown field",
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"example.com/a"}}]}',
      '$.default[0].signedIdentity: dockerReference "example.com/a" must include a tag or digest',
    ],
    [
      '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchAnything"}}]}',
      '$.default[0].signedIdentity.type: unknown signedIdentity type "matchAnything"',
    ],
    [
      '{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}]}}}',
      '$.transports.docker.busybox: invalid scope "busybox": a docker scope is a fully expanded host[/namespace][/repo][:tag|@digest]',
    ],
    [
      '{"default":[{"type":"reject"}],"transports":{"oci":{"/":[{"type":"reject"}]}}}',
      '$.transports.oci["/"]: invalid scope "/": must be a clean absolute path other than "/"',
    ],
    [
      '{"default":[{"type":"reject"}],"transports":{"docker":{"":[]}}}',
      '$.transports.docker[""]: list of requirements must not be empty',
    ],
    [
      '{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}',
      '$.default: duplicate key "default" at offset 40',
    ],
  ])("refuses %s", (json, want) => {
    expect(issue(json)).toBe(want);
  });

  it("names the file when throwing", async () => {
    const dir = tempDir("rkt-trust-pol-");
    const p = join(dir, "policy.json");
    writeFileSync(p, '{"default":[{"type":"insecureAcceptAnything","x":1}]}');
    await expect(readPolicy(p)).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: `${p}: $.default[0].x: unknown field`,
    });
    let e: unknown;
    try {
      parsePolicyOrThrow("{", "inline");
    } catch (err) {
      e = err;
    }
    expect(isRktError(e, ErrorCode.InvalidArgument)).toBe(true);
    expect((e as Error).message).toMatch(/^inline: \$: /);
  });
});

describe("scope resolution", () => {
  const policy = parsePolicyOrThrow(
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "": [{ type: "insecureAcceptAnything" }],
          "r.example.com/ns/app:1.0": [{ type: "reject" }],
          "r.example.com/ns/app": [{ type: "reject" }],
          "r.example.com/ns": [{ type: "reject" }],
          "r.example.com": [{ type: "reject" }],
          "*.example.com": [{ type: "reject" }],
        },
        oci: { "/srv/images": [{ type: "insecureAcceptAnything" }] },
      },
    }),
    "p",
  );
  it.each([
    ["r.example.com/ns/app:1.0", "r.example.com/ns/app:1.0"],
    ["r.example.com/ns/app:2.0", "r.example.com/ns/app"],
    [`r.example.com/ns/app@${digest}`, "r.example.com/ns/app"],
    ["r.example.com/ns/other", "r.example.com/ns"],
    ["r.example.com/x/y", "r.example.com"],
    ["s.example.com/x/y", "*.example.com"],
    ["quay.io/x/y", ""],
  ])("%s -> scope %j", (ref, scope) => {
    expect(requirementsFor(policy, "docker", parseDockerReference(ref)).scope).toBe(scope);
  });
  it("path transports use the path and its parents, then the global default", () => {
    expect(requirementsFor(policy, "oci", "/srv/images/app:latest").scope).toBe("/srv/images");
    expect(requirementsFor(policy, "oci", "/elsewhere/app").scope).toBe("default");
    expect(requirementsFor(policy, "docker-archive", "/srv/images/x.tar").scope).toBe("default");
  });
});

describe("signedIdentity matching (pure)", () => {
  const img = (s: string) => parseNamedRef(s);
  const cases: [SignedIdentity, string | undefined, string, boolean][] = [
    [{ type: "matchExact" }, "busybox:latest", "docker.io/library/busybox:latest", true],
    [{ type: "matchExact" }, "busybox:latest", "docker.io/library/busybox", false],
    [{ type: "matchExact" }, `busybox@${digest}`, "docker.io/library/busybox:latest", false],
    [{ type: "matchRepoDigestOrExact" }, `busybox@${digest}`, "docker.io/library/busybox:any", true],
    [{ type: "matchRepoDigestOrExact" }, "busybox:1", "busybox:2", false],
    [{ type: "matchRepoDigestOrExact" }, "busybox", "busybox", false],
    [{ type: "matchRepository" }, "busybox:1", "busybox:2", true],
    [{ type: "matchRepository" }, "busybox:1", "quay.io/busybox:1", false],
    [{ type: "exactReference", dockerReference: "example.com/a:1" }, undefined, "example.com/a:1", true],
    [{ type: "exactReference", dockerReference: "example.com/a:1" }, undefined, "example.com/a:2", false],
    [{ type: "exactRepository", dockerRepository: "example.com/a" }, undefined, "example.com/a:2", true],
    [{ type: "matchRepository" }, undefined, "example.com/a:2", false],
    [
      { type: "remapIdentity", prefix: "mirror.example.com/ns", signedPrefix: "r.example.com/ns" },
      "mirror.example.com/ns/app:1",
      "r.example.com/ns/app:1",
      true,
    ],
    [
      { type: "remapIdentity", prefix: "mirror.example.com/ns", signedPrefix: "r.example.com/ns" },
      "mirror.example.com/nsx/app:1",
      "r.example.com/nsx/app:1",
      false,
    ],
    [
      { type: "remapIdentity", prefix: "mirror.example.com/ns", signedPrefix: "r.example.com/ns" },
      "other.example.com/ns/app:1",
      "other.example.com/ns/app:1",
      true,
    ],
    [{ type: "matchExact" }, "busybox:1", "not a reference!", false],
  ];
  it.each(cases)("%j image %s signed %s -> %s", (rule, image, signed, want) => {
    expect(matchSignedIdentity(rule, image === undefined ? undefined : img(image), signed)).toBe(want);
  });
});

describe("evaluatePolicy", () => {
  let keyA: { priv: string; pub: string; fp: string };
  let keyB: { priv: string; pub: string; fp: string };
  let dir: string;
  beforeAll(async () => {
    const make = async (name: string) => {
      const k = await openpgp.generateKey({
        type: "ecc",
        curve: "ed25519Legacy",
        userIDs: [{ name }],
        format: "armored",
      });
      const fp = (await openpgp.readKey({ armoredKey: k.publicKey })).getFingerprint();
      return { priv: k.privateKey, pub: k.publicKey, fp };
    };
    keyA = await make("A");
    keyB = await make("B");
    dir = tempDir("rkt-trust-eval-");
    writeFileSync(join(dir, "a.asc"), keyA.pub);
    // keyPath files are usually `gpg --export` binary keyrings.
    const bin = (await openpgp.readKey({ armoredKey: keyB.pub })).write();
    writeFileSync(join(dir, "b.gpg"), bin);
  });
  const sign = (priv: string, dockerReference: string, manifestDigest = digest) =>
    createSimpleSignature({ dockerReference, manifestDigest, privateKeyArmored: priv });
  const docker = (ref: string, sigs: () => Promise<Uint8Array[]>) => ({
    transport: "docker",
    reference: parseDockerReference(ref),
    manifestDigest: digest,
    signatures: sigs,
  });
  const policyWith = (reqs: unknown[], scope = "r.example.com/ns"): Policy =>
    parsePolicyOrThrow(
      JSON.stringify({ default: [{ type: "reject" }], transports: { docker: { [scope]: reqs } } }),
      "p",
    );
  const never = (): Promise<Uint8Array[]> => Promise.reject(new Error("signatures must not be read"));

  it("insecureAcceptAnything accepts without reading signatures; reject refuses", async () => {
    const p = parsePolicyOrThrow(
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: { docker: { "": [{ type: "insecureAcceptAnything" }] } },
      }),
      "p",
    );
    expect(await evaluatePolicy(p, docker("quay.io/a/b:1", never))).toEqual({
      accepted: true,
      scope: "",
      signatures: [],
    });
    expect(
      await evaluatePolicy(p, {
        transport: "oci",
        reference: "/x/y",
        manifestDigest: digest,
        signatures: never,
      }),
    ).toEqual({
      accepted: false,
      scope: "default",
      reasons: ["Running image oci:/x/y is rejected by policy."],
    });
  });

  it("names a rejected docker image as containers does", async () => {
    const p = policyWith([{ type: "reject" }]);
    expect(await evaluatePolicy(p, docker("r.example.com/ns/app", never))).toEqual({
      accepted: false,
      scope: "r.example.com/ns",
      reasons: ["Running image docker://r.example.com/ns/app:latest is rejected by policy."],
    });
    expect(policyPaths("/home/u")).toEqual([
      "/home/u/.config/containers/policy.json",
      "/etc/containers/policy.json",
    ]);
    expect(policyPaths(undefined)).toEqual(["/etc/containers/policy.json"]);
  });

  it("signedBy with keyPath, keyPaths and keyData accepts a matching signature", async () => {
    const sigA = await sign(keyA.priv, "r.example.com/ns/app:1.0");
    const sigB = await sign(keyB.priv, "r.example.com/ns/app:1.0");
    for (const [req, sig, fp] of [
      [{ keyPath: join(dir, "a.asc") }, sigA, keyA.fp],
      [{ keyPaths: [join(dir, "a.asc"), join(dir, "b.gpg")] }, sigB, keyB.fp],
      [{ keyData: Buffer.from(keyB.pub).toString("base64") }, sigB, keyB.fp],
    ] as const) {
      const p = policyWith([{ type: "signedBy", keyType: "GPGKeys", ...req }]);
      const d = await evaluatePolicy(
        p,
        docker("r.example.com/ns/app:1.0", () => Promise.resolve([sig])),
      );
      expect(d).toMatchObject({
        accepted: true,
        scope: "r.example.com/ns",
        signatures: [{ fingerprint: fp }],
      });
    }
  });

  it("reports no signature, and every reason when none is accepted", async () => {
    const p = policyWith([{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "a.asc") }]);
    expect(
      await evaluatePolicy(
        p,
        docker("r.example.com/ns/app:1.0", () => Promise.resolve([])),
      ),
    ).toEqual({
      accepted: false,
      scope: "r.example.com/ns",
      reasons: ["A signature was required, but no signature exists"],
    });
    const wrongKey = await sign(keyB.priv, "r.example.com/ns/app:1.0");
    const wrongTag = await sign(keyA.priv, "r.example.com/ns/app:2.0");
    const wrongDigest = await sign(keyA.priv, "r.example.com/ns/app:1.0", otherDigest);
    const d = await evaluatePolicy(
      p,
      docker("r.example.com/ns/app:1.0", () => Promise.resolve([wrongKey, wrongTag, wrongDigest])),
    );
    expect(d).toEqual({
      accepted: false,
      scope: "r.example.com/ns",
      reasons: [
        "None of the signatures were accepted, reasons: " +
          [
            `signature made by unknown key ${keyB.fp.slice(-16).toUpperCase()}`,
            'signature is for "r.example.com/ns/app:2.0", which matchRepoDigestOrExact does not accept for "r.example.com/ns/app:1.0"',
            `signature is for manifest digest ${otherDigest}, not ${digest}`,
          ].join("; "),
      ],
    });
  });

  it("every requirement must hold; a missing key file is a reason", async () => {
    const sigA = await sign(keyA.priv, "r.example.com/ns/app:1.0");
    const p = policyWith([
      { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "a.asc") },
      { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "missing.gpg") },
    ]);
    const d = await evaluatePolicy(
      p,
      docker("r.example.com/ns/app:1.0", () => Promise.resolve([sigA])),
    );
    expect(d.accepted).toBe(false);
    expect(d.accepted ? [] : d.reasons).toEqual([
      expect.stringMatching(
        new RegExp(`^error reading key: ${join(dir, "missing.gpg")}: ENOENT: no such file or directory`),
      ),
    ]);
  });

  it("remapIdentity accepts a mirror's image signed under the origin's name", async () => {
    const sig = await sign(keyA.priv, "r.example.com/ns/app:1.0");
    const p = policyWith(
      [
        {
          type: "signedBy",
          keyType: "GPGKeys",
          keyPath: join(dir, "a.asc"),
          signedIdentity: {
            type: "remapIdentity",
            prefix: "mirror.example.com/ns",
            signedPrefix: "r.example.com/ns",
          },
        },
      ],
      "mirror.example.com/ns",
    );
    expect(
      await evaluatePolicy(
        p,
        docker("mirror.example.com/ns/app:1.0", () => Promise.resolve([sig])),
      ),
    ).toMatchObject({
      accepted: true,
      scope: "mirror.example.com/ns",
    });
    const plain = policyWith(
      [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "a.asc") }],
      "mirror.example.com/ns",
    );
    expect(
      (
        await evaluatePolicy(
          plain,
          docker("mirror.example.com/ns/app:1.0", () => Promise.resolve([sig])),
        )
      ).accepted,
    ).toBe(false);
  });

  it("path transports accept only exactReference/exactRepository identities", async () => {
    const sig = await sign(keyA.priv, "r.example.com/ns/app:1.0");
    const mk = (signedIdentity: unknown) =>
      parsePolicyOrThrow(
        JSON.stringify({
          default: [{ type: "reject" }],
          transports: {
            oci: {
              "/srv": [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "a.asc"), signedIdentity }],
            },
          },
        }),
        "p",
      );
    const img = {
      transport: "oci",
      reference: "/srv/app:1.0",
      manifestDigest: digest,
      signatures: () => Promise.resolve([sig]),
    };
    expect(
      (await evaluatePolicy(mk({ type: "exactRepository", dockerRepository: "r.example.com/ns/app" }), img))
        .accepted,
    ).toBe(true);
    expect(
      (await evaluatePolicy(mk({ type: "exactReference", dockerReference: "r.example.com/ns/app:1.0" }), img))
        .accepted,
    ).toBe(true);
    expect(await evaluatePolicy(mk({ type: "matchRepository" }), img)).toEqual({
      accepted: false,
      scope: "/srv",
      reasons: [
        'signature is for "r.example.com/ns/app:1.0", which matchRepository does not accept for an image without a docker reference',
      ],
    });
  });
});
