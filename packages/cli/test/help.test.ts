// The help of every command and its answer to a bad flag, pinned as text files under
// test/snapshots/ (review a change there like any other change of output).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { commandTree, globalFlags, type CommandSpec } from "@rkt/cli";
import { runRkt } from "./helpers.js";

const cwd = import.meta.dirname;

/** Every visible command path of the tree, parents before children. */
function paths(list: readonly CommandSpec[], above: readonly string[] = []): string[][] {
  return list
    .filter((c) => c.hidden !== true)
    .flatMap((c) => [[...above, c.name], ...paths(c.children ?? [], [...above, c.name])]);
}

const all = paths(commandTree());

describe("help", () => {
  it("of rkt itself", async () => {
    const r = await runRkt(["--help"], { cwd });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    await expect(r.stdout).toMatchFileSnapshot("snapshots/help/rkt.txt");
  });

  it.each(all.map((p) => [p.join(" ")]))("of rkt %s", async (name) => {
    const path = name.split(" ");
    const r = await runRkt([...path, "--help"], { cwd });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    // `rkt help PATH` is the same text.
    expect((await runRkt(["help", ...path], { cwd })).stdout).toBe(r.stdout);
    await expect(r.stdout).toMatchFileSnapshot(`snapshots/help/rkt-${path.join("-")}.txt`);
  });

  it("lists every subcommand once and ends with a pointer only where there are subcommands", async () => {
    for (const p of all) {
      const { stdout } = await runRkt([...p, "--help"], { cwd });
      const spec = p.reduce<CommandSpec | undefined>(
        (c, w) => (c === undefined ? commandTree() : (c.children ?? [])).find((x) => x.name === w),
        undefined,
      )!;
      const children = (spec.children ?? []).filter((c) => c.hidden !== true);
      expect(stdout.includes("<command> --help"), p.join(" ")).toBe(children.length > 0);
      for (const c of children)
        expect(
          stdout.split("\n").filter((l) => l.startsWith(`  ${c.name} `)).length,
          `${p.join(" ")} ${c.name}`,
        ).toBe(1);
    }
  });

  it("names in every synopsis only flags the command declares", () => {
    const walk = (list: readonly CommandSpec[]): void => {
      for (const c of list) {
        const declared = new Set([
          ...Object.keys(c.flags ?? {}),
          ...Object.keys(c.appFlags ?? {}),
          ...Object.keys(globalFlags),
        ]);
        for (const m of (c.usage ?? "").matchAll(/--([a-z][a-z0-9-]*)/g))
          expect(declared.has(m[1]!), `${c.name}: --${m[1]!}`).toBe(true);
        for (const m of (c.usage ?? "").matchAll(/(?<![\w-])-([a-z])\b/g)) {
          const shorts = Object.values(c.flags ?? {}).map((f) => f.short);
          expect(shorts.includes(m[1]), `${c.name}: -${m[1]!}`).toBe(true);
        }
        walk(c.children ?? []);
      }
    };
    walk(commandTree());
  });
});

describe("a bad flag", () => {
  it("gets one error line naming the command, then the usage line, exit 254, for every command", async () => {
    const lines: string[] = [];
    for (const p of [[], ...all]) {
      // `help` takes topics, not flags; `run`/`prepare` read the flag before any image.
      if (p[0] === "help") continue;
      const r = await runRkt([...p, "--bogus-flag", "x"], { cwd });
      expect(r.code, p.join(" ")).toBe(254);
      expect(r.stdout).toBe("");
      const [first, second, ...rest] = r.stderr.split("\n");
      expect(first).toBe(`${p[p.length - 1] ?? "rkt"}: unknown flag: --bogus-flag`);
      expect(second).toMatch(new RegExp(`^Usage: rkt${p.map((w) => ` ${w}`).join("")}( |$)`));
      expect(rest).toEqual([""]);
      lines.push(`$ rkt ${[...p, "--bogus-flag", "x"].join(" ")}`, first!, second!);
    }
    await expect(`${lines.join("\n")}\n`).toMatchFileSnapshot("snapshots/bad-flag.txt");
  });

  it("gets pflag's wording for a missing value, a shorthand and a bad boolean", async () => {
    const cases: [string[], string][] = [
      [["image", "gc", "--grace-period"], "gc: flag needs an argument: --grace-period"],
      [["image", "convert", "-o"], "convert: flag needs an argument: 'o' in -o"],
      [["fetch", "-x", "a"], "fetch: unknown shorthand flag: 'x' in -x"],
      [
        ["trust", "--root=maybe", "k"],
        'trust: invalid argument "maybe" for "--root" flag: strconv.ParseBool: parsing "maybe": invalid syntax',
      ],
      [["fetch", "--convert=oci", "a"], 'fetch: invalid argument "oci" for "--convert" flag: must be aci'],
      [["run", "--exec=/x", "img"], "run: unknown flag: --exec"],
      [["run", "img", "--bogus"], "run: unknown flag: --bogus"],
    ];
    for (const [args, line] of cases) {
      const r = await runRkt(args, { cwd });
      expect(r.code, args.join(" ")).toBe(254);
      expect(r.stderr.split("\n")[0]).toBe(line);
      expect(r.stderr.split("\n")[1]).toMatch(/^Usage: rkt /);
    }
  });

  it("Go booleans take =false; --version prints the version, exit 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rkt-help-"));
    const r = await runRkt(["image", "list", "--no-legend=false", "--full=0", "--dir", dir], { cwd });
    rmSync(dir, { recursive: true, force: true });
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")[0]).toMatch(/^ID\tNAME/);
    const v = await runRkt(["--version"], { cwd });
    expect(v).toMatchObject({ code: 0, stderr: "" });
    expect(v.stdout).toMatch(/^rkt Version: \d+\.\d+\.\d+\nappc Version: /);
  });
});
