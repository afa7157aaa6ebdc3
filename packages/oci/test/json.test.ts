import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseJsonStrict } from "@rkt/oci";

const enc = (s: string) => new TextEncoder().encode(s);

function issue(input: Uint8Array | string) {
  const r = parseJsonStrict(input);
  if (r.ok) throw new Error("expected a failure");
  expect(r.issues).toHaveLength(1);
  return r.issues[0]!;
}

describe("parseJsonStrict", () => {
  it("parses what JSON.parse parses and keeps the exact bytes", () => {
    const text = ' {"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"], "b": {}, "c": []} ';
    const bytes = enc(text);
    const r = parseJsonStrict(bytes);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toEqual(JSON.parse(text));
    expect(r.raw).toBe(bytes);
  });

  it("treats __proto__ as an ordinary key", () => {
    const r = parseJsonStrict('{"__proto__": {"polluted": true}}');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const v = r.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("refuses duplicate keys and names their path", () => {
    const i = issue('{"layers":[{"digest":"a","size":1,"digest":"b"}]}');
    expect(i.path).toBe("$.layers[0].digest");
    expect(i.message).toMatch(/^duplicate key "digest"/);
    expect(issue('{"a":1,"a":1}').path).toBe("$.a");
    expect(issue('{"x":{"odd key":1,"odd key":2}}').path).toBe('$.x["odd key"]');
  });

  it("refuses invalid UTF-8, a BOM and unpaired surrogates", () => {
    expect(issue(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])).message).toBe(
      "document is not valid UTF-8",
    );
    expect(issue(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])).message).toBe(
      "document starts with a byte order mark",
    );
    const s = issue('{"k":"\\ud800x"}');
    expect(s.path).toBe("$.k");
    expect(s.message).toMatch(/unpaired surrogate/);
    expect(parseJsonStrict('{"k":"\\ud83d\\ude00"}').ok).toBe(true);
  });

  it("refuses malformed JSON with a location", () => {
    expect(issue("").message).toMatch(/unexpected end of document/);
    expect(issue("{").message).toMatch(/expected a member name/);
    expect(issue('{"a" 1}').message).toMatch(/expected :/);
    expect(issue("[1 2]").message).toMatch(/expected , or \]/);
    expect(issue('{"a":1,}').message).toMatch(/expected a member name/);
    expect(issue("01").message).toMatch(/unexpected data after the JSON value/);
    expect(issue("{} x").message).toMatch(/unexpected data/);
    expect(issue('"tab\there"').message).toMatch(/invalid string/);
    expect(issue("[tru]").path).toBe("$[0]");
    expect(issue("NaN").message).toMatch(/invalid JSON/);
    expect(issue("[".repeat(300) + "]".repeat(300)).message).toMatch(/nesting deeper than 256/);
  });

  it("agrees with JSON.parse on every JSON value (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 2 : undefined);
        const r = parseJsonStrict(text);
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.value).toStrictEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it("never throws, and what it accepts JSON.parse reads the same (property)", () => {
    const jsonish = fc.string({
      unit: fc.constantFrom(...'{}[]":,0123456789.-eE tfnrlu\\ax'.split("")),
      maxLength: 30,
    });
    fc.assert(
      fc.property(fc.oneof(jsonish, fc.string({ maxLength: 30 })), (s) => {
        const r = parseJsonStrict(s);
        if (r.ok) expect(r.value).toStrictEqual(JSON.parse(s));
        else expect(r.issues[0]?.path).toMatch(/^\$/);
      }),
      { numRuns: 3000 },
    );
  });
});
