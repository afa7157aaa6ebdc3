// Copies between places (issue 9), the Debian fixture, each against skopeo in the same run:
// - registry to registry (`rkt image copy docker://A/x docker://B/y`), to a new repository each
//   run, and again to a repository that already holds every blob (goals ≤ 0.7× and ≤ 0.3×);
// - `rkt image push` of the stored image vs `skopeo copy oci:… docker://…` (goal ≤ 1.0×);
// - `rkt image save` to an oci-archive vs `skopeo copy oci:… oci-archive:…` (goal ≤ 0.7×).
// Peak RSS of every rkt run against the 150 MiB limit; wall times also as multiples of `node -e 0`.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { startRegistry } from "@rkt/testkit";
import { cacheDir, ensureFixture, fixtureRegistry } from "../fixtures.js";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");
const rssLimitMiB = 150;
const skopeoBlobCache = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

function report(r: BenchResult, goal: number, nodeSeconds: number): void {
  const [ours, peer] = r.subjects;
  const rss = (ours!.peakRssKiB ?? 0) / 1024;
  const ratio = ours!.median / peer!.median;
  process.stdout.write(
    `${r.name}: ours/skopeo ${ratio.toFixed(2)} (goal ≤ ${goal.toFixed(2)}: ${ratio <= goal ? "ok" : "MISSED"}), ours ${(ours!.median / nodeSeconds).toFixed(1)}× node -e 0, peak RSS ${rss.toFixed(1)} MiB (limit ${rssLimitMiB}: ${rss <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
  );
}

export async function run(): Promise<void> {
  const fixture = await ensureFixture("debian");
  const node = await bench("node -e 0", {
    ours: () => spawnMeasured(process.execPath, ["-e", "0"]),
    peers: {},
    runs: 7,
  });
  const nodeSeconds = node.subjects[0]!.median;
  const origin = await fixtureRegistry();
  const dest = await startRegistry({ mode: "plain" });
  // A registry that has a blob in any repository lets skopeo reuse it by a mount, so every cold
  // run gets its own empty registry, started before the timings.
  const empty = await Promise.all(Array.from({ length: 24 }, () => startRegistry({ mode: "plain" })));
  const next = (): string => {
    const r = empty.pop();
    if (r === undefined) throw new Error("out of empty registries");
    return r.host;
  };
  const scratch = join(cacheDir(), "scratch");
  await mkdir(scratch, { recursive: true });
  const work = await mkdtemp(join(scratch, "rkt-bench-copy-"));
  const src = `docker://${origin.host}/${fixture.repoTag}`;
  const rktRun = (args: string[]) => () =>
    spawnMeasured(process.execPath, [rkt, "--dir", join(work, "store"), "--insecure-options=http", ...args]);
  // skopeo remembers where it saw each blob (its blob-info cache) and mounts from there: dropped
  // before each run, so it sends what the destination lacks, as rkt does.
  const skopeo = (args: string[]) => async () => {
    await rm(skopeoBlobCache, { force: true });
    return spawnMeasured("skopeo", [
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      ...args,
    ]);
  };
  try {
    report(
      await bench("registry to registry, new repository", {
        ours: () => rktRun(["image", "copy", "-q", src, `docker://${next()}/cold/rkt:v1`])(),
        peers: { "skopeo copy": () => skopeo([src, `docker://${next()}/cold/skopeo:v1`])() },
        runs: 5,
      }),
      0.7,
      nodeSeconds,
    );
    // Both tools copy into repositories that already hold every blob (each primed once).
    await rktRun(["image", "copy", "-q", src, `docker://${dest.host}/warm/rkt:v1`])();
    await skopeo([src, `docker://${dest.host}/warm/skopeo:v1`])();
    report(
      await bench("registry to registry, destination holds every blob", {
        ours: rktRun(["image", "copy", "-q", src, `docker://${dest.host}/warm/rkt:v1`]),
        peers: { "skopeo copy": skopeo([src, `docker://${dest.host}/warm/skopeo:v1`]) },
        runs: 7,
      }),
      0.3,
      nodeSeconds,
    );
    const fetched = spawnSync(
      process.execPath,
      [rkt, "--dir", join(work, "store"), "--insecure-options=image,http", "fetch", "--no-render", src],
      { encoding: "utf8" },
    );
    if (fetched.status !== 0) throw new Error(`fetch failed: ${fetched.stderr}`);
    const stored = `${origin.host}/${fixture.repoTag}`;
    report(
      await bench("push of the stored image to a new repository vs skopeo from the OCI layout", {
        ours: () => rktRun(["image", "push", "-q", stored, `docker://${next()}/push/rkt:v1`])(),
        peers: {
          "skopeo copy": () =>
            skopeo([`oci:${fixture.layoutDir}:${fixture.layoutRef}`, `docker://${next()}/push/skopeo:v1`])(),
        },
        runs: 5,
      }),
      1.0,
      nodeSeconds,
    );
    report(
      await bench("save to an oci-archive vs skopeo from the OCI layout", {
        ours: () => rktRun(["image", "save", "-q", "--overwrite", "-o", join(work, "rkt.tar"), stored])(),
        peers: {
          "skopeo copy": async () => {
            await rm(join(work, "skopeo.tar"), { force: true });
            return skopeo([
              `oci:${fixture.layoutDir}:${fixture.layoutRef}`,
              `oci-archive:${join(work, "skopeo.tar")}`,
            ])();
          },
        },
        runs: 5,
      }),
      0.7,
      nodeSeconds,
    );
  } finally {
    await Promise.all([dest, ...empty].map((r) => r.stop()));
    await origin.stop();
    await rm(work, { recursive: true, force: true });
  }
}
