// `rkt fetch --convert=aci` and `rkt image convert` of transports, against a real registry on
// loopback: a conversion is cached by the source manifest digest and never repeated for an
// unchanged image; files go out under docker2aci's names.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { runRkt, type RktRun } from "./helpers.js";

let tmp: string;
let reg: Registry;

const layers = (tag: string) => [
  [
    { path: "etc", type: "dir" as const },
    { path: "etc/os-release", type: "file" as const, content: `ID=${tag}\n` },
  ],
];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-convert-fetch-"));
  reg = await startRegistry({ mode: "plain" });
  await writeOciLayout(
    join(tmp, "v1"),
    { layers: layers("one"), config: { Cmd: ["/bin/sh"] } },
    { ref: "v1" },
  );
  await writeOciLayout(
    join(tmp, "v2"),
    { layers: layers("two"), config: { Cmd: ["/bin/sh"] } },
    { ref: "v1" },
  );
  await pushLayout(join(tmp, "v1"), "app:v1", reg);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=image,http", ...args], { cwd: tmp });
}

interface Summary {
  id: string;
  kind: string;
  convertedFrom?: string;
  cached?: boolean;
}

describe("rkt fetch --convert=aci", () => {
  it("stores the ACI, reuses it for an unchanged tag, converts again when the tag moves", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const args = ["fetch", "--no-render", "--convert=aci", "--format=json", `docker://${reg.host}/app:v1`];
    const first = await rkt(dir, args);
    expect(first.code).toBe(0);
    const [a] = JSON.parse(first.stdout) as Summary[];
    expect(a).toMatchObject({ kind: "aci", cached: false });
    expect(a!.id).toMatch(/^sha512-/);
    const again = await rkt(dir, args);
    const [b] = JSON.parse(again.stdout) as Summary[];
    expect(b).toMatchObject({ id: a!.id, cached: true, convertedFrom: a!.convertedFrom });
    await pushLayout(join(tmp, "v2"), "app:v1", reg);
    const moved = await rkt(dir, args);
    const [c] = JSON.parse(moved.stdout) as Summary[];
    expect(c).toMatchObject({ cached: false });
    expect(c!.id).not.toBe(a!.id);
    expect(c!.convertedFrom).not.toBe(a!.convertedFrom);
    const list = await rkt(dir, ["image", "list", "--format=json"]);
    const kinds = (JSON.parse(list.stdout) as { kind?: string; id: string }[]).map((i) => i.id);
    expect(kinds).toEqual(expect.arrayContaining([a!.id, c!.id]));
    expect((await rkt(dir, ["fetch", "--convert=zip", "x"])).code).toBe(254);
  });

  it("image convert docker:// -o DIR streams files named as docker2aci; oci-archive: into the store", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const out = join(tmp, "out");
    const r = await rkt(dir, ["image", "convert", "--no-squash", "-o", out, `docker://${reg.host}/app:v1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith(".aci"))).toHaveLength(1);
    // Nothing was stored for the file conversion.
    expect((await rkt(dir, ["image", "list", "--format=json"])).stdout.trim()).toBe("null");
    const archive = join(tmp, "app.tar");
    const copied = await rkt(dir, [
      "image",
      "copy",
      "-q",
      `oci:${join(tmp, "v1")}:v1`,
      `oci-archive:${archive}:v1`,
    ]);
    expect(copied.code).toBe(0);
    const stored = await rkt(dir, ["image", "convert", `oci-archive:${archive}:v1`]);
    expect(stored.stderr).not.toMatch(/error/i);
    expect(stored.code).toBe(0);
    expect(stored.stdout.trim()).toMatch(/^sha512-/);
    const twice = await rkt(dir, ["image", "convert", `oci-archive:${archive}:v1`]);
    expect(twice.stdout).toBe(stored.stdout);
  });
});
