// Fuzzing appc's formats: image and pod manifests (isolators, hashes, labels…), the discovery
// document a name's host serves, and app strings.
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  discoverEndpoints,
  parseAppString,
  parseDiscoveryMeta,
  parseImageManifest,
  parseImageManifestOrThrow,
  parsePodManifest,
  parsePodManifestOrThrow,
} from "@rkt/appc";
import {
  FuzzStats,
  anyText,
  corpus,
  fuzz,
  maxRss,
  maxRssMiB,
  mutatedBytes,
  mutatedJson,
  refusal,
  tokenSoup,
} from "./harness.js";

const stats = new FuzzStats("appc");
afterAll(() => {
  console.log(stats.line());
  expect(maxRss()).toBeLessThan(maxRssMiB);
});

describe("appc manifests", () => {
  const seeds = corpus("appc-manifests").map((c) => c.bytes);
  it("parse without crashing or hanging", { timeout: 120_000 }, async () => {
    await fuzz(
      stats,
      (b: Buffer) => {
        parseImageManifest(b);
        parsePodManifest(b);
        refusal(() => parseImageManifestOrThrow(b, "fuzz"));
        refusal(() => parsePodManifestOrThrow(b, "fuzz"));
      },
      mutatedJson(seeds),
      { numRuns: 2000, boundMs: 1000, corpus: seeds },
    );
  });
});

describe("discovery documents", () => {
  const seeds = corpus("discovery-html").map((c) => c.bytes);
  const app = { name: "example.com/hello", labels: new Map([["os", "linux"]]) };
  it("parse in linear time without crashing", { timeout: 120_000 }, async () => {
    // Up to the 1 MiB a discovery answer may be: repetition finds quadratic scans.
    const dictionary = [
      "<meta",
      "<script",
      "<title>",
      "<!--",
      "-->",
      "<",
      ">",
      " name=",
      ' content="',
      "'",
      "&#",
      "&amp;",
      "{name}",
      "ac-discovery",
    ];
    const inputs = fc.oneof(
      mutatedBytes(seeds, 1 << 20, dictionary),
      tokenSoup(dictionary),
      anyText(2000).map((s) => Buffer.from(s)),
    );
    await fuzz(
      stats,
      (b: Buffer) => {
        const html = b.toString("utf8");
        parseDiscoveryMeta(html);
        discoverEndpoints(html, app);
      },
      inputs,
      { numRuns: 600, boundMs: 1000, corpus: seeds },
    );
  });
});

describe("app strings", () => {
  it("parse without crashing", { timeout: 60_000 }, async () => {
    const pieces = fc.constantFrom(
      "example.com/app",
      ":",
      ",",
      "=",
      "version",
      "os=linux",
      "%",
      "%zz",
      "&",
      "?",
      " ",
      "",
    );
    const inputs = fc.oneof(
      anyText(80),
      fc.array(pieces, { maxLength: 12 }).map((a) => a.join("")),
    );
    await fuzz(stats, (s: string) => refusal(() => parseAppString(s)), inputs, {
      numRuns: 2000,
      boundMs: 1000,
    });
  });
});
