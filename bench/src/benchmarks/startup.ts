// Start-up (issue 11, item 4): commands that do little, each run as a child process the way a user
// runs them (`node packages/cli/bin/rkt.js …`), three ways, interleaved with `node -e 0` in the
// same rounds: the bundle with a warm code cache, the bundle with no cache (a fresh
// XDG_CACHE_HOME per run, so the run also writes it), and the tsc output (RKT_NO_BUNDLE=1).
// Every figure is also given as a multiple of `node -e 0`, what any node command pays first.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const root = resolve(import.meta.dirname, "..", "..", "..");
const rkt = join(root, "packages", "cli", "bin", "rkt.js");
const layout = join(root, "examples", "hello-oci");

type Mode = "warm" | "cold" | "unbundled";

// What RKT_DEBUG_STARTUP=1 must report for each mode: a stale or missing bundle would silently
// measure the unbundled path three times.
const expected: Record<Mode, RegExp> = {
  warm: /^rkt-startup: bundle cache=hit /m,
  cold: /^rkt-startup: bundle cache=missing path=\S+ wrote=yes/m,
  unbundled: /^rkt-startup: unbundled reason=RKT_NO_BUNDLE/m,
};

export async function run(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "rkt-bench-startup-"));
  try {
    const dir = join(work, "store");
    const warmCache = join(work, "cache-warm");
    let cold = 0;
    const env = (mode: Mode): NodeJS.ProcessEnv => {
      const e: NodeJS.ProcessEnv = { ...process.env, RKT_DEBUG_STARTUP: undefined, RKT_NO_BUNDLE: undefined };
      if (mode === "unbundled") e["RKT_NO_BUNDLE"] = "1";
      e["XDG_CACHE_HOME"] = mode === "cold" ? join(work, `cache-cold-${cold++}`) : warmCache;
      return e;
    };
    // Runs rkt to completion; returns its stderr, throws on a non-zero exit.
    const rktSync = (args: readonly string[], e: NodeJS.ProcessEnv): string => {
      const r = spawnSync(process.execPath, [rkt, ...args], { env: e, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`rkt ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
      return r.stderr;
    };

    // The store holds the example image, so the fetch case is a re-fetch.
    rktSync(["--dir", dir, "fetch", "--no-render", "--quiet", `oci:${layout}:latest`], env("unbundled"));
    const cases: { name: string; args: string[] }[] = [
      { name: "rkt --help", args: ["--help"] },
      { name: "rkt version", args: ["version"] },
      { name: "rkt image list (empty store)", args: ["--dir", join(work, "empty"), "image", "list"] },
      {
        name: "rkt fetch oci: re-fetch of a stored image",
        args: ["--dir", dir, "fetch", "--no-render", "--quiet", `oci:${layout}:latest`],
      },
    ];
    // Prime the warm cache, then check each mode runs the path it is named after.
    rktSync(cases[0]!.args, env("warm"));
    for (const mode of ["warm", "cold", "unbundled"] as const) {
      const said = rktSync(cases[0]!.args, { ...env(mode), RKT_DEBUG_STARTUP: "1" });
      if (!expected[mode].test(said))
        throw new Error(`startup: ${mode} run said ${JSON.stringify(said)}; run \`npm run build\` first`);
    }

    const rows: string[] = [];
    for (const c of cases) {
      const r = await bench(`startup: ${c.name}`, {
        ours: () => spawnMeasured(process.execPath, [rkt, ...c.args], { env: env("warm") }),
        peers: {
          "bundle, no cache": () => spawnMeasured(process.execPath, [rkt, ...c.args], { env: env("cold") }),
          unbundled: () => spawnMeasured(process.execPath, [rkt, ...c.args], { env: env("unbundled") }),
          "node -e 0": () => spawnMeasured(process.execPath, ["-e", "0"]),
        },
        runs: 10,
      });
      rows.push(summary(c.name, r));
    }
    process.stdout.write(
      [
        "\n## startup: medians as multiples of node -e 0 (same rounds)",
        "case | bundle, warm cache | bundle, no cache | unbundled (tsc output)",
        ...rows,
        "",
      ].join("\n"),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One line: each subject's median in seconds and as a multiple of `node -e 0`'s. */
function summary(name: string, r: BenchResult): string {
  const by = (n: string) => r.subjects.find((s) => s.name === n)!.median;
  const node = by("node -e 0");
  const cell = (n: string) => `${by(n).toFixed(3)} s = ${(by(n) / node).toFixed(2)}×`;
  return `${name} | ${cell("ours")} | ${cell("bundle, no cache")} | ${cell("unbundled")} (node -e 0 ${node.toFixed(3)} s)`;
}
