// Shell completion and man pages made from the command tree, and the setup step that installs
// them: the bash script is loaded by a real bash and driven as bash's completion would.
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandTree, type CommandSpec } from "@rkt/cli";
import { runRkt } from "./helpers.js";

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "main.js"));
const has = (tool: string): boolean =>
  ["/usr/bin", "/bin", "/usr/local/bin"].some((d) => existsSync(join(d, tool)));

let tmp: string;
let script: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-completion-"));
  script = join(tmp, "rkt.bash");
  const r = await runRkt(["completion", "bash"], { cwd: tmp });
  expect(r).toMatchObject({ code: 0, stderr: "" });
  writeFileSync(script, r.stdout);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What bash's completion offers for WORDS (the last one is being typed). */
async function complete(words: string[]): Promise<string[]> {
  const driver = [
    `source ${JSON.stringify(script)}`,
    'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()',
    "__rkt_complete",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const { stdout, stderr } = await run("bash", ["-c", driver, "bash", ...words], { cwd: tmp });
  expect(stderr).toBe("");
  return stdout.split("\n").filter((l) => l !== "");
}

function visible(list: readonly CommandSpec[] | undefined): string[] {
  return (list ?? []).filter((c) => c.hidden !== true).map((c) => c.name);
}

describe("bash completion", () => {
  it("loads in bash without error and registers itself for rkt", async () => {
    const { stdout, stderr } = await run("bash", [
      "-c",
      `source ${JSON.stringify(script)} && complete -p rkt`,
    ]);
    expect(stderr).toBe("");
    expect(stdout).toBe("complete -F __rkt_complete rkt\n");
  });

  it("completes commands and subcommands, through unique prefixes and global flags", async () => {
    expect(await complete(["rkt", ""])).toEqual(visible(commandTree()));
    const image = visible(commandTree().find((c) => c.name === "image")?.children);
    expect(await complete(["rkt", "image", ""])).toEqual(image);
    expect(await complete(["rkt", "im", ""])).toEqual(image);
    expect(await complete(["rkt", "--dir", "/tmp/x", "image", "li"])).toEqual(["list"]);
    expect(await complete(["rkt", "image", "l"])).toEqual(["list", "load"]);
    expect(await complete(["rkt", "image", "c"])).toEqual(["cat-manifest", "convert", "copy"]);
    expect(await complete(["rkt", "completion", ""])).toEqual(["bash", "zsh", "fish"]);
  });

  it("completes each command's flags, and flag values from choices", async () => {
    expect(await complete(["rkt", "image", "gc", "--"])).toEqual(
      expect.arrayContaining([
        "--grace-period",
        "--trees-only",
        "--images-only",
        "--help",
        "--debug",
        "--dir",
      ]),
    );
    expect(await complete(["rkt", "image", "gc", "--t"])).toEqual([
      "--trees-only",
      "--trust-keys-from-https",
    ]);
    expect(await complete(["rkt", "fetch", "--convert", ""])).toEqual(["aci"]);
    // bash splits `--convert=` at '=': COMP_WORDS is [..., "--convert", "=", ""].
    expect(await complete(["rkt", "fetch", "--convert", "=", ""])).toEqual(["aci"]);
    // A value flag's value is not taken for a subcommand or an argument.
    expect(await complete(["rkt", "fetch", "--parallel", "4", "--fu"])).toEqual(["--full"]);
    // run: pod flags and app flags.
    expect(await complete(["rkt", "run", "img", "--wo"])).toEqual(["--working-dir"]);
  });

  it("completes files where a command takes files", async () => {
    writeFileSync(join(tmp, "layout-marker.aci"), "");
    expect(await complete(["rkt", "fetch", "layout-m"])).toEqual(["layout-marker.aci"]);
    expect(await complete(["rkt", "fetch", "--signature-policy", "layout-m"])).toEqual(["layout-marker.aci"]);
  });

  it.skipIf(!built)("completes stored image names for commands that take images", async () => {
    const store = join(tmp, "store");
    const f = await runRkt(
      ["--dir", store, "fetch", "--no-render", `oci:${join(repo, "examples", "hello-oci")}:latest`],
      { cwd: tmp },
    );
    expect(f.code).toBe(0);
    expect(await complete([bin, "--dir", store, "image", "rm", "hel"])).toEqual(["hello-oci:latest"]);
  });
});

describe("zsh and fish completion", () => {
  it("name every command and flag of the tree", async () => {
    const zsh = (await runRkt(["completion", "zsh"], { cwd: tmp })).stdout;
    const fish = (await runRkt(["completion", "fish"], { cwd: tmp })).stdout;
    expect(zsh).toContain("bashcompinit");
    expect(zsh).toContain(readFileSync(script, "utf8"));
    for (const c of commandTree().filter((x) => x.hidden !== true)) {
      expect(fish).toContain(`-a ${c.name} -d`);
      for (const [n, s] of Object.entries(c.flags ?? {}))
        if (s.hidden !== true) expect(fish, `${c.name} --${n}`).toContain(`-l ${n} `);
    }
  });

  it.skipIf(!has("zsh"))("zsh reads its script", async () => {
    const f = join(tmp, "rkt.zsh");
    writeFileSync(f, (await runRkt(["completion", "zsh"], { cwd: tmp })).stdout);
    await run("zsh", ["-n", f]);
  });

  it.skipIf(!has("fish"))("fish reads its script", async () => {
    const f = join(tmp, "rkt.fish");
    writeFileSync(f, (await runRkt(["completion", "fish"], { cwd: tmp })).stdout);
    await run("fish", ["--no-execute", f]);
  });
});

describe("man pages", () => {
  it("one page per command, parents first, with NAME, SYNOPSIS and the command's flags", async () => {
    const dir = join(tmp, "man1");
    const r = await runRkt(["man", "--output", dir], { cwd: tmp });
    expect(r.code).toBe(0);
    const files = readdirSync(dir).sort();
    expect(files).toContain("rkt.1");
    expect(files).toContain("rkt-fetch.1");
    expect(files).toContain("rkt-image-list.1");
    expect(files).toContain("rkt-trust-rm.1");
    expect(r.stdout.trim().split("\n")).toHaveLength(files.length);
    const gc = readFileSync(join(dir, "rkt-image-gc.1"), "utf8");
    expect(gc).toMatch(/^\.TH RKT\\-IMAGE\\-GC 1 /);
    expect(gc).toContain(".SH SYNOPSIS");
    expect(gc).toContain(".B \\-\\-grace\\-period=DURATION");
    expect((await runRkt(["man", "image", "gc"], { cwd: tmp })).stdout).toBe(gc);
  });

  it.skipIf(!has("man"))("render with man -l without troff errors", async () => {
    const dir = join(tmp, "man1");
    await runRkt(["man", "--quiet", "--output", dir], { cwd: tmp });
    for (const f of readdirSync(dir)) {
      const { stdout, stderr } = await run("man", ["-l", join(dir, f)], {
        env: { ...process.env, MANPAGER: "cat", MANWIDTH: "100" },
      });
      const name = f.slice(0, -2);
      expect(stdout, f).toContain("NAME");
      expect(stdout, f).toContain(name);
      // Long unbreakable words (flag lists) only draw "can't break line" warnings.
      expect(
        stderr.split("\n").filter((l) => l !== "" && !/warning.*(break|adjust) line/.test(l)),
        f,
      ).toEqual([]);
    }
  });
});

describe("the setup step", () => {
  it.skipIf(!built)("links rkt, writes man pages and bash completion, twice alike", async () => {
    const root = join(tmp, "root");
    const env = { ...process.env, RKT_SETUP_ROOT: root };
    for (let i = 0; i < 2; i++) await run("bash", [join(repo, "scripts", "setup.sh"), "--cli-only"], { env });
    expect(readlinkSync(join(root, "usr/local/bin/rkt"))).toBe(bin);
    const v = await run(join(root, "usr/local/bin/rkt"), ["version"]);
    expect(v.stdout).toMatch(/^rkt Version: /);
    const pages = readdirSync(join(root, "usr/local/share/man/man1"));
    expect(pages).toContain("rkt-image-list.1");
    expect(readFileSync(join(root, "usr/share/bash-completion/completions/rkt"), "utf8")).toBe(
      readFileSync(script, "utf8"),
    );
  });

  it.skipIf(!built || !has("setpriv"))("as another user only says how to run rkt", async (t) => {
    const asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    // A checkout in a private directory (a mktemp clone) cannot be read by another user.
    const readable = await run("setpriv", [
      ...asNobody,
      "test",
      "-r",
      join(repo, "scripts", "setup.sh"),
    ]).then(
      () => true,
      () => false,
    );
    if (!readable) return t.skip();
    const r = await run(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "bash",
        join(repo, "scripts", "setup.sh"),
        "--cli-only",
      ],
      { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } },
    );
    expect(r.stderr).toContain(`setup: run rkt as ${bin}`);
  });
});
