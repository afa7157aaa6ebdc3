// `rkt fetch docker-archive:FILE[:REF]` in-process against a temp --dir, with an archive written
// by real skopeo; `rkt image validate --type docker-archive` agrees with the import.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRkt, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloOci = join(repo, "examples", "hello-oci");

let tmp: string;
let archive: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-fetch-docker-archive-"));
  archive = join(tmp, "hello.tar");
  execFileSync("skopeo", [
    "copy",
    "-q",
    `oci:${helloOci}`,
    `docker-archive:${archive}:example.com/hello:1.0`,
  ]);
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, ...args], { cwd: tmp });
}

describe("rkt fetch docker-archive:", () => {
  it("prints the manifest digest; re-fetch gives the same; --format json has the summary", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const a = await rkt(dir, ["fetch", "docker-archive:hello.tar"]);
    expect(a).toMatchObject({ code: 0, stderr: "" });
    expect(a.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const b = await rkt(dir, ["fetch", "--format", "json", "docker-archive:hello.tar:example.com/hello:1.0"]);
    expect(b.code).toBe(0);
    const [s] = JSON.parse(b.stdout) as {
      id: string;
      name: string;
      digests: string[];
      bytesDownloaded: number;
      bytesReused: number;
    }[];
    expect(s).toMatchObject({ id: a.stdout.trim(), name: "example.com/hello", bytesDownloaded: 0 });
    expect(s!.digests).toHaveLength(3);
    expect(s!.bytesReused).toBeGreaterThan(0);
    const list = await rkt(dir, ["image", "list", "--format", "json"]);
    expect(list.stdout).toContain("example.com/hello");
    expect((await rkt(dir, ["image", "validate", "--type", "docker-archive", "hello.tar"])).code).toBe(0);
  });

  it("several images: no selector is ambiguous (exit 254, listing them); @N picks one", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    // A second image beside skopeo's: same layer, another config and tag.
    const x = join(tmp, "two");
    execFileSync("mkdir", ["-p", x]);
    execFileSync("tar", ["xf", archive, "-C", x]);
    const m = JSON.parse(readFileSync(join(x, "manifest.json"), "utf8")) as {
      Config: string;
      Layers: string[];
    }[];
    const cfg = JSON.parse(readFileSync(join(x, m[0]!.Config), "utf8")) as Record<string, unknown>;
    const other = Buffer.from(JSON.stringify({ ...cfg, author: "someone else" }));
    const otherName = `${createHash("sha256").update(other).digest("hex")}.json`;
    writeFileSync(join(x, otherName), other);
    m.push({ Config: otherName, Layers: m[0]!.Layers, RepoTags: ["example.com/other:2"] } as (typeof m)[0]);
    writeFileSync(join(x, "manifest.json"), JSON.stringify(m));
    execFileSync("tar", ["cf", join(tmp, "two.tar"), "-C", x, "."]);
    const amb = await rkt(dir, ["fetch", "docker-archive:two.tar"]);
    expect(amb.code).toBe(254);
    expect(amb.stderr).toBe(
      "fetch: docker-archive:two.tar: the archive holds 2 images, name one with :NAME:TAG or :@N: @0 (example.com/hello:1.0); @1 (example.com/other:2)\n",
    );
    const one = await rkt(dir, ["fetch", "docker-archive:two.tar:@1"]);
    expect(one.code).toBe(0);
    const byTag = await rkt(dir, ["fetch", "docker-archive:two.tar:example.com/other:2"]);
    expect(byTag.stdout).toBe(one.stdout);
  });

  it("a truncated archive: exit 254, one line naming the input, nothing stored; validate agrees", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const bad = join(tmp, "bad.tar");
    writeFileSync(bad, readFileSync(archive));
    truncateSync(bad, 2000);
    const r = await rkt(dir, ["fetch", "docker-archive:bad.tar"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toMatch(/^fetch: docker-archive:bad\.tar: .*not a readable tar archive.*\n$/);
    expect((await rkt(dir, ["image", "list", "--format", "json"])).stdout.trim()).toBe("null");
    const fsck = await rkt(dir, ["image", "fsck", "--format", "json"]);
    expect(JSON.parse(fsck.stdout)).toMatchObject({ ok: true, clean: true });
    const v = await rkt(dir, ["image", "validate", "--type", "docker-archive", "bad.tar"]);
    expect(v.code).toBe(254);
    expect(v.stdout).toMatch(/invalid: \$: .*not a readable tar archive/);
  });
});
