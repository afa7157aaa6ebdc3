// openpgp (~100 ms) and yaml (~50 ms) must load only when used, so that importing @rkt/trust (as
// every `rkt fetch` does) stays cheap (ARCHITECTURE.md, performance notes).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";

it("imports openpgp and yaml only as types or lazily", () => {
  const dir = join(import.meta.dirname, "..", "src");
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".ts"))) {
    const text = readFileSync(join(dir, f), "utf8");
    for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"(openpgp|yaml)";/gm)) {
      expect(m[1], `${f}: ${m[0]}`).toBe("type ");
    }
  }
});
