// Fuzzing the HTTP headers a registry or an appc server controls (WWW-Authenticate,
// Content-Range) and the Range header `rkt image serve` answers.
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parseContentRange, parseRange, parseWwwAuthenticate } from "@rkt/fetch";
import {
  FuzzStats,
  anyText,
  corpus,
  fuzz,
  invariant,
  maxRss,
  maxRssMiB,
  mutatedBytes,
  tokenSoup,
} from "./harness.js";

const stats = new FuzzStats("headers");
afterAll(() => {
  console.log(stats.line());
  expect(maxRss()).toBeLessThan(maxRssMiB);
});

// Header values arrive as latin1 strings (undici decodes bytes one to one), and Node caps a
// request's or an answer's headers at 16 KiB.
const maxHeader = 16 * 1024;
const text = (b: Buffer) => b.toString("latin1");
const headerInputs = (target: string, dictionary: string[]) => {
  const seeds = corpus(target).map((c) => c.bytes);
  return {
    seeds: seeds.map(text),
    inputs: fc.oneof(
      mutatedBytes(seeds, maxHeader, dictionary).map(text),
      tokenSoup(dictionary, maxHeader).map(text),
      anyText(100),
    ),
  };
};

describe("WWW-Authenticate", () => {
  const { seeds, inputs } = headerInputs("www-authenticate", [
    "Bearer ",
    "Basic ",
    'realm="',
    "realm=",
    '"',
    "\\",
    ",",
    "=",
    " ",
    "scope=",
  ]);
  it(
    "parses without crashing or hanging, and its challenges are well formed",
    { timeout: 60_000 },
    async () => {
      const target = (v: string | string[]) => {
        for (const c of parseWwwAuthenticate(v)) {
          expect(c.scheme).toBe(c.scheme.toLowerCase());
          for (const k of Object.keys(c.params)) expect(k).toBe(k.toLowerCase());
        }
      };
      await fuzz(stats, target, fc.oneof(inputs, fc.array(inputs, { maxLength: 4 })), {
        numRuns: 3000,
        boundMs: 1000,
        corpus: seeds,
      });
    },
  );
});

describe("Content-Range", () => {
  const { seeds, inputs } = headerInputs("content-range", ["bytes ", "-", "/", "*", "0", "9"]);
  it("parses to a consistent range or nothing", { timeout: 60_000 }, async () => {
    const target = (v: string) => {
      const r = parseContentRange(v);
      if (r === undefined) return;
      invariant(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), "exact offsets");
      invariant(r.start <= r.end && (r.total === undefined || r.end < r.total), "start <= end < total");
    };
    await fuzz(stats, target, inputs, { numRuns: 3000, boundMs: 1000, corpus: seeds });
  });
});

describe("Range", () => {
  const { seeds, inputs } = headerInputs("range", ["bytes=", "-", ",", " ", "0", "9"]);
  it("answers a part inside the blob, the whole, or unsatisfiable", { timeout: 60_000 }, async () => {
    const sizes = fc.oneof(fc.constantFrom(0, 1, 500, 1234), fc.nat({ max: 2 ** 40 }));
    const target = ([v, size]: [string, number]) => {
      const r = parseRange(v, size);
      if (r.kind !== "partial") return;
      invariant(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), "exact offsets");
      invariant(0 <= r.start && r.start <= r.end && r.end < size, "0 <= start <= end < size");
    };
    await fuzz(stats, target, fc.tuple(inputs, sizes), {
      numRuns: 3000,
      boundMs: 1000,
      corpus: seeds.map((s) => [s, 1234] as [string, number]),
    });
  });
});
