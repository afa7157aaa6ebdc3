// Fuzzing the configuration files a user or an admin writes and rkt reads on every pull:
// registries.conf (TOML), policy.json, docker's config.json, rkt's auth.d (appc `auth` and
// `dockerAuth`). Each goes through the reader rkt uses, from a real file where there is one.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  defaultCredentials,
  dockerConfigCredentials,
  parseRegistriesConf,
  pullSources,
  readAppcAuth,
} from "@rkt/fetch";
import { parseDockerReference } from "@rkt/oci";
import { evaluatePolicy, parsePolicy, requirementsFor } from "@rkt/trust";
import {
  FuzzStats,
  corpus,
  fuzz,
  invariant,
  maxRss,
  maxRssMiB,
  mutatedBytes,
  mutatedJson,
  refusal,
  refused,
} from "./harness.js";

const stats = new FuzzStats("config-files");
const dir = mkdtempSync(join(tmpdir(), "rkt-fuzz-config-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  console.log(stats.line());
  expect(maxRss()).toBeLessThan(maxRssMiB);
});

const refs = [
  "example.com/foo/app:1",
  "internal.example.com/bar/x@sha256:" + "a".repeat(64),
  "docker.io/library/busybox:latest",
  "a.example.com/z:9",
  "localhost:5000/r",
].map((r) => parseDockerReference(r));

describe("registries.conf", () => {
  const seeds = corpus("registries-conf").map((c) => c.bytes);
  const dictionary = [
    "[[registry]]\n",
    "[[registry.mirror]]\n",
    'location = "',
    'prefix = "',
    '"\n',
    "*.",
    "=",
    "[",
    "]",
    "'",
    '"""',
    "\\u",
  ];
  it("parses, and every pull source it gives is a valid reference", { timeout: 120_000 }, async () => {
    const target = async (b: Buffer) => {
      const conf = await parseRegistriesConf(b.toString("utf8"), "fuzz.conf");
      for (const ref of refs) {
        let sources: ReturnType<typeof pullSources> = [];
        refusal(() => (sources = pullSources(conf, ref))); // blocked: a refusal
        for (const s of sources) {
          // A source is pulled as host/repository: it must be a reference the client accepts.
          const again = parseDockerReference(`${s.registry}/${s.repository}`);
          invariant(
            again.registry !== "" && again.repository !== "",
            "a source names a registry and a repository",
          );
        }
      }
    };
    await fuzz(stats, target, mutatedBytes(seeds, 64 * 1024, dictionary), {
      numRuns: 1500,
      boundMs: 1000,
      corpus: seeds,
    });
  });
});

describe("policy.json", () => {
  const seeds = corpus("policy-json").map((c) => c.bytes);
  const image = (reference: (typeof refs)[number]) => ({
    transport: "docker",
    reference,
    manifestDigest: "sha256:" + "b".repeat(64),
    signatures: () => Promise.resolve([]),
    readKeyFile: () => Promise.resolve(new Uint8Array()),
  });
  it("parses, and a parsed policy decides without crashing", { timeout: 120_000 }, async () => {
    const target = async (b: Buffer) => {
      const r = parsePolicy(b);
      if (!r.ok) return;
      for (const ref of refs) {
        requirementsFor(r.value, "docker", ref);
        await evaluatePolicy(r.value, image(ref));
      }
    };
    await fuzz(stats, target, mutatedJson(seeds), { numRuns: 1500, boundMs: 1000, corpus: seeds });
  });
});

describe("credentials files", () => {
  // No helper can run: their directory is empty.
  const noHelpers = join(dir, "no-helpers");
  mkdirSync(noHelpers);
  let n = 0;

  it("docker config.json is read without crashing", { timeout: 120_000 }, async () => {
    const seeds = corpus("docker-config").map((c) => c.bytes);
    const target = async (b: Buffer) => {
      const d = join(dir, `docker-${n++}`);
      mkdirSync(d);
      writeFileSync(join(d, "config.json"), b);
      try {
        const p = dockerConfigCredentials({ env: { DOCKER_CONFIG: d }, path: noHelpers, timeoutMs: 5000 });
        for (const [reg, repo] of [
          ["registry.example.com", "ns/repo"],
          ["docker.io", "library/busybox"],
          ["helper.example.com", "x"],
        ] as const)
          await refused(p.credentialsFor(reg, repo));
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    };
    await fuzz(stats, target, mutatedJson(seeds), { numRuns: 800, boundMs: 1000, corpus: seeds });
  });

  it("auth.d files (appc auth and dockerAuth) are read without crashing", { timeout: 120_000 }, async () => {
    const seeds = corpus("auth-d").map((c) => c.bytes);
    const target = async (b: Buffer) => {
      const d = join(dir, `rkt-${n++}`);
      mkdirSync(join(d, "auth.d"), { recursive: true });
      writeFileSync(join(d, "auth.d", "fuzz.json"), b);
      try {
        await refused(readAppcAuth([d]));
        const p = defaultCredentials({ rktConfigDirs: [d], env: { HOME: d }, path: noHelpers });
        await p.credentialsFor("registry.example.com", "ns/repo");
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    };
    await fuzz(stats, target, mutatedJson(seeds), { numRuns: 800, boundMs: 1000, corpus: seeds });
  });
});
