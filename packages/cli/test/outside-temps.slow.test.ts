// Temporaries beside user paths: `rkt image extract` killed mid-way leaves its `.<name>.rkt-<uuid>`
// directory, recorded in the store; fsck counts it as reclaimable garbage (exit 0) and the next
// `rkt image gc` removes it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAci } from "@rkt/appc";
import { runRkt } from "./helpers.js";

const bin = resolve(import.meta.dirname, "..", "bin", "rkt.js");
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-outside-temps-"));
  // Many files: the extraction takes long enough to be killed half-way.
  const entries = Array.from({ length: 4000 }, (_, i) => ({
    header: { name: `rootfs/f${i}`, type: "file" as const, mode: 0o644, size: 16 << 10 },
    body: randomBytes(16 << 10),
  }));
  const chunks: Buffer[] = [];
  const manifest = { acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/many" };
  for await (const c of writeAci(JSON.stringify(manifest), [
    { header: { name: "rootfs", type: "directory", mode: 0o755 } },
    ...entries,
  ]))
    chunks.push(c as Buffer);
  writeFileSync(join(tmp, "many.aci"), Buffer.concat(chunks));
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("temporaries beside user paths", () => {
  it("an extract killed half-way: fsck says reclaimable (exit 0), gc removes the temporary", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const f = await runRkt(
      ["--dir", dir, "--insecure-options=image", "fetch", "--no-render", "--full", "many.aci"],
      { cwd: tmp },
    );
    expect(f.code).toBe(0);
    const id = f.stdout.trim();
    const out = mkdtempSync(join(tmp, "out-"));
    const child = spawn(process.execPath, [bin, "--dir", dir, "image", "extract", id, join(out, "x")], {
      stdio: "ignore",
      env: { ...process.env, RKT_NO_BUNDLE: "1" },
    });
    // Kill once the temporary exists.
    for (let i = 0; i < 400 && !readdirSync(out).some((n) => n.startsWith(".x.rkt-")); i++)
      await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const left = readdirSync(out);
    expect(left.filter((n) => n.startsWith(".x.rkt-"))).toHaveLength(1);
    expect(left).not.toContain("x");
    const fsck = await runRkt(["--dir", dir, "image", "fsck"], { cwd: tmp });
    expect(fsck.code).toBe(0);
    expect(fsck.stdout).toMatch(/^garbage: stale-temp .*\.x\.rkt-/m);
    const gc = await runRkt(["--dir", dir, "image", "gc", "--grace-period=0s"], { cwd: tmp });
    expect(gc.code).toBe(0);
    expect(readdirSync(out)).toEqual([]);
    expect((await runRkt(["--dir", dir, "image", "fsck"], { cwd: tmp })).stderr).toMatch(
      /0 problem\(s\), 0 garbage item\(s\)/,
    );
  });
});
