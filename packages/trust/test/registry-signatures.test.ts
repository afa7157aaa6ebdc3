import { ErrorCode, digestOf } from "@rkt/oci";
import { formatRegistrySignature, parseRegistrySignatures, registrySignaturesPath } from "@rkt/trust";
import { describe, expect, it } from "vitest";

const digest = digestOf("m");

describe("registry signatures extension", () => {
  it("computes the path and round-trips a PUT body", () => {
    expect(registrySignaturesPath("ns/app", digest)).toBe(`/extensions/v2/ns/app/signatures/${digest}`);
    const body = formatRegistrySignature(digest, Buffer.from("sig"), "0123");
    expect(JSON.parse(body)).toEqual({
      signatures: [{ schemaVersion: 2, type: "atomic", name: `${digest}@0123`, content: "c2ln" }],
    });
    expect(parseRegistrySignatures(body, "GET x").map((b) => Buffer.from(b).toString())).toEqual(["sig"]);
    expect(formatRegistrySignature(digest, Buffer.from("s"))).toMatch(
      new RegExp(`"name":"${digest}@[0-9a-f]{32}"`),
    );
  });

  it("skips unknown entries and refuses malformed bodies", () => {
    const body = JSON.stringify({
      signatures: [
        { schemaVersion: 3, type: "atomic", name: "x", content: "eA==" },
        { schemaVersion: 2, type: "cosign", name: "x", content: "eA==" },
        { schemaVersion: 2, type: "atomic", name: "x", content: "eQ==" },
      ],
    });
    expect(parseRegistrySignatures(body, "GET x").map((b) => Buffer.from(b).toString())).toEqual(["y"]);
    expect(() => parseRegistrySignatures("{}", "GET x")).toThrow(
      expect.objectContaining({ code: ErrorCode.Registry, message: "GET x: $.signatures: must be an array" }),
    );
    expect(() =>
      parseRegistrySignatures('{"signatures":[{"schemaVersion":2,"type":"atomic","content":"!!"}]}', "GET x"),
    ).toThrow(
      expect.objectContaining({
        code: ErrorCode.Registry,
        message: "GET x: $.signatures[0].content: must be base64",
      }),
    );
  });
});
