// Every package README's usage example runs as its text says: saved in `examples/` (so the
// workspace packages resolve) and run with `node` from a copy of the bundled example images.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const packages = ["oci", "appc", "store", "trust", "fetch", "docker2aci", "runner", "cli"];

function usageExample(pkg: string): string {
  const readme = readFileSync(join(root, "packages", pkg, "README.md"), "utf8");
  const m = /## Usage\n[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  if (m === null) throw new Error(`packages/${pkg}/README.md has no ## Usage js example`);
  return m[1]!;
}

describe("README usage examples", () => {
  for (const pkg of packages) {
    it(`@rkt/${pkg}: the example runs and prints`, () => {
      const code = usageExample(pkg);
      expect(code.split("\n").length).toBeLessThanOrEqual(20);
      const file = join(root, "examples", `.readme-${pkg}.mjs`);
      const cwd = mkdtempSync(join(tmpdir(), `rkt-readme-${pkg}-`));
      try {
        cpSync(join(root, "examples"), cwd, { recursive: true, filter: (src) => !src.includes("/.readme-") });
        writeFileSync(file, code);
        const r = spawnSync(process.execPath, [file], { cwd, encoding: "utf8", timeout: 60_000 });
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        expect(r.stdout.trim()).not.toBe("");
      } finally {
        rmSync(file, { force: true });
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  }
});
