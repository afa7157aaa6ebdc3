// Dependencies point one way (ARCHITECTURE.md): oci <- appc <- {store, trust} <- fetch <- docker2aci
// <- runner <- cli. This test reads every source import, like ggcr's depcheck_test.go.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const allowed: Record<string, readonly string[]> = {
  oci: [],
  appc: ["oci"],
  store: ["oci", "appc"],
  trust: ["oci", "appc"],
  fetch: ["oci", "appc", "store", "trust"],
  docker2aci: ["oci", "appc", "store", "fetch"],
  runner: ["oci", "appc", "store", "docker2aci"],
  cli: ["oci", "appc", "store", "trust", "fetch", "docker2aci", "runner"],
  testkit: ["oci", "appc"],
};
const pure = new Set(["oci", "appc"]);
const impure =
  /^(node:)?(fs|fs\/promises|net|http|https|http2|child_process|dgram|tls|worker_threads)$|^undici$/;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : /\.ts$/.test(name) ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const re = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? "");
}

describe("package dependencies", () => {
  for (const [pkg, deps] of Object.entries(allowed)) {
    it(`${pkg} imports only ${deps.join(", ") || "nothing of ours"}`, () => {
      const root = join("packages", pkg);
      const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
        dependencies?: Record<string, string>;
      };
      const declared = Object.keys(manifest.dependencies ?? {})
        .filter((d) => d.startsWith("@rkt/"))
        .map((d) => d.slice(5));
      expect(declared.filter((d) => !deps.includes(d))).toEqual([]);
      for (const file of sources(join(root, "src"))) {
        for (const spec of importsOf(file)) {
          if (spec.startsWith("@rkt/")) {
            const target = spec.slice(5).split("/")[0]!;
            expect(spec, `${file} imports ${spec}`).toBe(`@rkt/${target}`);
            expect(deps, `${file} imports ${spec}`).toContain(target);
          }
          expect(spec, `${file} reaches into another package`).not.toMatch(/\.\.\/\.\.\/[^/]+\/src/);
          if (pure.has(pkg)) expect(spec, `${file} is in a pure package`).not.toMatch(impure);
        }
      }
    });
  }
});
