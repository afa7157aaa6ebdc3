// `rkt image sync` (issue 13) vs `skopeo sync --src yaml --dest docker` of the same YAML, in the
// same run: 10 images sharing a base layer, registry to registry, into an empty registry each
// run (goal ≤ 0.5× skopeo), and again into a registry that already holds them all (goal ≤ 0.1×,
// and 0 blob bytes sent).
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pushLayout, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { cacheDir } from "../fixtures.js";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");
const images = 10;

function report(r: BenchResult, goal: number, nodeSeconds: number): void {
  const [ours, peer] = r.subjects;
  const ratio = ours!.median / peer!.median;
  process.stdout.write(
    `${r.name}: ours/skopeo ${ratio.toFixed(2)} (goal ≤ ${goal.toFixed(2)}: ${ratio <= goal ? "ok" : "MISSED"}), ours ${ours!.median.toFixed(2)} s = ${(ours!.median / nodeSeconds).toFixed(1)}× node -e 0, peak RSS ${((ours!.peakRssKiB ?? 0) / 1024).toFixed(1)} MiB\n`,
  );
}

export async function run(): Promise<void> {
  const node = await bench("node -e 0", {
    ours: () => spawnMeasured(process.execPath, ["-e", "0"]),
    peers: {},
    runs: 7,
  });
  const nodeSeconds = node.subjects[0]!.median;
  await mkdir(join(cacheDir(), "scratch"), { recursive: true });
  const work = await mkdtemp(join(cacheDir(), "scratch", "rkt-bench-sync-"));
  const origin = await startRegistry({ mode: "plain" });
  const dests: Registry[] = [];
  try {
    // A 32 MiB base layer shared by all, 2 MiB of each image's own (random: incompressible).
    const base = [{ path: "base.bin", type: "file" as const, content: randomBytes(32 << 20) }];
    for (let i = 0; i < images; i++) {
      const dir = join(work, `layout-${i}`);
      await writeOciLayout(
        dir,
        { layers: [base, [{ path: `own-${i}.bin`, type: "file", content: randomBytes(2 << 20) }]] },
        { ref: "x" },
      );
      await pushLayout(dir, `bench/app${i}:v1`, origin);
    }
    const yaml = join(work, "sync.yaml");
    await writeFile(
      yaml,
      [
        `${origin.host}:`,
        "  images:",
        ...Array.from({ length: images }, (_, i) => `    bench/app${i}: ["v1"]`),
        "  tls-verify: false",
        "",
      ].join("\n"),
    );
    const fresh = async (): Promise<string> => {
      const r = await startRegistry({ mode: "plain" });
      dests.push(r);
      return r.host;
    };
    const ours = (host: string) =>
      spawnMeasured(process.execPath, [
        rkt,
        "--dir",
        join(work, "store"),
        "--insecure-options=http",
        "image",
        "sync",
        "-q",
        "--config",
        yaml,
        `docker://${host}`,
      ]);
    const skopeo = (host: string) =>
      spawnMeasured("skopeo", [
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        yaml,
        host,
      ]);
    const pool = await Promise.all(Array.from({ length: 10 }, fresh));
    const next = (): string => pool.pop()!;
    report(
      await bench(`sync of ${images} images sharing a base layer into an empty registry`, {
        ours: () => ours(next()),
        peers: { "skopeo sync": () => skopeo(next()) },
        runs: 3,
      }),
      0.5,
      nodeSeconds,
    );
    const warmOurs = await fresh();
    const warmTheirs = await fresh();
    await ours(warmOurs);
    await skopeo(warmTheirs);
    report(
      await bench(`re-sync of ${images} unchanged images`, {
        ours: () => ours(warmOurs),
        peers: { "skopeo sync": () => skopeo(warmTheirs) },
        runs: 5,
      }),
      0.1,
      nodeSeconds,
    );
  } finally {
    await Promise.all([origin, ...dests].map((r) => r.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
