import { ErrorCode, isRktError } from "@rkt/oci";
import { describe, expect, it } from "vitest";
import {
  acIdentifierProblem,
  acNameProblem,
  isACIdentifier,
  parseACIdentifier,
  parseACName,
  sanitizeACIdentifier,
  sanitizeACName,
} from "@rkt/appc";

function thrown(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (isRktError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("did not throw");
}

describe("AC identifier", () => {
  // appc acidentifier_test.go good vectors; the last two do not match the spec regex.
  it.each([
    "asdf",
    "foo-bar-baz",
    "zab_rab_oof",
    "database",
    "example.com/database",
    "example.com/ourapp-1.0.0",
    "sub-domain.example.com/org/product/release-1.0.0",
    "sub-domain.example.com/org/product/~alice/release-1.0.0",
    "example.com/~bob/database",
    "a--b",
    "a",
  ])("accepts %s", (s) => {
    expect(parseACIdentifier(s)).toBe(s);
  });

  it.each([
    ["", "ACIdentifier cannot be empty"],
    ["Foo", 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"'],
    ["a b", 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"'],
    ["a:b", 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"'],
    ["é", 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"'],
    ["-foo", "ACIdentifier must start and end with only lower case alphanumeric characters"],
    ["foo/", "ACIdentifier must start and end with only lower case alphanumeric characters"],
    ["~x", "ACIdentifier must start and end with only lower case alphanumeric characters"],
    [".", "ACIdentifier must start and end with only lower case alphanumeric characters"],
  ])("refuses %j: %s", (s, why) => {
    expect(acIdentifierProblem(s)).toBe(why);
    expect(isACIdentifier(s)).toBe(false);
    const e = thrown(() => parseACIdentifier(s));
    expect(e.code).toBe(ErrorCode.InvalidName);
    expect(e.message).toBe(`invalid AC identifier ${JSON.stringify(s)}: ${why}`);
  });
});

describe("AC name", () => {
  it.each(["asdf", "foo-bar-baz", "database", "a--b", "80"])("accepts %s", (s) => {
    expect(parseACName(s)).toBe(s);
  });
  it.each([
    ["", "ACName cannot be empty"],
    ["foo_bar", 'ACName must contain only lower case alphanumeric characters plus "-"'],
    ["example.com", 'ACName must contain only lower case alphanumeric characters plus "-"'],
    ["a/b", 'ACName must contain only lower case alphanumeric characters plus "-"'],
    ["Web", 'ACName must contain only lower case alphanumeric characters plus "-"'],
    ["-web", "ACName must start and end with only lower case alphanumeric characters"],
    ["web-", "ACName must start and end with only lower case alphanumeric characters"],
  ])("refuses %j: %s", (s, why) => {
    expect(acNameProblem(s)).toBe(why);
    const e = thrown(() => parseACName(s));
    expect(e.code).toBe(ErrorCode.InvalidName);
    expect(e.message).toBe(`invalid AC name ${JSON.stringify(s)}: ${why}`);
  });
});

describe("sanitizers", () => {
  it.each([
    ["Foo Bar", "foo-bar"],
    ["foo_bar", "foo-bar"],
    ["--web--", "web"],
    ["nginx:latest", "nginx-latest"],
    ["80/tcp", "80-tcp"],
  ])("sanitizeACName(%j) = %j", (input, out) => {
    expect(sanitizeACName(input)).toBe(out);
  });
  it("sanitizeACName replaces each non-ASCII character once", () => {
    expect(sanitizeACName("aéb")).toBe("a-b");
  });
  it.each([
    ["Docker.io/Library/Nginx", "docker.io/library/nginx"],
    ["registry:5000/foo", "registry_5000/foo"],
    ["/foo/", "foo"],
    ["__x__", "x"],
    ["a b", "a_b"],
  ])("sanitizeACIdentifier(%j) = %j", (input, out) => {
    expect(sanitizeACIdentifier(input)).toBe(out);
    expect(isACIdentifier(sanitizeACIdentifier(input))).toBe(true);
  });
  it.each([["---"], [""], ["___"]])("refuses %j with nothing valid left", (s) => {
    const e = thrown(() => sanitizeACName(s));
    expect(e.code).toBe(ErrorCode.InvalidName);
    expect(e.message).toContain("must contain at least one valid character");
  });
  it("sanitizeACIdentifier refuses separators only", () => {
    expect(thrown(() => sanitizeACIdentifier("./~")).message).toContain(
      "must contain at least one valid character",
    );
  });
});
