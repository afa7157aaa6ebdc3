// docker2aci's `docker://` argument against a real registry on loopback: the image is converted
// straight from the registry, named as docker2aci names remote images, with the same files as
// the conversion of the same image from its OCI layout.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { docker2aciMain } from "../src/index.js";
import { listAci, names } from "./helpers.js";

let dir: string;
let reg: Registry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "d2a-registry-"));
  reg = await startRegistry({ mode: "plain" });
  await writeOciLayout(
    join(dir, "src", "app"),
    {
      layers: [
        [
          { path: "etc", type: "dir" },
          { path: "etc/a", type: "file", content: "a" },
        ],
        [
          { path: "etc/.wh.a", type: "file", content: "" },
          { path: "etc/b", type: "file", content: "b" },
        ],
      ],
      config: { Cmd: ["/bin/true"], Env: ["A=1"] },
    },
    { ref: "v1" },
  );
  await pushLayout(join(dir, "src", "app"), "myorg/app:v1", reg);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function run(cwd: string, args: string[]) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on("data", (c: Buffer) => out.push(c));
  const stderr = new PassThrough().on("data", (c: Buffer) => err.push(c));
  const code = await docker2aciMain(args, { stdout, stderr, cwd, env: {} });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe("docker2aci docker://", () => {
  it("converts from the registry, named like docker2aci, with the files of the layout's conversion", async () => {
    const out = await mkdtemp(join(dir, "out-"));
    const r = await run(out, ["-insecure-allow-http", `docker://${reg.host}/myorg/app:v1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Generated ACI\(s\):\nmyorg-app-v1\.aci\n$/);
    const remote = await listAci(await readFile(join(out, "myorg-app-v1.aci")));
    // An AC name has no ":": the port separator becomes "_", as docker2aci writes it.
    expect(remote.manifest.name).toBe(`${reg.host.replace(":", "_")}/myorg/app`);
    const ann = Object.fromEntries((remote.manifest.annotations ?? []).map((a) => [a.name, a.value]));
    expect(ann["appc.io/docker/registryurl"]).toBe(reg.host);
    expect(ann["appc.io/docker/originalname"]).toBe(`${reg.host}/myorg/app:v1`);
    // The upper layer's whiteout removed etc/a.
    expect(names(remote.entries)).toContain("etc/b");
    expect(names(remote.entries)).not.toContain("etc/a");
    const fromLayout = await mkdtemp(join(dir, "layout-"));
    expect((await run(fromLayout, [join(dir, "src", "app")])).code).toBe(0);
    const [file] = await readdir(fromLayout);
    const local = await listAci(await readFile(join(fromLayout, file!)));
    expect(names(remote.entries)).toEqual(names(local.entries));
  });

  it("-nosquash writes one ACI per layer; plain http without -insecure-allow-http is refused", async () => {
    const out = await mkdtemp(join(dir, "out-"));
    const r = await run(out, ["-nosquash", "-insecure-allow-http", `docker://${reg.host}/myorg/app:v1`]);
    expect(r.code).toBe(0);
    expect((await readdir(out)).filter((f) => f.endsWith(".aci"))).toHaveLength(2);
    const refused = await run(await mkdtemp(join(dir, "out-")), [`docker://${reg.host}/myorg/app:v1`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^Error: conversion error: .*\n$/);
  });
});
