// `rkt image sync` between real registries on loopback (two origins, one with htpasswd over
// TLS, and destinations), to an OCI layout and to the store; checked against skopeo sync of the
// same YAML and by skopeo reading what we wrote.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, startRegistry, writeOciLayout, type FileEntry, type Registry } from "@rkt/testkit";
import { runRkt, type RktRun } from "./helpers.js";

const exec = promisify(execFile);
let tmp: string;
let a: Registry;
let b: Registry;
const digests = new Map<string, string>();

const files = (tag: string, size = 200_000): FileEntry[] => [
  { path: "etc", type: "dir" },
  { path: "etc/os-release", type: "file", content: `ID=${tag}\n` },
  { path: `data-${tag}`, type: "file", content: Buffer.alloc(size, tag) },
];

async function publish(reg: Registry, name: string, layers: FileEntry[][]): Promise<void> {
  const dir = join(tmp, `layout-${name.replace(/[/:]/g, "-")}`);
  const img = await writeOciLayout(dir, { layers }, { ref: "x" });
  await pushLayout(dir, name, reg);
  digests.set(`${reg.host}/${name}`, img.descriptor.digest);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-sync-"));
  [a, b] = await Promise.all([startRegistry({ mode: "plain" }), startRegistry({ mode: "basic", tls: true })]);
  const base = files("base");
  await publish(a, "app:v1", [base, files("v1")]);
  await publish(a, "app:v2", [base, files("v2")]);
  await publish(a, "app:old", [base, files("old")]);
  await publish(a, "base:1.0", [base]);
  await publish(a, "base:2.0", [base, files("b2")]);
  await publish(b, "tool:1", [files("tool")]);
}, 180_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function config(name: string, extra = ""): string {
  const file = join(tmp, name);
  writeFileSync(
    file,
    [
      `${a.host}:`,
      "  images:",
      '    app: ["v1", "v2"]',
      '    missing: ["v1"]',
      "  images-by-tag-regex:",
      '    base: "^1\\\\."',
      "  tls-verify: false",
      `${b.host}:`,
      "  images:",
      "    tool: []",
      "  tls-verify: false",
      "  credentials:",
      `    username: ${b.username}`,
      `    password: ${b.password}`,
      extra,
    ].join("\n"),
  );
  return file;
}

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=image,http", "image", "sync", ...args], { cwd: tmp });
}

interface Result {
  source: string;
  destination: string;
  status: string;
  digest?: string;
  bytes?: number;
  error?: { code: string; message: string };
}

const byName = (rs: Result[]) =>
  Object.fromEntries(rs.map((r) => [r.source.replace(/^docker:\/\/[^/]+\//, ""), r]));

describe("rkt image sync", () => {
  it("to a registry: keeps going past a failing image, then a re-sync sends nothing; a moved tag sends only new blobs", async () => {
    const dest = await startRegistry({ mode: "plain" });
    try {
      const dir = mkdtempSync(join(tmp, "store-"));
      const file = config("sync.yaml");
      const first = await rkt(dir, ["--config", file, "--format=json", `docker://${dest.host}/mirror`]);
      expect(first.code).toBe(254);
      expect(first.stderr).toMatch(/1 of 5 images failed to sync: docker:\/\/.*\/missing:v1/);
      const r1 = byName(JSON.parse(first.stdout) as Result[]);
      expect(Object.keys(r1).sort()).toEqual(["app:v1", "app:v2", "base:1.0", "missing:v1", "tool:1"]);
      expect(r1["missing:v1"]).toMatchObject({ status: "failed", error: { code: "RKT_NOT_FOUND" } });
      for (const k of ["app:v1", "app:v2", "base:1.0"]) {
        expect(r1[k]).toMatchObject({ status: "copied", digest: digests.get(`${a.host}/${k}`) });
        expect(r1[k]!.destination).toBe(`docker://${dest.host}/mirror/${k}`);
      }
      expect(r1["tool:1"]).toMatchObject({ status: "copied", digest: digests.get(`${b.host}/tool:1`) });
      // The shared base layer went once: the second image of it sent less.
      const { stdout } = await exec("skopeo", [
        "inspect",
        "--tls-verify=false",
        `docker://${dest.host}/mirror/app:v2`,
      ]);
      expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(digests.get(`${a.host}/app:v2`));
      const again = await rkt(dir, ["--config", file, "--format=json", `docker://${dest.host}/mirror`]);
      const r2 = JSON.parse(again.stdout) as Result[];
      expect(
        r2.filter((r) => r.status !== "failed").every((r) => r.status === "unchanged" && r.bytes === 0),
      ).toBe(true);
      // app:v1 moves at the origin: only what the destination lacks is sent.
      await publish(a, "app:v1", [files("base"), files("v1-new", 50_000)]);
      const moved = byName(
        JSON.parse(
          (await rkt(dir, ["--config", file, "--format=json", `docker://${dest.host}/mirror`])).stdout,
        ) as Result[],
      );
      expect(moved["app:v1"]).toMatchObject({ status: "copied", digest: digests.get(`${a.host}/app:v1`) });
      expect(moved["app:v1"]!.bytes).toBeLessThan(100_000);
      expect(moved["app:v2"]).toMatchObject({ status: "unchanged" });
      const dry = await rkt(dir, [
        "--config",
        file,
        "--dry-run",
        "--keep-going",
        `docker://${dest.host}/other`,
      ]);
      expect(dry.stdout).toMatch(/^planned docker:\/\/.*\/app:v1 -> docker:\/\/.*\/other\/app:v1$/m);
      await expect(
        exec("skopeo", ["inspect", "--tls-verify=false", `docker://${dest.host}/other/app:v1`]),
      ).rejects.toThrow();
    } finally {
      await dest.stop();
    }
  });

  it("matches skopeo sync of the same YAML, digest for digest", async () => {
    const ours = await startRegistry({ mode: "plain" });
    const theirs = await startRegistry({ mode: "plain" });
    try {
      const dir = mkdtempSync(join(tmp, "store-"));
      const file = config("both.yaml");
      await rkt(dir, ["--config", file, "-q", `docker://${ours.host}`]);
      await exec("skopeo", [
        "sync",
        "--keep-going",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        file,
        theirs.host,
      ]).catch(
        () => undefined, // missing:v1 fails there too
      );
      for (const repo of ["app:v1", "app:v2", "base:1.0", "tool:1"]) {
        const inspect = async (r: Registry) =>
          JSON.parse(
            (await exec("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${r.host}/${repo}`]))
              .stdout,
          ) as unknown;
        expect(await inspect(ours)).toEqual(await inspect(theirs));
      }
    } finally {
      await ours.stop();
      await theirs.stop();
    }
  });

  it("to an OCI layout and to the store; again, nothing is downloaded", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const layout = join(tmp, "media");
    const src = `docker://${a.host}/app`;
    const l1 = await rkt(dir, ["--src", src, "--src-tls-verify=false", "--format=json", `oci:${layout}`]);
    expect(l1.stderr).toBe("");
    expect(l1.code).toBe(0);
    expect((JSON.parse(l1.stdout) as Result[]).map((r) => r.status)).toEqual(["copied", "copied", "copied"]);
    const { stdout } = await exec("skopeo", ["inspect", `oci:${layout}:${a.host}/app:v2`]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(digests.get(`${a.host}/app:v2`));
    const s1 = await rkt(dir, ["--src", src, "--src-tls-verify=false", "--format=json", "rkt:"]);
    expect(s1.code).toBe(0);
    const stored = JSON.parse(s1.stdout) as Result[];
    expect(stored.every((r) => r.status === "copied")).toBe(true);
    const s2 = JSON.parse(
      (await rkt(dir, ["--src", src, "--src-tls-verify=false", "--format=json", "rkt:"])).stdout,
    ) as Result[];
    expect(s2.every((r) => r.status === "unchanged" && r.bytes === 0)).toBe(true);
    // Into the store from the htpasswd+TLS origin: the entry's credentials and tls-verify apply
    // (no global --insecure-options=http or credentials file).
    const yaml = join(tmp, "store.yaml");
    writeFileSync(
      yaml,
      `${b.host}:\n  images:\n    tool: ["1"]\n  tls-verify: false\n  credentials:\n    username: ${b.username}\n    password: ${b.password}\n`,
    );
    const own = await runRkt(
      ["--dir", dir, "--insecure-options=image", "image", "sync", "--config", yaml, "--format=json", "rkt:"],
      { cwd: tmp },
    );
    expect(own.stderr).toBe("image: warning: image signature verification has been disabled\n");
    expect(own.code).toBe(0);
    expect(JSON.parse(own.stdout)).toMatchObject([
      { status: "copied", digest: digests.get(`${b.host}/tool:1`) },
    ]);
  });

  it("refuses a config with an unknown key or a bad regex before anything moves", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const bad = join(tmp, "bad.yaml");
    writeFileSync(bad, `${a.host}:\n  images:\n    app: [v1]\n  tls-verfy: false\n`);
    const r = await rkt(dir, ["--config", bad, "docker://127.0.0.1:9/x"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toMatch(/bad\.yaml: \$\[".*"\]\.tls-verfy: unknown key/);
    writeFileSync(bad, `${a.host}:\n  images-by-tag-regex:\n    app: "([a-"\n`);
    const re = await rkt(dir, ["--config", bad, "docker://127.0.0.1:9/x"]);
    expect(re.code).toBe(254);
    expect(re.stderr).toMatch(/images-by-tag-regex\.app: bad regex/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
