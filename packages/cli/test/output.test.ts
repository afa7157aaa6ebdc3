// `--format json` and `--quiet` across the commands that print: one JSON document on stdout with
// the field names docs/cli-json.md lists, and no informational lines on stderr with --quiet.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRkt, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const hello = join(repo, "examples", "hello.aci");
const layout = join(repo, "examples", "hello-oci");
const key = join(repo, "examples", "keys", "demo.pub.asc");

let tmp: string;
let globals: string[];
let aci: string;
let oci: string;
const rkt = (args: string[]): Promise<RktRun> => runRkt([...globals, ...args], { cwd: tmp });

function json(r: RktRun): unknown {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.endsWith("\n")).toBe(true);
  expect(r.stdout.trim().split("\n"), "one document").toHaveLength(1);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-output-"));
  globals = [
    `--dir=${join(tmp, "data")}`,
    `--local-config=${join(tmp, "etc")}`,
    `--system-config=${join(tmp, "lib")}`,
  ];
  const t = await rkt([
    "trust",
    "--prefix",
    "example.com/hello",
    "--skip-fingerprint-review",
    "--format=json",
    key,
  ]);
  expect(json(t)).toEqual([
    {
      location: key,
      prefix: "example.com/hello",
      root: false,
      fingerprint: "6c9dfb8e13a3d85bc0205340bace6aaa2eda1d65",
      path: join(
        tmp,
        "etc",
        "trustedkeys",
        "prefix.d",
        "example.com",
        "hello",
        "6c9dfb8e13a3d85bc0205340bace6aaa2eda1d65",
      ),
      trusted: true,
    },
  ]);
  expect(t.stderr).toContain('pubkey: prefix: "example.com/hello"');
  const f = await rkt(["fetch", "--no-render", "--full", "--quiet", hello, `oci:${layout}:latest`]);
  expect(f).toMatchObject({ code: 0, stderr: "" });
  [aci = "", oci = ""] = f.stdout.trim().split("\n");
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("--format json", () => {
  it("version, trust list, image list", async () => {
    expect(json(await rkt(["version", "--format=json"]))).toEqual({
      rkt: expect.stringMatching(/^\d+\.\d+\.\d+$/),
      appc: "0.8.11",
      node: process.version,
      os: process.platform,
      arch: process.arch,
    });
    expect(json(await rkt(["trust", "list", "--format=json"]))).toEqual([
      expect.objectContaining({ prefix: "example.com/hello", root: false, layer: "local" }),
    ]);
    const list = json(await rkt(["image", "list", "--format=json"])) as { id: string }[];
    expect(list.map((i) => i.id).sort()).toEqual([aci, oci].sort());
  });

  it("export, extract, render, verify, fsck", async () => {
    const out = join(tmp, "x.oci.tar");
    expect(json(await rkt(["image", "export", "--format=json", oci, out]))).toEqual({
      id: oci,
      kind: "oci",
      path: out,
    });
    const ex = join(tmp, "extracted");
    expect(json(await rkt(["image", "extract", "--format=json", aci, ex]))).toEqual({
      id: aci,
      kind: "aci",
      path: ex,
      rootfs: join(ex, "rootfs"),
    });
    const r = json(
      await rkt(["image", "render", "--flatten", "--rootfs-only", "--format=json", oci, join(tmp, "r")]),
    );
    expect(r).toEqual({
      id: oci,
      kind: "oci",
      path: join(tmp, "r"),
      rootfs: join(tmp, "r"),
      manifest: null,
      mode: "copy",
    });
    expect(json(await rkt(["image", "verify", "--format=json", oci, aci]))).toEqual([
      { image: oci, id: oci, status: "ok", problem: null },
      { image: aci, id: aci, status: "not-rendered", problem: null },
    ]);
    expect(json(await rkt(["image", "fsck", "--format=json"]))).toMatchObject({ ok: true, problems: [] });
  });

  it("convert, save (--json, as --format names the archive), rm, gc", async () => {
    const conv = json(await rkt(["image", "convert", "--format=json", oci])) as { id: string }[];
    expect(conv).toEqual([{ id: expect.stringMatching(/^sha512-[0-9a-f]{64}$/) }]);
    const file = join(tmp, "saved.tar");
    const saved = json(await rkt(["image", "save", "--json", "-o", file, oci])) as { digest: string }[];
    expect(saved).toEqual([
      expect.objectContaining({ digest: oci, destination: expect.stringContaining(file) }),
    ]);
    expect(json(await rkt(["image", "rm", "--format=json", conv[0]!.id, "example.com/nope"]))).toEqual({
      removed: [{ id: conv[0]!.id, kind: "aci" }],
      failed: [],
      unresolved: [{ image: "example.com/nope", error: expect.stringContaining("example.com/nope") }],
      freedBytes: expect.any(Number),
    });
    expect(json(await rkt(["image", "gc", "--format=json", "--grace-period=1000h"]))).toEqual({
      removedTrees: expect.any(Array),
      removedSnapshots: expect.any(Number),
      removedImages: [],
      removedBlobs: expect.any(Number),
      removedIngests: expect.any(Number),
      freedBytes: expect.any(Number),
    });
  });

  it("validate, pods list, pods gc", async () => {
    expect(json(await rkt(["image", "validate", "--format=json", hello]))).toEqual([
      { path: hello, type: "aci", ok: true, issues: [] },
    ]);
    expect(json(await rkt(["list", "--format=json"]))).toEqual([]);
    expect(json(await rkt(["gc", "--format=json"]))).toEqual({ marked: [], removed: [], failed: [] });
  });
});

describe("--quiet", () => {
  it("leaves only the results: IDs for list, nothing on stderr", async () => {
    const l = await rkt(["image", "list", "--quiet", "--full"]);
    expect(l).toMatchObject({ code: 0, stderr: "" });
    const all = json(await rkt(["image", "list", "--format=json"])) as { id: string }[];
    expect(l.stdout.trim().split("\n").sort()).toEqual(all.map((i) => i.id).sort());
    expect(all.map((i) => i.id)).toEqual(expect.arrayContaining([aci, oci]));
    const v = await rkt(["image", "validate", "-q", hello]);
    expect(v).toEqual({ code: 0, stdout: "", stderr: "" });
    const f = await rkt(["image", "fsck", "-q"]);
    expect(f).toEqual({ code: 0, stdout: "", stderr: "" });
    const t = await rkt(["trust", "list", "-q"]);
    expect(t.stdout).toBe("6c9dfb8e13a3d85bc0205340bace6aaa2eda1d65\n");
  });

  it("rm keeps its result lines and drops the summary; without it the summary is there", async () => {
    const c = await rkt(["image", "convert", "-q", oci]);
    const id = c.stdout.trim();
    const q = await rkt(["image", "rm", "-q", id]);
    expect(q).toEqual({ code: 0, stdout: `successfully removed aci for image: "${id}"\n`, stderr: "" });
    const again = await rkt(["image", "convert", oci]);
    const loud = await rkt(["image", "rm", again.stdout.trim()]);
    expect(loud.stderr).toMatch(/^rm: 1 image\(s\) successfully removed\nrm: freed \d+(\.\d)?[KMG]?i?B\n$/);
  });
});
