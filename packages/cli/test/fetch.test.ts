// `rkt fetch` for local sources, in-process against a temp --dir per test, and the built binary.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MainIO } from "@rkt/cli";
import { parseFetchArgs as parseParsed, printedId } from "../src/commands/fetch.js";
import { parseCommandArgs } from "../src/main.js";

const parseFetchArgs = (argv: string[]) => parseParsed(parseCommandArgs(["fetch"], argv));
import { runRkt, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const examples = join(repo, "examples");
const helloAci = join(examples, "hello.aci");
const helloOci = join(examples, "hello-oci");
const helloAciId = `sha512-${createHash("sha512")
  .update(gunzipSync(readFileSync(helloAci)))
  .digest("hex")
  .slice(0, 64)}`;
const helloOciId = (
  JSON.parse(readFileSync(join(helloOci, "index.json"), "utf8")) as { manifests: { digest: string }[] }
).manifests[0]!.digest;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-fetch-test-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh store directory. */
function newDir(): string {
  return mkdtempSync(join(tmp, "store-"));
}

function rkt(dir: string, args: string[], io: Partial<MainIO> = {}): Promise<RktRun> {
  return runRkt(["--dir", dir, ...args], { ...io, cwd: io.cwd ?? repo });
}

async function expectClean(dir: string): Promise<void> {
  const r = await rkt(dir, ["image", "fsck"]);
  expect(r.stdout).toBe("");
  expect(r.code).toBe(0);
}

function blobCount(dir: string, alg: string): number {
  return readdirSync(join(dir, "cas", "blobs", alg)).length;
}

/** A copy of hello-oci whose config differs (so a new manifest) but shares the layer. */
function siblingLayout(name: string): { dir: string; id: string } {
  const dir = join(tmp, name);
  cpSync(helloOci, dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
    manifests: { digest: string; size: number }[];
  };
  const blob = (d: string) => join(dir, "blobs", "sha256", d.split(":")[1]!);
  const put = (bytes: Buffer): { digest: string; size: number } => {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    writeFileSync(blob(digest), bytes);
    return { digest, size: bytes.length };
  };
  const entry = index.manifests[0]!;
  const manifest = JSON.parse(readFileSync(blob(entry.digest), "utf8")) as {
    config: { digest: string; size: number };
  };
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), "utf8")) as Record<string, unknown>;
  config["author"] = name;
  const c = put(Buffer.from(JSON.stringify(config)));
  manifest.config = { ...manifest.config, ...c };
  const m = put(Buffer.from(JSON.stringify(manifest)));
  entry.digest = m.digest;
  entry.size = m.size;
  writeFileSync(join(dir, "index.json"), JSON.stringify(index));
  return { dir, id: m.digest };
}

describe("parseFetchArgs", () => {
  it("binds --signature to the image before it, with rkt's errors", () => {
    const f = parseFetchArgs(["a.aci", "--signature", "a.asc", "b.aci", "--signature=b.asc", "--full"]);
    expect(f.images).toEqual([
      { image: "a.aci", signature: "a.asc" },
      { image: "b.aci", signature: "b.asc" },
    ]);
    expect(f.full).toBe(true);
    expect(f.pullPolicy).toBe("update");
    expect(() => parseFetchArgs(["--signature", "x.asc", "a.aci"])).toThrow(
      "--signature must follow an image",
    );
    expect(() => parseFetchArgs(["a.aci", "--signature", "1", "--signature", "2"])).toThrow(
      "--signature specified multiple times for the same image",
    );
    expect(() => parseFetchArgs([])).toThrow("must provide at least one image");
    expect(() => parseFetchArgs(["--store-only", "--no-store", "a"])).toThrow(
      "both --store-only and --no-store specified",
    );
  });

  it("maps pull policies and deprecated flags as rkt", () => {
    expect(parseFetchArgs(["--pull-policy=never", "a"]).pullPolicy).toBe("never");
    expect(parseFetchArgs(["--pull-policy", "bogus", "a"]).pullPolicy).toBe("new");
    const s = parseFetchArgs(["--store-only", "a"]);
    expect(s.pullPolicy).toBe("never");
    expect(s.notices).toEqual(["Flag --store-only has been deprecated, please use --pull-policy=never"]);
    expect(parseFetchArgs(["--no-store", "a"]).notices[0]).toContain("please use --pull-policy=update");
  });

  it("prints ACI IDs short (32 hex) unless --full, OCI digests whole", () => {
    expect(printedId(helloAciId, false)).toBe(helloAciId.slice(0, 39));
    expect(printedId(helloAciId, true)).toBe(helloAciId);
    expect(printedId(helloOciId, false)).toBe(helloOciId);
  });
});

describe("rkt fetch ACI files", () => {
  it("refuses an unsigned ACI without --insecure-options=image (exit 254, nothing stored)", async () => {
    const dir = newDir();
    // A copy without its .asc (examples/hello.aci is signed by examples/keys/demo.pub.asc).
    const unsigned = join(tmp, "unsigned.aci");
    writeFileSync(unsigned, readFileSync(helloAci));
    const r = await rkt(dir, ["fetch", unsigned]);
    expect(r.code).toBe(254);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `fetch: error opening signature file: ${unsigned}.asc: no such file or directory\n`,
    );
    expect((await rkt(dir, ["image", "list", "--format", "json"])).stdout).toBe("null\n");
  });

  it("imports ./x.aci, /abs/x.aci and file:// URLs to the same ID, idempotently", async () => {
    const dir = newDir();
    const ins = ["--insecure-options=image"];
    const a = await rkt(dir, [...ins, "fetch", "./examples/hello.aci"]);
    expect(a).toMatchObject({ code: 0, stdout: `${helloAciId.slice(0, 39)}\n` });
    const b = await rkt(dir, [...ins, "fetch", "--full", helloAci, `file://${helloAci}`]);
    expect(b.stdout).toBe(`${helloAciId}\n${helloAciId}\n`);
    expect(b.code).toBe(0);
    expect(blobCount(dir, "sha512")).toBe(1);
    const list = JSON.parse((await rkt(dir, ["image", "list", "--format", "json"])).stdout) as unknown[];
    expect(list).toHaveLength(1);
    await expectClean(dir);
  });

  it("prints a JSON summary with --format json", async () => {
    const dir = newDir();
    const r = await rkt(dir, ["--insecure-options=image", "fetch", "--format", "json", "examples/hello.aci"]);
    expect(r.code).toBe(0);
    const [s] = JSON.parse(r.stdout) as {
      id: string;
      kind: string;
      name: string;
      digests: string[];
      bytes: number;
    }[];
    expect(s).toMatchObject({ id: helloAciId, kind: "aci", name: "example.com/hello", bytes: 6144 });
    expect(s!.digests[0]).toMatch(new RegExp(`^sha512:${helloAciId.slice(7)}`));
  });

  const bad: [string, () => string, RegExp][] = [
    [
      "truncated ACI",
      () => {
        const p = join(tmp, "truncated.aci");
        const b = readFileSync(helloAci);
        writeFileSync(p, b.subarray(0, b.length - 200));
        return p;
      },
      /corrupt or truncated|truncated|unexpected end/i,
    ],
    [
      "tar without manifest",
      () => {
        const src = join(tmp, "nomanifest");
        mkdirSync(join(src, "rootfs"), { recursive: true });
        writeFileSync(join(src, "rootfs", "hello"), "hi");
        const p = join(tmp, "nomanifest.aci");
        execFileSync("tar", ["-C", src, "-cf", p, "rootfs"]);
        return p;
      },
      /manifest/,
    ],
    [
      "invalid manifest",
      () => {
        const src = join(tmp, "badmanifest");
        mkdirSync(join(src, "rootfs"), { recursive: true });
        writeFileSync(
          join(src, "manifest"),
          '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"BAD NAME"}',
        );
        const p = join(tmp, "badmanifest.aci");
        execFileSync("tar", ["-C", src, "-cf", p, "manifest", "rootfs"]);
        return p;
      },
      /manifest/,
    ],
    [
      "unknown compression",
      () => {
        const p = join(tmp, "lz4.aci");
        writeFileSync(p, Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18]), Buffer.alloc(2048, 7)]));
        return p;
      },
      /.+/,
    ],
  ];
  for (const [title, make, reason] of bad) {
    it(`${title}: one line naming the input, exit 254, fsck clean`, async () => {
      const dir = newDir();
      const p = make();
      const r = await rkt(dir, ["--insecure-options=image", "fetch", p]);
      expect(r.code).toBe(254);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines[0]).toBe("image: warning: image signature verification has been disabled");
      lines.shift();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`fetch: ${p}: `);
      expect(lines[0]).toMatch(reason);
      await expectClean(dir);
    });
  }
});

describe("rkt fetch OCI layouts and archives", () => {
  it("imports oci:DIR and oci:DIR:REF, printing the manifest digest; re-fetch is idempotent", async () => {
    const dir = newDir();
    const a = await rkt(dir, ["fetch", "oci:examples/hello-oci"]);
    expect(a).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
    const b = await rkt(dir, ["fetch", `oci:${helloOci}:latest`]);
    expect(b).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
    const list = JSON.parse((await rkt(dir, ["image", "list", "--format", "json"])).stdout) as {
      name: string;
    }[];
    expect(list).toEqual([expect.objectContaining({ id: helloOciId, name: "hello-oci:latest" })]);
    await expectClean(dir);
  });

  it("imports a skopeo-made oci-archive to the same image", async () => {
    const archive = join(tmp, "hello-oci.tar");
    execFileSync("skopeo", ["copy", `oci:${helloOci}:latest`, `oci-archive:${archive}:latest`], {
      stdio: "ignore",
    });
    const dir = newDir();
    const r = await rkt(dir, ["fetch", `oci-archive:${archive}:latest`]);
    expect(r).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
    // the temp unpack directory is gone
    expect(readdirSync(join(dir, "cas", "tmp"))).toEqual([]);
    await expectClean(dir);
  });

  it("stores a layer shared by two images once", async () => {
    const dir = newDir();
    const other = siblingLayout("hello-sibling");
    const r = await rkt(dir, ["fetch", "oci:examples/hello-oci", `oci:${other.dir}`]);
    expect(r).toMatchObject({ code: 0, stdout: `${helloOciId}\n${other.id}\n` });
    // 2 manifests + 2 configs + 1 shared layer
    expect(blobCount(dir, "sha256")).toBe(5);
    await expectClean(dir);
  });

  it("a layout with a missing blob or a corrupt blob: one line naming the input, exit 254", async () => {
    for (const fault of ["missing", "corrupt"] as const) {
      const dir = newDir();
      const layout = join(tmp, `layout-${fault}`);
      cpSync(helloOci, layout, { recursive: true });
      const manifest = JSON.parse(
        readFileSync(join(layout, "blobs", "sha256", helloOciId.slice(7)), "utf8"),
      ) as {
        layers: { digest: string }[];
      };
      const layer = join(layout, "blobs", "sha256", manifest.layers[0]!.digest.slice(7));
      if (fault === "missing") rmSync(layer);
      else {
        const b = readFileSync(layer);
        b[b.length - 3]! ^= 0xff;
        writeFileSync(layer, b);
      }
      const r = await rkt(dir, ["fetch", `oci:${layout}`]);
      expect(r.code).toBe(254);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`fetch: oci:${layout}: `);
      expect(lines[0]).toMatch(fault === "missing" ? /missing/ : /digest mismatch|mismatch/i);
      expect((await rkt(dir, ["image", "list", "--format", "json"])).stdout).toBe("null\n");
      // Blobs written before the failure are unreferenced garbage for GC, never a problem.
      const check = JSON.parse((await rkt(dir, ["image", "fsck", "--format", "json"])).stdout) as {
        ok: boolean;
      };
      expect(check.ok).toBe(true);
      await rkt(dir, ["image", "gc", "--grace-period=0s"]);
      await expectClean(dir);
    }
  });
});

describe("the built binary", () => {
  it("fetches and lists (npx tsc -b first)", () => {
    const dir = newDir();
    const bin = join(repo, "packages", "cli", "bin", "rkt.js");
    const f = spawnSync(process.execPath, [bin, "--dir", dir, "fetch", "oci:examples/hello-oci"], {
      cwd: repo,
      encoding: "utf8",
    });
    expect(f.stderr).toBe("");
    expect(f.stdout).toBe(`${helloOciId}\n`);
    const l = spawnSync(
      process.execPath,
      [bin, "--dir", dir, "image", "list", "--no-legend", "--fields=id,name"],
      {
        cwd: repo,
        encoding: "utf8",
      },
    );
    expect(l.stdout).toBe(`${helloOciId.slice(0, 19)}\thello-oci:latest\n`);
    expect(l.status).toBe(0);
  });
});

describe("rkt fetch command line", () => {
  it("prints cobra's deprecation notice; local sources import even with --pull-policy=never", async () => {
    const dir = newDir();
    const r = await rkt(dir, ["fetch", "--store-only", "oci:examples/hello-oci"]);
    expect(r).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
    expect(r.stderr).toBe("Flag --store-only has been deprecated, please use --pull-policy=never\n");
    const n = await rkt(newDir(), ["fetch", "--pull-policy=never", "oci:examples/hello-oci"]);
    expect(n).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
  });

  it("rkt's --signature and argument errors exit 254", async () => {
    const dir = newDir();
    expect(await rkt(dir, ["fetch", "--signature", "x.asc", "oci:examples/hello-oci"])).toMatchObject({
      code: 254,
      stderr: "fetch: --signature must follow an image\n",
    });
    expect(await rkt(dir, ["fetch"])).toMatchObject({
      code: 254,
      stderr: "fetch: must provide at least one image\n",
    });
    expect(await rkt(dir, ["fetch", "--store-only", "--no-store", "x.aci"])).toMatchObject({ code: 254 });
  });

  it("`rkt image fetch` is a hidden alias", async () => {
    const dir = newDir();
    const r = await rkt(dir, ["image", "fetch", "oci:examples/hello-oci"]);
    expect(r).toMatchObject({ code: 0, stdout: `${helloOciId}\n` });
    const help = await rkt(dir, ["image", "--help"]);
    expect(help.stdout).not.toMatch(/^ {2}fetch /m);
    expect(help.stdout).toMatch(/^ {2}fsck /m);
  });
});

describe("concurrent fetches (built binary)", () => {
  it("three processes importing the same images into one store all succeed; fsck clean", async () => {
    const { spawn } = await import("node:child_process");
    const dir = newDir();
    const bin = join(repo, "packages", "cli", "bin", "rkt.js");
    const one = (): Promise<{ code: number | null; out: string; err: string }> =>
      new Promise((res, rej) => {
        const c = spawn(
          process.execPath,
          [
            bin,
            "--dir",
            dir,
            "--insecure-options=image",
            "fetch",
            "--full",
            "examples/hello.aci",
            "oci:examples/hello-oci",
          ],
          { cwd: repo },
        );
        let out = "";
        let err = "";
        c.stdout.on("data", (b: Buffer) => (out += b.toString()));
        c.stderr.on("data", (b: Buffer) => (err += b.toString()));
        c.on("error", rej);
        c.on("close", (code) => res({ code, out, err }));
      });
    const results = await Promise.all([one(), one(), one()]);
    for (const r of results) {
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${helloAciId}\n${helloOciId}\n`);
    }
    expect(blobCount(dir, "sha512")).toBe(1);
    expect(blobCount(dir, "sha256")).toBe(3);
    await expectClean(dir);
  });
});
