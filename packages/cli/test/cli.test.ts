// The rkt command in-process (injected streams, no mocks) and the built binary end to end.
import { execFileSync, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultDataDir, formatError, parseInsecureOptions, splitGlobalFlags, type MainIO } from "@rkt/cli";
import { runRkt, type RktRun } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const examples = join(repo, "examples");

function rkt(args: string[], io: Partial<MainIO> = {}): Promise<RktRun> {
  return runRkt(args, { ...io, cwd: io.cwd ?? repo });
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-cli-test-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("global flags", () => {
  it("apply rkt's defaults", () => {
    const { globals, rest } = splitGlobalFlags(["image", "validate", "x"], {}, "/", 0);
    expect(rest).toEqual(["image", "validate", "x"]);
    expect(globals).toMatchObject({
      dir: "/var/lib/rkt",
      systemConfig: "/usr/lib/rkt",
      localConfig: "/etc/rkt",
      userConfig: "",
      trustKeysFromHttps: false,
      debug: false,
    });
    expect(Object.values(globals.insecure).every((v) => !v)).toBe(true);
  });

  it("default --dir for non-root users follows XDG_DATA_HOME, else ~/.local/share", () => {
    expect(defaultDataDir({ XDG_DATA_HOME: "/x/data" }, 1000)).toBe("/x/data/rkt");
    expect(defaultDataDir({ HOME: "/home/u" }, 1000)).toBe("/home/u/.local/share/rkt");
  });

  it("are recognised anywhere before --, in both --flag value and --flag=value forms", () => {
    const s = splitGlobalFlags(
      [
        "--debug",
        "image",
        "--dir",
        "rel/dir",
        "validate",
        "--insecure-options=image,tls",
        "x",
        "--",
        "--debug",
      ],
      {},
      "/base",
      0,
    );
    expect(s.rest).toEqual(["image", "validate", "x", "--", "--debug"]);
    expect(s.globals.dir).toBe("/base/rel/dir");
    expect(s.globals.debug).toBe(true);
    expect(s.globals.insecure).toMatchObject({ image: true, tls: true, http: false });
  });

  it("reject an empty --dir with rkt's message", async () => {
    const r = await rkt(["--dir=", "version"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe('rkt: invalid argument "" for "--dir" flag: "" is not a valid directory\n');
  });

  it("expand and check --insecure-options as rkt's secflags", () => {
    expect(parseInsecureOptions("all-fetch")).toMatchObject({
      image: true,
      tls: true,
      http: true,
      pubkey: true,
      paths: false,
    });
    expect(parseInsecureOptions("all-run")).toMatchObject({
      image: false,
      capabilities: true,
      paths: true,
      seccomp: true,
    });
    expect(Object.entries(parseInsecureOptions("all")).filter(([, v]) => !v)).toEqual([["ondisk", false]]);
    expect(parseInsecureOptions("ondisk").ondisk).toBe(true);
    expect(() => parseInsecureOptions("image,foo")).toThrow(/unknown option "foo"/);
    expect(() => parseInsecureOptions("tls,tls")).toThrow(/duplicated option "tls"/);
  });

  it("print an unknown --insecure-options value as one line, exit 254", async () => {
    const r = await rkt(["--insecure-options=bogus", "image", "validate", "x"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      'rkt: invalid argument "bogus" for "--insecure-options" flag: unknown option "bogus"\n',
    );
  });
});

describe("commands, help and version", () => {
  it("no command: missing command and help on stderr, exit 2", async () => {
    const r = await rkt([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^missing command\n/);
    expect(r.stderr).toContain("COMMANDS:");
  });

  it("prints help for rkt and for a command, exit 0", async () => {
    const top = await rkt(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("image");
    const sub = await rkt(["image", "validate", "--help"]);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain("rkt image validate [--type=TYPE] [--format=text|json] PATH...");
    expect((await rkt(["help", "image", "validate"])).stdout).toBe(sub.stdout);
  });

  it("matches unambiguous command prefixes like cobra", async () => {
    const r = await rkt(["im", "val", join(examples, "hello.aci")]);
    expect(r).toMatchObject({ code: 0, stdout: `${join(examples, "hello.aci")}: ok\n` });
    expect((await rkt(["ver"])).stdout).toMatch(/^rkt Version: \d+\.\d+\.\d+\nappc Version: 0\.8\.11\n/);
  });

  it("refuses unknown commands, exit 254", async () => {
    const r = await rkt(["frobnicate"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(`rkt: unknown command "frobnicate" for "rkt"; run 'rkt --help' for usage\n`);
  });

  it("refuses unknown command flags with the command's name, exit 254", async () => {
    const r = await rkt(["image", "validate", "--bogus", "x"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      "validate: unknown flag: --bogus\nUsage: rkt image validate [--type=TYPE] [--format=text|json] PATH...\n",
    );
  });
});

describe("rkt image validate", () => {
  it("prints ok for the bundled examples, exit 0", async () => {
    const r = await rkt(["image", "validate", "examples/hello-oci", "examples/hello.aci"]);
    expect(r).toEqual({ code: 0, stdout: "examples/hello-oci: ok\nexamples/hello.aci: ok\n", stderr: "" });
  });

  it("prints one invalid line per issue and exits 254 when any input is invalid", async () => {
    const dir = join(tmp, "bad");
    cpSync(join(examples, "hello-oci"), dir, { recursive: true });
    writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"9"}');
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    rmSync(join(dir, "blobs", "sha256", index.manifests[0]!.digest.slice(7)));
    const r = await rkt(["image", "validate", dir, "examples/hello.aci"], { cwd: repo });
    expect(r.code).toBe(254);
    expect(r.stdout.split("\n")).toEqual([
      `${dir}: invalid: $: oci-layout: $.imageLayoutVersion: imageLayoutVersion must be "1.0.0"`,
      `${dir}: invalid: $.manifests[0]: blob ${index.manifests[0]!.digest} is missing (blobs/sha256/${index.manifests[0]!.digest.slice(7)})`,
      "examples/hello.aci: ok",
      "",
    ]);
  });

  // image-layout.md: the oci-layout file is a JSON object with imageLayoutVersion "1.0.0".
  it("--type layout on an oci-layout file validates that file", async () => {
    const good = await rkt(["image", "validate", "--type", "layout", "examples/hello-oci/oci-layout"]);
    expect(good).toEqual({ code: 0, stdout: "examples/hello-oci/oci-layout: ok\n", stderr: "" });
    const f = join(tmp, "oci-layout");
    writeFileSync(f, '{"imageLayoutVersion":"1.1.0"}');
    const bad = await rkt(["image", "validate", "--type=layout", f]);
    expect(bad).toEqual({
      code: 254,
      stdout: `${f}: invalid: $.imageLayoutVersion: imageLayoutVersion must be "1.0.0"\n`,
      stderr: "",
    });
  });

  it("--format json prints the structured verdicts", async () => {
    const r = await rkt([
      "image",
      "validate",
      "--format=json",
      "--type",
      "aci",
      "examples/hello-oci/index.json",
    ]);
    expect(r.code).toBe(254);
    const parsed = JSON.parse(r.stdout) as unknown[];
    expect(parsed).toEqual([
      {
        path: "examples/hello-oci/index.json",
        type: "aci",
        ok: false,
        issues: [expect.objectContaining({ path: "$" })],
      },
    ]);
  });

  it("refuses a bad --type and a missing PATH with one line, exit 254", async () => {
    const t = await rkt(["image", "validate", "--type=zip", "x"]);
    expect(t.code).toBe(254);
    expect(t.stderr).toMatch(
      /^validate: unknown type "zip" \(one of: aci, image-manifest, .*docker-archive\)\n$/,
    );
    const p = await rkt(["image", "validate"]);
    expect(p).toMatchObject({ code: 254, stderr: "validate: at least one PATH is required\n" });
  });
});

describe("errors with --debug", () => {
  it("prints the cause chain as a tree and the error code", async () => {
    // A command whose library call fails with a wrapped error: an unreadable --type value goes
    // through the same printer, so use validate's argument error and check the code line.
    const r = await rkt(["--debug", "image", "validate"]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      `validate: at least one PATH is required\nvalidate: error code: ${ErrorCode.InvalidArgument}\n`,
    );
  });

  it("indents each cause with └─, one level deeper per cause", () => {
    const e = new RktError(ErrorCode.Io, "cannot write blob", {
      cause: new Error("open /x: permission denied", { cause: new Error("EACCES") }),
    });
    expect(formatError("fetch", e, true)).toBe(
      "fetch: cannot write blob\n  └─open /x: permission denied\n    └─EACCES\nfetch: error code: RKT_IO\n",
    );
    expect(formatError("fetch", e, false)).toBe("fetch: cannot write blob\n");
  });
});

describe("the built binary", () => {
  const bin = join(repo, "packages", "cli", "bin", "rkt.js");
  const built = existsSync(join(repo, "packages", "cli", "dist", "main.js"));

  it.skipIf(!built)("validates the bundled examples end to end", () => {
    const out = execFileSync(
      process.execPath,
      [bin, "image", "validate", "examples/hello-oci", "examples/hello.aci"],
      {
        cwd: repo,
        encoding: "utf8",
      },
    );
    expect(out).toBe("examples/hello-oci: ok\nexamples/hello.aci: ok\n");
  });

  it.skipIf(!built)("the committed examples are what scripts/make-examples.mjs builds", () => {
    const out = join(tmp, "examples");
    execFileSync(process.execPath, [join(repo, "scripts", "make-examples.mjs"), out], { cwd: repo });
    // The demo signature and key (examples/keys/README.md) are made once, not by the script; so is
    // the example binary (examples/src/hello.c says how it is built).
    const files = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, encoding: "utf8" })
        .filter((f) => statSync(join(dir, f)).isFile() && !f.endsWith(".asc") && !/^(keys|src)\//.test(f))
        .sort();
    expect(files(out)).toEqual(files(examples));
    for (const f of files(examples)) {
      expect(readFileSync(join(out, f)).equals(readFileSync(join(examples, f))), f).toBe(true);
    }
    expect(statSync(join(examples, "hello.aci")).size).toBeLessThan(100 * 1024);
  });

  it.skipIf(!built)("exits 254 with one stderr line on errors and 2 without a command", () => {
    const bad = spawnSync(process.execPath, [bin, "image", "validate", "--type=nope", "x"], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(254);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    const none = spawnSync(process.execPath, [bin], { encoding: "utf8" });
    expect(none.status).toBe(2);
    const corrupt = join(tmp, "bin-corrupt");
    cpSync(join(examples, "hello-oci"), corrupt, { recursive: true });
    const index = JSON.parse(readFileSync(join(corrupt, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    const m = JSON.parse(
      readFileSync(join(corrupt, "blobs", "sha256", index.manifests[0]!.digest.slice(7)), "utf8"),
    ) as { layers: { digest: string }[] };
    const layer = join(corrupt, "blobs", "sha256", m.layers[0]!.digest.slice(7));
    const bytes = readFileSync(layer);
    bytes[10] = bytes[10]! ^ 1;
    writeFileSync(layer, bytes);
    const r = spawnSync(process.execPath, [bin, "image", "validate", corrupt], { encoding: "utf8" });
    expect(r.status).toBe(254);
    expect(r.stdout).toContain(
      `${corrupt}: invalid: $.manifests[0].layers[0]: blob ${m.layers[0]!.digest}: digest mismatch`,
    );
  });
});
