// `rkt image sync` (issue 13) vs `skopeo sync --src yaml --dest docker` of the same YAML, in the
// same run: 10 images sharing a base layer, registry to registry, into an empty registry each
// run (goal ≤ 0.5× skopeo), and again into a registry that already holds them all (goal ≤ 0.1×,
// and 0 blob bytes sent).
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { pushLayout, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { cacheDir } from "../fixtures.js";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");
// Another build's bin/rkt.js (e.g. main's, before a change), measured in the same rounds.
const baseline = process.env["RKT_BENCH_BASELINE"];
const images = 10;

function report(r: BenchResult, goal: number, nodeSeconds: number): void {
  const [ours, peer] = r.subjects;
  const ratio = ours!.median / peer!.median;
  process.stdout.write(
    `${r.name}: ours/skopeo ${ratio.toFixed(2)} (goal ≤ ${goal.toFixed(2)}: ${ratio <= goal ? "ok" : "MISSED"}), ours ${ours!.median.toFixed(2)} s = ${(ours!.median / nodeSeconds).toFixed(1)}× node -e 0, peak RSS ${((ours!.peakRssKiB ?? 0) / 1024).toFixed(1)} MiB; load average ${load()}\n`,
  );
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

// What one run asked a registry, from its log (distribution logs every request at level info,
// with its time): requests per method and kind, logged from `from` to `to` (Date.now() values).
function requestKinds(log: string, from: number, to = Infinity): { total: number; kinds: string } {
  const lines = log.split("\n").filter((l) => {
    if (!l.includes('msg="response completed')) return false;
    const t = Date.parse(/^time="([^"]+)"/.exec(l)?.[1] ?? "");
    return t >= from && t < to;
  });
  const counts = new Map<string, number>();
  for (const l of lines) {
    const method = /http\.request\.method=(\S+)/.exec(l)?.[1] ?? "?";
    const uri = /http\.request\.uri=("[^"]*"|\S+)/.exec(l)?.[1]?.replace(/"/g, "") ?? "";
    const kind = /\/manifests\//.test(uri)
      ? "manifest"
      : /\/blobs\/uploads\//.test(uri)
        ? "upload"
        : /\/blobs\//.test(uri)
          ? "blob"
          : uri === "/v2/"
            ? "/v2/"
            : uri;
    const k = `${method} ${kind}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const kinds = [...counts]
    .sort()
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  return { total: lines.length, kinds };
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
    const fresh = async (): Promise<Registry> => {
      const r = await startRegistry({ mode: "plain" });
      dests.push(r);
      return r;
    };
    // The same TLS settings as skopeo's: the YAML's tls-verify for the origin, --dest-tls-verify.
    const ours = (host: string, bin = rkt) =>
      spawnMeasured(process.execPath, [
        bin,
        "--dir",
        join(work, "store"),
        "image",
        "sync",
        "-q",
        "--dest-tls-verify=false",
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
    const coldRuns = 5;
    const subjects = baseline === undefined ? 2 : 3;
    const pool = await Promise.all(Array.from({ length: subjects * (coldRuns + 1) }, fresh));
    const next = (): string => pool.pop()!.host;
    const before = (host: () => string) =>
      baseline === undefined ? {} : { "rkt (baseline)": () => ours(host(), baseline) };
    report(
      await bench(`sync of ${images} images sharing a base layer into an empty registry`, {
        ours: () => ours(next()),
        peers: { "skopeo sync": () => skopeo(next()), ...before(next) },
        runs: coldRuns,
      }),
      0.5,
      nodeSeconds,
    );
    const warmOurs = await fresh();
    const warmTheirs = await fresh();
    await ours(warmOurs.host);
    await skopeo(warmTheirs.host);
    // The floors of a node CLI, in the same rounds: node itself, and rkt doing nothing.
    report(
      await bench(`re-sync of ${images} unchanged images`, {
        ours: () => ours(warmOurs.host),
        peers: {
          "skopeo sync": () => skopeo(warmTheirs.host),
          ...before(() => warmOurs.host),
          "rkt version": () => spawnMeasured(process.execPath, [rkt, "version"]),
          "node -e 0": () => spawnMeasured(process.execPath, ["-e", "0"]),
        },
        runs: 9,
      }),
      0.1,
      nodeSeconds,
    );
    // One more re-sync each, counted at both ends: no blob moves, and what each asks per tag.
    const t0 = Date.now();
    await ours(warmOurs.host);
    const t1 = Date.now();
    await skopeo(warmTheirs.host);
    // The registries write their logs as they answer; give the last lines a moment.
    await new Promise((r) => setTimeout(r, 200));
    for (const [who, c] of [
      ["ours, destination", requestKinds(warmOurs.logs(), t0, t1)],
      ["ours, origin", requestKinds(origin.logs(), t0, t1)],
      ["skopeo, destination", requestKinds(warmTheirs.logs(), t1)],
      ["skopeo, origin", requestKinds(origin.logs(), t1)],
    ] as const) {
      process.stdout.write(`re-sync requests, ${who}: ${c.total} (${c.kinds})\n`);
    }
  } finally {
    await Promise.all([origin, ...dests].map((r) => r.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
