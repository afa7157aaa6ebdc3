// `rkt image list|rm|gc|cat-manifest|export|extract|fsck` against rkt's documented formats
// (rkt.md §1.4–1.5), in-process with a temp --dir per test.
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatGoTime,
  formatListJson,
  humanizeBytes,
  humanizeTime,
  tabwrite,
} from "../src/commands/image-list.js";
import { parseGoDuration } from "../src/commands/image-gc.js";
import { runRkt, sink, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloOci = join(repo, "examples", "hello-oci");
const helloOciId = (
  JSON.parse(readFileSync(join(helloOci, "index.json"), "utf8")) as { manifests: { digest: string }[] }
).manifests[0]!.digest;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-image-test-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Also `raw`: stdout's exact bytes. */
async function rkt(dir: string, args: string[]): Promise<RktRun & { raw: Buffer }> {
  const out = sink();
  const r = await runRkt(["--dir", dir, "--insecure-options=image", ...args], {
    cwd: repo,
    stdout: out.stream,
  });
  return { ...r, stdout: out.text(), raw: out.bytes() };
}

/** A store with hello.aci and hello-oci; returns the dir and the full ACI ID. */
async function populated(): Promise<{ dir: string; aci: string }> {
  const dir = mkdtempSync(join(tmp, "store-"));
  // Unrendered: as root, fetch would render, and list adds each tree's size to its image's.
  const r = await rkt(dir, [
    "fetch",
    "--no-render",
    "--full",
    "examples/hello.aci",
    "oci:examples/hello-oci",
  ]);
  expect(r.code).toBe(0);
  return { dir, aci: r.stdout.split("\n")[0]! };
}

describe("formatting helpers (go-humanize, Go time, tabwriter)", () => {
  it("humanizes sizes as go-humanize IBytes", () => {
    expect(humanizeBytes(5)).toBe("5B");
    expect(humanizeBytes(512)).toBe("512B");
    expect(humanizeBytes(5632)).toBe("5.5KiB");
    expect(humanizeBytes(12 * 2 ** 20)).toBe("12MiB");
    expect(humanizeBytes(5.4 * 2 ** 20)).toBe("5.4MiB");
  });

  it("humanizes times as go-humanize RelTime", () => {
    const now = 1_000_000_000_000;
    expect(humanizeTime(now, now)).toBe("now");
    expect(humanizeTime(now - 1500, now)).toBe("1 second ago");
    expect(humanizeTime(now - 42_000, now)).toBe("42 seconds ago");
    expect(humanizeTime(now - 3 * 3600_000, now)).toBe("3 hours ago");
    expect(humanizeTime(now - 8 * 86400_000, now)).toBe("1 week ago");
    expect(humanizeTime(now + 2 * 86400_000, now)).toBe("2 days from now");
  });

  it("formats Go's 2006-01-02 15:04:05.999 -0700 MST layout", () => {
    const t = Date.UTC(2026, 0, 2, 3, 4, 5, 120);
    const s = formatGoTime(t);
    expect(s).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.12 [+-]\d{4} \S+$/);
    expect(formatGoTime(Date.UTC(2026, 0, 2, 3, 4, 5, 0))).toMatch(/:05 [+-]\d{4}/);
  });

  it("pads with tabs as Go's tabwriter(0, 8, 1, '\\t')", () => {
    expect(
      tabwrite([
        ["ID", "NAME", "X"],
        ["sha512-0123456789ab", "n", "y"],
      ]),
    ).toBe("ID\t\t\tNAME\tX\nsha512-0123456789ab\tn\ty\n");
  });

  it("parses Go durations", () => {
    expect(parseGoDuration("24h0m0s")).toBe(86_400_000);
    expect(parseGoDuration("30m")).toBe(1_800_000);
    expect(parseGoDuration("0s")).toBe(0);
    expect(parseGoDuration("1.5h")).toBe(5_400_000);
    expect(() => parseGoDuration("5 days")).toThrow('time: invalid duration "5 days"');
  });

  it("prints null for an empty list and nanosecond integers", () => {
    expect(formatListJson([], false)).toBe("null\n");
    const rec = {
      id: "sha512-ab",
      kind: "aci" as const,
      name: "a<b",
      labels: { version: "1" },
      manifestDigest: "x",
      size: 10,
      treeSize: 5,
      importTime: 1795887799511,
      lastUsed: 1795887799512,
      latest: false,
    };
    expect(formatListJson([rec], false)).toBe(
      '[{"id":"sha512-ab","name":"a\\u003cb:1","import_time":1795887799511000000,"last_used_time":1795887799512000000,"size":15}]\n',
    );
    expect(formatListJson([rec], true)).toBe(
      '[\n\t{\n\t\t"id": "sha512-ab",\n\t\t"name": "a\\u003cb:1",\n\t\t"import_time": 1795887799511000000,\n\t\t"last_used_time": 1795887799512000000,\n\t\t"size": 15\n\t}\n]\n',
    );
  });
});

describe("rkt image list", () => {
  it("prints rkt's legend and columns, short IDs, humanized sizes and times", async () => {
    const { dir } = await populated();
    const r = await rkt(dir, ["image", "list"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\t+NAME\t+SIZE\t+IMPORT TIME\t+LAST USED$/);
    expect(lines[1]).toMatch(
      /^sha512-[0-9a-f]{12}\t+example\.com\/hello:0\.1\.0\t+6\.0KiB\t+(now|\d+ seconds? ago)\t+(now|\d+ seconds? ago)$/,
    );
    expect(lines[2]).toMatch(new RegExp(`^${helloOciId.slice(0, 19)}\\t+hello-oci:latest\\t+1\\.5KiB\\t+`));
    const noLegend = await rkt(dir, [
      "image",
      "list",
      "--no-legend",
      "--fields=name,id",
      "--sort=name",
      "--order=desc",
    ]);
    expect(noLegend.stdout).toBe(
      `hello-oci:latest\t${helloOciId.slice(0, 19)}\nexample.com/hello:0.1.0\tsha512-${lines[1]!.slice(7, 19)}\n`,
    );
  });

  it("--full shows full IDs, byte sizes and Go times", async () => {
    const { dir, aci } = await populated();
    const r = await rkt(dir, ["image", "list", "--full", "--no-legend"]);
    const first = r.stdout.split("\n")[0]!.split(/\t+/);
    expect(first[0]).toBe(aci);
    expect(first[2]).toBe("6144");
    expect(first[3]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,3})? [+-]\d{4} \S+$/);
  });

  it("--format json and json-pretty have rkt's shape", async () => {
    const { dir, aci } = await populated();
    const j = await rkt(dir, ["image", "list", "--format=json"]);
    expect(j.stdout.split("\n")).toHaveLength(2);
    const arr = JSON.parse(j.stdout) as Record<string, unknown>[];
    expect(arr.map((e) => Object.keys(e))).toEqual([
      ["id", "name", "import_time", "last_used_time", "size"],
      ["id", "name", "import_time", "last_used_time", "size"],
    ]);
    expect(arr[0]).toMatchObject({ id: aci, name: "example.com/hello:0.1.0", size: 6144 });
    expect(j.stdout).toMatch(/"import_time":\d{19},/);
    const p = await rkt(dir, ["image", "list", "--format=json-pretty"]);
    expect(p.stdout.startsWith('[\n\t{\n\t\t"id": ')).toBe(true);
  });

  it("rejects unknown fields with rkt's message", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const r = await rkt(dir, ["image", "list", "--fields=latest"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe('list: invalid argument "latest" for "--fields" flag: unknown option "latest"\n');
    expect((await rkt(dir, ["image", "list", "--format=json"])).stdout).toBe("null\n");
  });
});

describe("rkt image rm", () => {
  it("removes by ID prefix and name with rkt's messages; trees and blobs go", async () => {
    const { dir, aci } = await populated();
    const r = await rkt(dir, ["image", "rm", aci.slice(0, 15), "hello-oci:latest"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `successfully removed aci for image: "${aci}"\nsuccessfully removed image: "${helloOciId}"\n`,
    );
    // rkt's line, then what the removal gave back
    expect(r.stderr).toMatch(/^rm: 2 image\(s\) successfully removed\nrm: freed \d+(\.\d)?(B|KiB|MiB)\n$/);
    expect(readdirSync(join(dir, "cas", "blobs", "sha256"))).toEqual([]);
    expect(readdirSync(join(dir, "cas", "blobs", "sha512"))).toEqual([]);
    const check = await rkt(dir, ["image", "fsck"]);
    expect(check.code).toBe(0);
  });

  it("exits 254 when nothing could be removed (unlike rkt) and without arguments", async () => {
    const { dir } = await populated();
    const r = await rkt(dir, ["image", "rm", "sha512-ffff", "nosuch.example/app"]);
    expect(r.code).toBe(254);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('rm: cannot resolve image "sha512-ffff": no image IDs found\n');
    expect(r.stderr).toContain(
      'rm: cannot resolve image "nosuch.example/app": cannot find aci satisfying name: "nosuch.example/app"',
    );
    const none = await rkt(dir, ["image", "rm"]);
    expect(none).toMatchObject({ code: 254, stderr: "rm: must provide at least one image ID\n" });
  });
});

describe("rkt image gc", () => {
  it("keeps recent images under the default grace period and removes them with 0s", async () => {
    const { dir, aci } = await populated();
    const keep = await rkt(dir, ["image", "gc"]);
    expect(keep).toMatchObject({ code: 0, stdout: "" });
    const r = await rkt(dir, ["image", "gc", "--grace-period=0s"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`successfully removed aci for image: "${aci}"`);
    expect(r.stderr).toContain("gc: 2 image(s) successfully removed\n");
    expect(JSON.parse((await rkt(dir, ["image", "list", "--format=json"])).stdout)).toBeNull();
  });

  it("--trees-only leaves images; bad durations and both modes are refused", async () => {
    const { dir } = await populated();
    expect((await rkt(dir, ["image", "gc", "--grace-period=0s", "--trees-only"])).stdout).toBe("");
    expect(JSON.parse((await rkt(dir, ["image", "list", "--format=json"])).stdout)).toHaveLength(2);
    const bad = await rkt(dir, ["image", "gc", "--grace-period=soon"]);
    expect(bad).toMatchObject({ code: 254 });
    expect(bad.stderr).toContain('time: invalid duration "soon"');
    expect((await rkt(dir, ["image", "gc", "--trees-only", "--images-only"])).code).toBe(254);
  });
});

describe("rkt image cat-manifest", () => {
  it("ACI: tab-indented by default, compact with --pretty-print=false", async () => {
    const { dir, aci } = await populated();
    const p = await rkt(dir, ["image", "cat-manifest", aci]);
    expect(p.code).toBe(0);
    const doc = JSON.parse(p.stdout) as { name: string };
    expect(doc.name).toBe("example.com/hello");
    expect(p.stdout).toBe(`${JSON.stringify(doc, null, "\t")}\n`);
    const c = await rkt(dir, ["image", "cat-manifest", "--pretty-print=false", "example.com/hello"]);
    expect(c.stdout).toBe(`${JSON.stringify(doc)}\n`);
  });

  it("OCI: exact manifest bytes (sha256 = ID) when not pretty", async () => {
    const { dir } = await populated();
    const c = await rkt(dir, ["image", "cat-manifest", "--pretty-print=false", helloOciId.slice(0, 20)]);
    expect(`sha256:${createHash("sha256").update(c.raw).digest("hex")}`).toBe(helloOciId);
    const p = await rkt(dir, ["image", "cat-manifest", helloOciId]);
    expect(p.stdout).toContain('\n\t"schemaVersion": 2');
  });

  it("wrong argument count and unknown images exit 254", async () => {
    const { dir } = await populated();
    expect((await rkt(dir, ["image", "cat-manifest"])).code).toBe(254);
    const r = await rkt(dir, ["image", "cat-manifest", "sha512-0"]);
    expect(r).toMatchObject({ code: 254, stderr: "cat-manifest: image ID too short\n" });
  });
});

describe("rkt image export and extract", () => {
  it("export writes bytes whose sha512 is the ID; refuses to overwrite", async () => {
    const { dir, aci } = await populated();
    const out = join(tmp, `export-${Date.now()}.aci`);
    expect((await rkt(dir, ["image", "export", aci, out])).code).toBe(0);
    expect(`sha512-${createHash("sha512").update(readFileSync(out)).digest("hex").slice(0, 64)}`).toBe(aci);
    const again = await rkt(dir, ["image", "export", aci, out]);
    expect(again).toMatchObject({ code: 254, stderr: "export: output ACI file exists (try --overwrite)\n" });
    expect((await rkt(dir, ["image", "export", "--overwrite", aci, out])).code).toBe(0);
    // OCI images export as an OCI archive that imports back to the same ID.
    const ociOut = join(tmp, `export-${Date.now()}.tar`);
    expect((await rkt(dir, ["image", "export", helloOciId, ociOut])).code).toBe(0);
    const other = mkdtempSync(join(tmp, "store-"));
    expect((await rkt(other, ["fetch", `oci-archive:${ociOut}`])).stdout).toBe(`${helloOciId}\n`);
  });

  it("extract writes manifest + rootfs, or the rootfs alone; refuses / and existing dirs", async () => {
    const { dir, aci } = await populated();
    const out = join(tmp, `extract-${Date.now()}`);
    expect((await rkt(dir, ["image", "extract", aci, out])).code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["manifest", "rootfs"]);
    expect(JSON.parse(readFileSync(join(out, "manifest"), "utf8"))).toMatchObject({
      name: "example.com/hello",
    });
    const again = await rkt(dir, ["image", "extract", aci, out]);
    expect(again).toMatchObject({
      code: 254,
      stderr: "extract: output directory exists (try --overwrite)\n",
    });
    const rootfs = join(tmp, `rootfs-${Date.now()}`);
    expect((await rkt(dir, ["image", "extract", "--rootfs-only", aci, rootfs])).code).toBe(0);
    expect(readdirSync(rootfs)).toEqual(readdirSync(join(out, "rootfs")));
    const root = await rkt(dir, ["image", "extract", "--overwrite", aci, "/"]);
    expect(root).toMatchObject({
      code: 254,
      stderr: "extract: this would delete your root filesystem. Refusing.\n",
    });
  });
});

describe("rkt image fsck", () => {
  it("clean store: exit 0, nothing on stdout; a corrupt blob: a problem line, exit 254; --repair cleans", async () => {
    const { dir } = await populated();
    const ok = await rkt(dir, ["image", "fsck"]);
    expect(ok).toMatchObject({ code: 0, stdout: "" });
    expect(ok.stderr).toMatch(
      /^fsck: checked 4 blob\(s\), 2 image\(s\): 0 problem\(s\), 0 garbage item\(s\)\n$/,
    );
    const blobs = join(dir, "cas", "blobs", "sha512");
    const file = join(blobs, readdirSync(blobs)[0]!);
    const bytes = readFileSync(file);
    bytes[100]! ^= 0xff;
    rmSync(file, { force: true });
    writeFileSync(file, bytes);
    const bad = await rkt(dir, ["image", "fsck"]);
    expect(bad.code).toBe(254);
    expect(bad.stdout).toMatch(/^problem: corrupt-blob sha512:[0-9a-f]+: /m);
    const json = JSON.parse((await rkt(dir, ["image", "fsck", "--format=json"])).stdout) as {
      clean: boolean;
      problems: unknown[];
    };
    expect(json.clean).toBe(false);
    expect(json.problems.length).toBeGreaterThan(0);
    const fixed = await rkt(dir, ["image", "fsck", "--repair"]);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toContain("(repaired)");
    expect(existsSync(file)).toBe(false);
    expect((await rkt(dir, ["image", "fsck"])).code).toBe(0);
  });

  it("reclaimable garbage only (an unreferenced blob): exit 0, listed, and the summary says gc reclaims it", async () => {
    const { dir } = await populated();
    const content = Buffer.from("left behind by a killed fetch\n");
    const hex = createHash("sha256").update(content).digest("hex");
    mkdirSync(join(dir, "cas", "blobs", "sha256"), { recursive: true });
    writeFileSync(join(dir, "cas", "blobs", "sha256", hex), content);
    const r = await rkt(dir, ["image", "fsck"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^garbage: \\S+ sha256:${hex}`, "m"));
    expect(r.stderr).toMatch(
      /0 problem\(s\), 1 garbage item\(s\); the garbage is reclaimable: `rkt image gc`/,
    );
    const json = JSON.parse((await rkt(dir, ["image", "fsck", "--format=json"])).stdout) as {
      ok: boolean;
      clean: boolean;
    };
    expect(json).toMatchObject({ ok: true, clean: false });
  });
});
