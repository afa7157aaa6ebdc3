// `rkt image save --bundle`, `rkt image bundle inspect` and `rkt image load` with the built binary
// between machines that each have their own store, keystore and policy.json; keys made by GnuPG,
// images signed by `rkt image sign`. Covers the fingerprint review of `--trust-bundle-keys`, plain
// OCI and docker archives, and a load SIGKILLed half-way then run again.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buffer } from "node:stream/consumers";
import { writeAci } from "@rkt/appc";
import { gnupgHome, randomLayer, writeOciLayout, type GnupgHome } from "@rkt/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "commands", "image-bundle.js"));

let tmp: string;
let gnupg: GnupgHome;
let alicePub: string;
let acmePub: string;
let bundle: string;
let bigBundle: string;
const ids = new Map<string, string>();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
type Rkt = (args: string[]) => Run;

let n = 0;
// A machine: its own --dir, --local-config and --system-config.
function machine(): { rkt: Rkt; args: string[]; etc: string; dir: string } {
  const d = join(tmp, `m-${n++}`);
  const args = [
    `--dir=${join(d, "data")}`,
    `--local-config=${join(d, "etc")}`,
    `--system-config=${join(d, "lib")}`,
  ];
  mkdirSync(join(d, "etc"), { recursive: true });
  const rkt: Rkt = (a) => {
    const r = spawnSync(process.execPath, [bin, ...args, ...a], { cwd: tmp, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return { rkt, args, etc: join(d, "etc"), dir: join(d, "data") };
}

// Images under example.com/app must be signed by Alice; local archives import as they are.
function policy(etc: string): void {
  const signed = [{ type: "signedBy", keyType: "GPGKeys", keyPath: alicePub }];
  writeFileSync(
    join(etc, "policy.json"),
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: { "example.com/app": signed },
        "oci-archive": { "": [{ type: "insecureAcceptAnything" }] },
        "docker-archive": { "": [{ type: "insecureAcceptAnything" }] },
      },
    }),
  );
}

async function aci(name: string): Promise<Buffer> {
  const labels = [
    { name: "version", value: "1.0" },
    { name: "os", value: "linux" },
    { name: "arch", value: "amd64" },
  ];
  const manifest = { acKind: "ImageManifest", acVersion: "0.8.11", name, labels };
  return buffer(
    writeAci(JSON.stringify(manifest), [{ header: { name: "t", type: "file" as const }, body: "t\n" }]),
  );
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-bundle-cli-"));
  if (!built) return;
  gnupg = gnupgHome(join(tmp, "gnupg"));
  gnupg.generateKey("Alice Releaser <alice@example.com>");
  gnupg.generateKey("Acme Tools <acme@example.com>");
  alicePub = join(tmp, "alice.pub.asc");
  writeFileSync(alicePub, gnupg.exportKey("alice@example.com"));
  acmePub = join(tmp, "acme.pub.asc");
  writeFileSync(acmePub, gnupg.exportKey("acme@example.com"));
  const alice = join(tmp, "alice.key");
  writeFileSync(alice, gnupg.gpg(["--armor", "--export-secret-keys", "alice@example.com"]));
  const sender = machine();
  policy(sender.etc);
  const la = join(tmp, "lookaside");
  const store = (layout: string, name: string): string => {
    const f = sender.rkt(["--insecure-options=image", "fetch", `oci:${layout}:${name}`]);
    expect(f.code, f.stderr).toBe(0);
    const id = f.stdout.trim();
    expect(sender.rkt(["image", "sign", id, "--key", alice, "--lookaside", la]).code).toBe(0);
    ids.set(name, id);
    return id;
  };
  for (const x of ["one", "two"]) {
    const dir = join(tmp, `layout-${x}`);
    await writeOciLayout(
      dir,
      { layers: [[{ path: `${x}.txt`, type: "file", content: `${x}\n` }]] },
      { ref: `example.com/app/${x}:1` },
    );
    store(dir, `example.com/app/${x}:1`);
  }
  const tool = join(tmp, "tool.aci");
  const bytes = await aci("example.com/tool");
  writeFileSync(tool, bytes);
  writeFileSync(`${tool}.asc`, gnupg.sign("acme@example.com", bytes));
  expect(
    sender.rkt(["trust", "--prefix", "example.com/tool", "--skip-fingerprint-review", acmePub]).code,
  ).toBe(0);
  bundle = join(tmp, "bundle.tar");
  const s = sender.rkt([
    "image",
    "save",
    "--bundle",
    "--lookaside",
    la,
    "-o",
    bundle,
    "example.com/app/one:1",
    "example.com/app/two:1",
    tool,
  ]);
  expect(s.code, s.stderr).toBe(0);
  expect(s.stderr).toBe("");
  // Four 24 MiB images for the interrupted load.
  for (const x of ["b0", "b1", "b2", "b3"]) {
    const dir = join(tmp, `layout-${x}`);
    await writeOciLayout(
      dir,
      { layers: [randomLayer(24 << 20, { seed: x, compression: "none" })] },
      { ref: `example.com/app/${x}:1` },
    );
    store(dir, `example.com/app/${x}:1`);
  }
  bigBundle = join(tmp, "big.tar");
  const b = sender.rkt([
    "image",
    "save",
    "--bundle",
    "--lookaside",
    la,
    "-o",
    bigBundle,
    ...["b0", "b1", "b2", "b3"].map((x) => `example.com/app/${x}:1`),
  ]);
  expect(b.code, b.stderr).toBe(0);
}, 300_000);

afterAll(() => {
  gnupg?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!built)("rkt image save --bundle / load (built binary)", () => {
  it("inspect prints the images, who signed each, and the keys; --format json the description", () => {
    const { rkt } = machine();
    const t = rkt(["image", "bundle", "inspect", bundle]);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain("bundle.tar: 3 image(s), 2 key(s)");
    expect(t.stdout).toContain(`image example.com/app/one:1\n  ${ids.get("example.com/app/one:1")}`);
    expect(t.stdout).toMatch(
      /signature of example\.com\/app\/one:1@sha256:[0-9a-f]{12} by [0-9A-F ]+ Alice Releaser <alice@example\.com>/,
    );
    expect(t.stdout).toContain("aci example.com/tool,version=1.0,os=linux,arch=amd64");
    expect(t.stdout).toMatch(/key [0-9A-F ]+ Acme Tools <acme@example\.com>/);
    const j = JSON.parse(rkt(["image", "bundle", "inspect", "--format", "json", bundle]).stdout) as {
      images: { name: string; signatures: unknown[] }[];
      keys: unknown[];
    };
    expect(j.images.map((i) => [i.name, i.signatures.length])).toEqual([
      ["example.com/app/one:1", 1],
      ["example.com/app/two:1", 1],
      ["example.com/tool", 1],
    ]);
    expect(j.keys).toHaveLength(2);
    expect(rkt(["image", "bundle", "inspect", join(tmp, "missing.tar")]).code).toBe(254);
  });

  it("loads on a machine whose policy and keystore trust the signers; refuses where they do not", () => {
    const m = machine();
    const bare = m.rkt(["image", "load", bundle]);
    expect(bare.code).toBe(254);
    expect(bare.stdout).toContain(
      "refused example.com/app/one:1: docker://example.com/app/one:1: no policy.json here",
    );
    expect(bare.stderr).toContain("load: 3 of 3 images refused");
    expect(m.rkt(["image", "list", "--no-legend"]).stdout).toBe("");
    policy(m.etc);
    expect(m.rkt(["trust", "--prefix", "example.com/tool", "--skip-fingerprint-review", acmePub]).code).toBe(
      0,
    );
    const ok = m.rkt(["image", "load", bundle]);
    expect(ok.code, ok.stderr).toBe(0);
    const lines = ok.stdout.trimEnd().split("\n");
    expect(lines.slice(0, 2)).toEqual([
      `loaded example.com/app/one:1 ${ids.get("example.com/app/one:1")}`,
      `loaded example.com/app/two:1 ${ids.get("example.com/app/two:1")}`,
    ]);
    expect(lines[2]).toMatch(/^loaded example\.com\/tool sha512-[0-9a-f]{64}$/);
    expect(ok.stdout.split("\n").filter((l) => l.startsWith("loaded "))).toHaveLength(3);
    expect(ok.stderr).toContain("image: signature verified: example.com/app/one:1@");
    expect(
      m.rkt(["image", "list", "--no-legend", "--fields=name"]).stdout.split("\n").sort().join(" ").trim(),
    ).toBe("example.com/app/one:1 example.com/app/two:1 example.com/tool:1.0");
    expect(m.rkt(["image", "fsck"]).code).toBe(0);
  });

  it("--trust-bundle-keys: refused without a terminal unless --skip-fingerprint-review, as rkt trust", () => {
    const m = machine();
    const r = m.rkt(["image", "load", "--trust-bundle-keys", bundle]);
    expect(r.code).toBe(254);
    expect(r.stderr).toContain(
      "error reviewing key: unable to ask user to review fingerprint due to lack of tty",
    );
    expect(r.stdout).toMatch(/gpg key fingerprint is: [0-9A-F ]+\n\tAlice Releaser <alice@example\.com>/);
    expect(m.rkt(["image", "list", "--no-legend"]).stdout).toBe("");
    expect(m.rkt(["trust", "list"]).stdout).not.toContain("Alice");
    const ok = m.rkt(["image", "load", "--trust-bundle-keys", "--skip-fingerprint-review", bundle]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('Added key for prefix "example.com/app/one" at ');
    expect(ok.stdout).toContain('Added key for prefix "example.com/tool" at ');
    expect(ok.stdout.split("\n").filter((l) => l.startsWith("loaded "))).toHaveLength(3);
    // The keys were stored for those names only.
    const list = m.rkt(["trust", "list", "--prefix", "example.com/other"]);
    expect(list.stdout).not.toContain("Alice");
  });

  it("loads plain OCI and docker archives as rkt fetch imports them", () => {
    const sender = machine();
    const id = sender
      .rkt(["--insecure-options=image", "fetch", `oci:${join(tmp, "layout-one")}`])
      .stdout.trim();
    const oci = join(tmp, "plain.tar");
    const docker = join(tmp, "plain-docker.tar");
    expect(sender.rkt(["image", "save", "-o", oci, id]).code).toBe(0);
    expect(sender.rkt(["image", "save", "--format", "docker-archive", "-o", docker, id]).code).toBe(0);
    const m = machine();
    policy(m.etc);
    const a = m.rkt(["image", "load", oci]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe(`loaded example.com/app/one:1 ${id}\n`);
    const b = m.rkt(["image", "load", "--format", "json", docker]);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject([{ image: "example.com/app/one", status: "loaded" }]);
    expect(m.rkt(["image", "load", join(tmp, "tool.aci")])).toMatchObject({ code: 254 });
  });

  it("a load SIGKILLed after its first image, run again, finishes without reading committed images again", async () => {
    const m = machine();
    policy(m.etc);
    const first = await new Promise<string>((done, fail) => {
      const child = spawn(process.execPath, [bin, ...m.args, "image", "load", bigBundle], { cwd: tmp });
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) child.kill("SIGKILL");
      });
      child.on("error", fail);
      child.on("exit", () => done(out));
    });
    expect(first).toMatch(/^loaded example\.com\/app\/b0:1 /);
    const committed = m.rkt(["image", "list", "--no-legend", "--fields=name"]).stdout.trim().split("\n");
    expect(committed).toContain("example.com/app/b0:1");
    expect(committed.length).toBeLessThan(4);
    const blobsBefore = readdirSync(join(m.dir, "cas", "blobs", "sha256")).length;
    const again = m.rkt(["image", "load", "--format", "json", bigBundle]);
    expect(again.code, again.stderr).toBe(0);
    const rs = JSON.parse(again.stdout) as { image: string; status: string; bytesRead: number }[];
    const done = new Set(committed);
    for (const r of rs) {
      if (done.has(r.image)) {
        expect(r.status).toBe("present");
        expect(r.bytesRead).toBeLessThan(16 << 10);
      } else expect(r.status).toBe("loaded");
    }
    // What the rerun read is at most the images that were not committed, whose partial blob the
    // killed run left is resumed rather than read again.
    const left = 4 - committed.length;
    const read = rs.reduce((s, r) => s + r.bytesRead, 0);
    expect(read).toBeLessThanOrEqual(left * ((24 << 20) + (64 << 10)));
    expect(read).toBeGreaterThan((left - 1) * (24 << 20));
    // Blobs ingested by the rerun: a manifest, a config and a layer per image it loaded.
    const ingested = readdirSync(join(m.dir, "cas", "blobs", "sha256")).length - blobsBefore;
    expect(ingested).toBeLessThanOrEqual(3 * left);
    expect(ingested).toBeGreaterThanOrEqual(2 * left);
    expect(statSync(bigBundle).size).toBeGreaterThan(4 * (24 << 20));
    expect(m.rkt(["image", "fsck"]).code).toBe(0);
  }, 120_000);
});
