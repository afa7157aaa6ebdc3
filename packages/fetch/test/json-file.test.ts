import { describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { parseJsonConfig } from "../src/json-file.js";

describe("parseJsonConfig", () => {
  it("reads as JSON.parse does: the last of two duplicate keys wins", () => {
    expect(parseJsonConfig('{"a":1,"a":2}', "c.json")).toEqual({ a: 2 });
  });

  // Found by test/fuzz (config-files): JSON.parse's message quotes the text, newlines and all.
  it("reports a syntax error on one line naming the file and the place", () => {
    let err: unknown;
    try {
      parseJsonConfig('\u0000{\n  "auths": {}\n}\n', "/etc/x/config.json");
    } catch (e) {
      err = e;
    }
    expect(isRktError(err, ErrorCode.InvalidArgument)).toBe(true);
    expect((err as Error).message).toMatch(/^\/etc\/x\/config\.json: not valid JSON: \$: .+$/);
    expect((err as Error).message).not.toContain("\n");
  });
});
