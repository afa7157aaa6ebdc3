// `rkt run --net=host` of a stored, rendered image (the bundled example, a static binary) from
// start to exit, against the floor: `runc run` of a ready bundle of the same root filesystem, and
// `node -e 0` (what any node command pays before doing anything). As root with runc.
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bench, spawnMeasured } from "../harness.js";

const root = resolve(import.meta.dirname, "..", "..", "..");
const rkt = join(root, "packages", "cli", "bin", "rkt.js");
const aci = join(root, "examples", "hello.aci");

export async function run(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "rkt-bench-run-"));
  try {
    const dir = join(work, "store");
    const rktArgs = ["--dir", dir, "--insecure-options=image"];
    execFileSync(process.execPath, [rkt, ...rktArgs, "fetch", "--quiet", aci], { stdio: "ignore" });
    const bundle = join(work, "bundle");
    execFileSync(process.execPath, [
      rkt,
      ...rktArgs,
      "image",
      "extract",
      "--rootfs-only",
      "example.com/hello",
      join(bundle, "rootfs"),
    ]);
    execFileSync("runc", ["spec"], { cwd: bundle });
    const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as {
      process: { terminal: boolean; args: string[] };
    };
    spec.process.terminal = false;
    spec.process.args = ["/bin/hello"];
    await writeFile(join(bundle, "config.json"), JSON.stringify(spec));
    let n = 0;
    await bench("rkt run --net=host of a stored image, start to exit (vs runc run of a ready bundle)", {
      ours: () =>
        spawnMeasured(process.execPath, [
          rkt,
          ...rktArgs,
          "run",
          "--net=host",
          "--quiet",
          "example.com/hello",
        ]),
      peers: {
        "runc run": () => spawnMeasured("runc", ["run", "--bundle", bundle, `bench-${process.pid}-${n++}`]),
        "node -e 0": () => spawnMeasured(process.execPath, ["-e", "0"]),
      },
      runs: 10,
    });
  } finally {
    // Pods leave no mounts behind (tested), so the directory can simply go.
    await rm(work, { recursive: true, force: true });
  }
}
