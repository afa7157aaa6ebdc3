// `rkt run | prepare | run-prepared | list | status | rm | gc | cat-manifest` end to end as root with
// the real runc and the fly stage1, on the bundled example ACI and OCI layout (a static binary that
// prints /etc/hello.txt, its arguments and its uid).
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRunArgs } from "../src/commands/run-args.js";
import { mountsUnder, runRkt, type RktRun } from "./helpers.js";

const examples = fileURLToPath(new URL("../../../examples/", import.meta.url));
const aci = join(examples, "hello.aci");
const layout = `oci:${join(examples, "hello-oci")}`;
let tmp: string;
let n = 0;

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=image", ...args], { cwd: tmp });
}

function newDir(): string {
  return join(tmp, `d${n++}`);
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-run-"));
});
afterAll(() => undefined);

describe("parseRunArgs", () => {
  it("splits pod flags, images, app flags, arguments and ---", () => {
    const r = parseRunArgs([
      "--net=host",
      "--volume=data,kind=host,source=/srv,readOnly=true",
      "--set-env=A=1",
      "a.aci",
      "--exec=/bin/x",
      "--user",
      "daemon",
      "--mount=volume=data,target=/data",
      "--",
      "--not-a-flag",
      "x",
      "---",
      "b",
      "--name=second",
    ]);
    expect(r.net).toBe("host");
    expect(r.volumes).toEqual([{ name: "data", kind: "host", source: "/srv", readOnly: true }]);
    expect(r.setEnv).toEqual([["A", "1"]]);
    expect(r.images.map((i) => i.image)).toEqual(["a.aci", "b"]);
    expect(r.images[0]).toMatchObject({
      exec: "/bin/x",
      user: "daemon",
      args: ["--not-a-flag", "x"],
      mounts: [{ volume: "data", path: "/data" }],
    });
    expect(r.images[1]).toMatchObject({ name: "second" });
  });

  it("refuses pod flags after an image, unknown flags, CNI networks and bad volumes", () => {
    expect(() => parseRunArgs(["a", "--net=host"])).toThrow(/pod flag: give it before the first image/);
    expect(() => parseRunArgs(["--bogus", "a"])).toThrow(/unknown flag: --bogus/);
    expect(() => parseRunArgs(["--net=cni0", "a"])).toThrow(/no CNI networks/);
    expect(() => parseRunArgs(["--volume=v,source=/x", "a"])).toThrow(/kind=host or kind=empty/);
    expect(() => parseRunArgs(["--mount=volume=v,target=rel", "a"])).toThrow(/ABSOLUTE/);
    expect(() => parseRunArgs([])).toThrow(/at least one image/);
  });
});

describe.skipIf(process.getuid?.() !== 0)("rkt run as root", () => {
  it("runs the example ACI with runc: output, arguments, exit status 0, no mounts left", async () => {
    const dir = newDir();
    const r = await rkt(dir, ["--debug", "run", aci, "--", "one", "two"]);
    expect(r.stderr).toContain("stage1: runc");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("Hello from a bundled rkt example image.\nargs: one two\nuid: 0\n");
    expect(mountsUnder(dir)).toEqual([]);
  });

  it("runs the example with the fly stage1, by rkt's stage1 name", async () => {
    const dir = newDir();
    const r = await rkt(dir, ["run", "--stage1-name=coreos.com/rkt/stage1-fly", aci, "--", "fly"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("args: fly\n");
    expect(mountsUnder(dir)).toEqual([]);
  });

  it("runs the OCI layout with --user, and a host volume mounted over /etc", async () => {
    const dir = newDir();
    const etc = join(tmp, `etc${n++}`);
    mkdirSync(etc);
    writeFileSync(join(etc, "hello.txt"), "from the host volume\n");
    const r = await rkt(dir, [
      "run",
      `--volume=etc,kind=host,source=${etc},readOnly=true`,
      layout,
      "--user=1000",
      "--mount=volume=etc,target=/etc",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("from the host volume\nargs:\nuid: 1000\n");
  });

  it("fails with one line and 254 for a missing exec, a missing volume source, an unknown user", async () => {
    const dir = newDir();
    const exec = await rkt(dir, ["run", aci, "--exec=/nope"]);
    expect(exec.code).toBe(254);
    expect(exec.stderr).toMatch(/run: app "hello": exec "\/nope" is not an executable file in the image\n$/);
    const vol = await rkt(dir, ["run", "--volume=v,kind=host,source=/does/not/exist", aci]);
    expect(vol.code).toBe(254);
    expect(vol.stderr).toContain("host source /does/not/exist does not exist");
    const user = await rkt(dir, ["run", layout, "--user=nosuchuser"]);
    expect(user.code).toBe(254);
    expect(user.stderr).toContain('"nosuchuser"');
    expect(mountsUnder(dir)).toEqual([]);
  });

  it("prepare, run-prepared, list, status, cat-manifest; image rm refused until gc removes the pod", async () => {
    const dir = newDir();
    const prep = await rkt(dir, ["prepare", aci]);
    expect(prep.code, prep.stderr).toBe(0);
    const uuid = prep.stdout.trim();
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    const listed = JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout) as { state: string }[];
    expect(listed.map((p) => p.state)).toEqual(["prepared"]);
    const manifest = JSON.parse((await rkt(dir, ["cat-manifest", uuid.slice(0, 8)])).stdout) as {
      acKind: string;
    };
    expect(manifest.acKind).toBe("PodManifest");
    const trees = readdirSync(join(dir, "cas", "trees"));

    const run = await rkt(dir, ["run-prepared", uuid.slice(0, 6), "--net=none"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("Hello from a bundled rkt example image.");
    const status = await rkt(dir, ["status", uuid]);
    expect(status.stdout).toContain("state=exited\n");
    expect(status.stdout).toContain("app-hello=0\n");

    // A second pod of the same image reuses the rendered tree.
    expect((await rkt(dir, ["run", aci])).code).toBe(0);
    expect(readdirSync(join(dir, "cas", "trees"))).toEqual(trees);

    const rm = await rkt(dir, ["image", "rm", "example.com/hello"]);
    expect(rm.code).toBe(254);
    expect(rm.stderr).toContain(`pod-${uuid}`);
    const gc = await rkt(dir, ["gc", "--grace-period=0s"]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toContain(uuid);
    expect(JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout)).toEqual([]);
    expect((await rkt(dir, ["image", "rm", "example.com/hello"])).code).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
  });

  it("an OCI image converted to an ACI (rkt image convert) runs like the original", async () => {
    const dir = newDir();
    const oci = await rkt(dir, ["fetch", "--full", layout]);
    expect(oci.code, oci.stderr).toBe(0);
    const conv = await rkt(dir, ["image", "convert", oci.stdout.trim()]);
    expect(conv.code, conv.stderr).toBe(0);
    const aciId = conv.stdout.trim();
    expect(aciId).toMatch(/^sha512-/);
    const original = await rkt(dir, ["run", oci.stdout.trim(), "--user=1000", "--", "a"]);
    const converted = await rkt(dir, ["run", aciId, "--user=1000", "--", "a"]);
    expect(original.code, original.stderr).toBe(0);
    expect(converted.code, converted.stderr).toBe(0);
    expect(converted.stdout).toBe(original.stdout);
    expect(converted.stdout).toBe("Hello from a bundled rkt example image.\nargs: a\nuid: 1000\n");
  });

  it("rm removes an exited pod and refuses an unknown UUID", async () => {
    const dir = newDir();
    const file = join(tmp, `uuid${n++}`);
    expect((await rkt(dir, ["run", `--uuid-file-save=${file}`, aci])).code).toBe(0);
    const uuid = readFileSync(file, "utf8").trim();
    const rm = await rkt(dir, ["rm", uuid]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe(`${uuid}\n`);
    const again = await rkt(dir, ["rm", uuid]);
    expect(again.code).toBe(254);
    expect(again.stderr).toContain("no matches found");
  });
});
