// The docker2aci drop-in command, run in process on `docker save` archives and OCI layouts.
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeDockerArchive, writeOciLayout } from "@rkt/testkit";
import { docker2aciMain, parseGoFlags } from "../src/index.js";
import { listAci } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "d2a-cli-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on("data", (c: Buffer) => out.push(c));
  const stderr = new PassThrough().on("data", (c: Buffer) => err.push(c));
  const code = await docker2aciMain(args, { stdout, stderr, cwd: dir });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

const spec = {
  layers: [
    [
      { path: "etc", type: "dir" as const },
      { path: "etc/a", type: "file" as const, content: "a" },
    ],
    [{ path: "etc/b", type: "file" as const, content: "b" }],
  ],
  config: { Cmd: ["/bin/true"], Volumes: { "/data": {} }, ExposedPorts: { "53/udp": {} } },
};

describe("docker2aci command", () => {
  it("converts a docker save archive like docker2aci: file name, summary, manifest", async () => {
    await writeDockerArchive(join(dir, "app.docker"), spec, { repoTags: ["myorg/app:1.0"] });
    const r = await run(["app.docker"]);
    expect(r).toEqual({
      code: 0,
      stderr: "",
      stdout: [
        "",
        "Converted volumes:",
        '\tname: "volume-data", path: "/data", readOnly: false',
        "",
        "Converted ports:",
        '\tname: "53-udp", protocol: "udp", port: 53, count: 1, socketActivated: false',
        "",
        "Generated ACI(s):",
        "myorg-app-1.0.aci",
        "",
      ].join("\n"),
    });
    const { manifest, entries } = await listAci(await readFile(join(dir, "myorg-app-1.0.aci")));
    expect(manifest.name).toBe("myorg/app");
    expect(manifest.labels?.find((l) => l.name === "version")?.value).toBe("1.0");
    expect(manifest.annotations?.some((a) => a.name === "appc.io/docker/registryurl")).toBe(false);
    expect(entries.map((e) => e.name)).toContain("rootfs/etc/b");
  });

  it("-nosquash -compression=none writes one ACI per layer, listed top first", async () => {
    await writeDockerArchive(join(dir, "app.docker"), spec, { repoTags: ["myorg/app:1.0"] });
    const r = await run(["-nosquash", "-compression=none", "app.docker"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("Generated ACI(s):\n")[1]).toBe(
      "myorg-app-1.0-linux-amd64-0.aci\nmyorg-app-1.0-linux-amd64-1.aci\n",
    );
    expect((await readdir(dir)).sort()).toEqual([
      "app.docker",
      "myorg-app-1.0-linux-amd64-0.aci",
      "myorg-app-1.0-linux-amd64-1.aci",
    ]);
    const top = await readFile(join(dir, "myorg-app-1.0-linux-amd64-0.aci"));
    expect(top.subarray(257, 262).toString()).toBe("ustar");
  });

  it("-image selects by name and records it as the original name and registry", async () => {
    await writeDockerArchive(join(dir, "bb.tar"), spec, { repoTags: ["busybox:latest"] });
    const r = await run(["--image", "busybox", "bb.tar"]);
    expect(r.code).toBe(0);
    const { manifest } = await listAci(await readFile(join(dir, "library-busybox-latest.aci")));
    expect(manifest.name).toBe("registry-1.docker.io/library/busybox");
    const ann = Object.fromEntries((manifest.annotations ?? []).map((a) => [a.name, a.value]));
    expect(ann["appc.io/docker/originalname"]).toBe("busybox");
    expect(ann["appc.io/docker/registryurl"]).toBe("registry-1.docker.io");
    const missing = await run(["-image=nothere:1", "bb.tar"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Error: conversion error: .*nothere/);
  });

  it("reads a gzipped archive by streaming it, with the same result as the plain one", async () => {
    await writeDockerArchive(join(dir, "app.docker"), spec, { repoTags: ["myorg/app:1.0"] });
    await writeFile(join(dir, "app.docker.gz"), gzipSync(await readFile(join(dir, "app.docker"))));
    expect((await run(["-compression=none", "app.docker"])).code).toBe(0);
    const plain = await readFile(join(dir, "myorg-app-1.0.aci"));
    await rm(join(dir, "myorg-app-1.0.aci"));
    expect((await run(["-compression=none", "-image=myorg/app:1.0", "app.docker.gz"])).code).toBe(0);
    const viaGzip = await listAci(await readFile(join(dir, "myorg-app-1.0.aci")));
    const viaPlain = await listAci(plain);
    expect(viaGzip.entries).toEqual(viaPlain.entries);
  });

  it("indexes archives whose member names need PAX or GNU long names", async () => {
    const long = `${"d".repeat(120)}/${"e".repeat(120)}`;
    await writeDockerArchive(
      join(dir, "long.docker"),
      { layers: [[{ path: long, type: "file", content: "deep" }]] },
      { repoTags: ["long/name:1"] },
    );
    expect((await run(["long.docker"])).code).toBe(0);
    const { entries } = await listAci(await readFile(join(dir, "long-name-1.aci")));
    expect(entries.find((e) => e.name === `rootfs/${long}`)?.content).toBe("deep");
  });

  it("converts an OCI layout directory, named after it", async () => {
    await writeOciLayout(join(dir, "ocilayout"), spec);
    const r = await run(["ocilayout"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Generated ACI\(s\):\nocilayout-latest\.aci\n$/);
  });

  it("prints the version, refuses bad usage with status 2 and -image with docker:// with status 1", async () => {
    expect((await run(["-version"])).stdout).toMatch(/^docker2aci version .+\nappc version 0\.8\.11\n$/);
    const bad = await run(["-bogus", "x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^flag provided but not defined: -bogus\nUsage of docker2aci:/);
    expect((await run([])).code).toBe(2);
    const withImage = await run(["-image", "x", "docker://busybox"]);
    expect(withImage.stderr).toBe("Error: flag --image works only with files.\n");
    expect((await run(["-compression", "xz", "f"])).stderr).toBe("Error: unknown compression method: xz\n");
    expect(await readdir(dir)).toEqual([]);
  });

  it("parses flags as Go's flag package", () => {
    expect(parseGoFlags(["--nosquash=false", "-debug", "-insecure-skip-verify", "f", "-nosquash"])).toEqual({
      flags: {
        nosquash: false,
        insecureSkipVerify: true,
        insecureAllowHttp: false,
        debug: true,
        version: false,
        help: false,
        image: "",
        compression: "gzip",
      },
      args: ["f", "-nosquash"],
    });
    expect(() => parseGoFlags(["-image"])).toThrow("flag needs an argument: -image");
    expect(() => parseGoFlags(["-debug=maybe"])).toThrow(/invalid boolean value/);
  });
});
