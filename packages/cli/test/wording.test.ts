// Messages that fit what the user gave: OCI images are images (rkt's "aci" wording stays for
// ACIs), docker's short names resolve, the input actually missing is the one named, and no
// library's wording reaches the user (its text stays in the --debug cause chain).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRkt, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloOci = join(repo, "examples", "hello-oci");

let tmp: string;
let globals: string[];
const rkt = (args: string[]): Promise<RktRun> => runRkt([...globals, ...args], { cwd: tmp });

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-wording-"));
  globals = [
    `--dir=${join(tmp, "data")}`,
    `--local-config=${join(tmp, "etc")}`,
    `--system-config=${join(tmp, "lib")}`,
  ];
  execFileSync("skopeo", [
    "copy",
    "-q",
    `oci:${helloOci}`,
    `docker-archive:${join(tmp, "hello.tar")}:hello:v1`,
  ]);
  execFileSync("skopeo", [
    "copy",
    "-q",
    `oci:${helloOci}`,
    `docker-archive:${join(tmp, "app.tar")}:user/app:latest`,
  ]);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("docker short names in store lookups", () => {
  it("hello:v1 is docker.io/library/hello:v1 and user/app is docker.io/user/app:latest", async () => {
    const f = await rkt(["fetch", "--no-render", "docker-archive:hello.tar", "docker-archive:app.tar"]);
    expect(f.code, f.stderr).toBe(0);
    const [hello, app] = f.stdout.trim().split("\n");
    for (const [name, id] of [
      ["hello:v1", hello],
      ["docker.io/library/hello:v1", hello],
      ["user/app", app],
      ["user/app:latest", app],
    ] as const) {
      const r = await rkt(["image", "cat-manifest", "--pretty-print=false", name]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(`sha256:${execFileSync("sha256sum", { input: r.stdout }).toString().split(" ")[0]!}`).toBe(id);
    }
  });

  it("a missing tag or name is an image not found, in image words; ACI names keep rkt's", async () => {
    expect((await rkt(["image", "cat-manifest", "hello:v2"])).stderr).toBe(
      'cat-manifest: no image "hello:v2" in the local store (docker.io/library/hello has tag v1)\n',
    );
    expect((await rkt(["image", "cat-manifest", "nothing"])).stderr).toBe(
      'cat-manifest: no image "nothing:latest" in the local store (looked for docker.io/library/nothing:latest and for an ACI named "nothing")\n',
    );
    expect((await rkt(["image", "cat-manifest", "example.com/nope"])).stderr).toBe(
      'cat-manifest: cannot find aci satisfying name: "example.com/nope" and labels: "" in the local store\n',
    );
  });

  it("an OCI image is removed as an image", async () => {
    const r = await rkt(["image", "rm", "user/app"]);
    expect(r.stdout).toMatch(/^successfully removed image: "sha256:[0-9a-f]{64}"\n$/);
  });
});

describe("errors name what is wrong with the input", () => {
  it("a missing ACI file is reported as missing, not its signature", async () => {
    const r = await rkt(["fetch", "./missing.aci"]);
    expect(r).toMatchObject({ code: 254, stdout: "" });
    expect(r.stderr).toBe(
      `fetch: error opening ACI file: ${join(tmp, "missing.aci")}: no such file or directory\n`,
    );
  });

  it("random bytes given as an ACI: our words; the tar reader's only under --debug", async () => {
    writeFileSync(
      join(tmp, "random.aci"),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)),
    );
    const r = await rkt(["--insecure-options=image", "fetch", "random.aci"]);
    expect(r.code).toBe(254);
    expect(r.stderr.split("\n").filter((l) => l.startsWith("fetch:"))).toEqual([
      `fetch: ${join(tmp, "random.aci")}: not a tar archive, nor gzip, bzip2, xz or zstd data: invalid tar header`,
    ]);
    expect(r.stderr).not.toMatch(/Maybe|gunzipped/);
    const d = await rkt(["--debug", "--insecure-options=image", "fetch", "random.aci"]);
    expect(d.stderr).toMatch(/└─.*Invalid tar header/);
    expect(d.stderr).toContain("fetch: error code: RKT_INVALID_ARCHIVE");
    const a = await rkt(["fetch", "docker-archive:random.aci"]);
    expect(a.stderr).toBe(
      "fetch: docker-archive:random.aci: not a readable tar archive: invalid tar header\n",
    );
  });

  it("a registry image without a policy.json says where one goes, not that verification is unsupported", async () => {
    // Admission comes before any network access: nothing listens on this port.
    const r = await rkt(["fetch", "docker://127.0.0.1:9/app:v1"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      `fetch: no signature policy for docker images: none of ${join(tmp, "etc", "policy.json")}, ${join(tmp, "lib", "policy.json")} exists; write a policy.json (containers-policy.json(5)) there or give --signature-policy FILE, or fetch without verification with --insecure-options=image\n`,
    );
    expect(r.stderr).not.toContain("not supported");
  });
});
