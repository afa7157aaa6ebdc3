// docker2aci (issue 12), against the original docker2aci binary in the same run when one is
// found ($DOCKER2ACI, else the peers directory beside the checkout):
// - a `docker save` archive of the Debian minbase rootfs (one 206 MB plain layer), converted to
//   one uncompressed ACI (goal ≤ 0.3× docker2aci) and to a gzip'd one (goal ≤ 0.5×);
// - the 3-layer `debian` fixture straight from the registry, squashed and per layer (no peer:
//   docker2aci hangs on these pulls), wall time and peak RSS (≤ 150 MiB).
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import { cacheDir, ensureFixture, fixtureRegistry } from "../fixtures.js";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const ours = resolve(import.meta.dirname, "..", "..", "..", "packages", "docker2aci", "bin", "docker2aci.js");
const rssLimitMiB = 150;

function peerBinary(): string | undefined {
  const candidates = [
    process.env["DOCKER2ACI"],
    resolve(import.meta.dirname, "..", "..", "..", "..", "shared", "peers", "docker2aci"),
  ];
  return candidates.find((c): c is string => c !== undefined && c !== "" && existsSync(c));
}

function sh(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, {
    stdio: ["ignore", "ignore", "inherit"],
    ...(cwd === undefined ? {} : { cwd }),
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status})`);
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest("hex");
}

/** A `docker save` archive of the minbase rootfs: one plain layer, built once in the cache. */
async function minbaseArchive(): Promise<string> {
  const file = join(cacheDir(), "data", "debian-minbase.docker.tar");
  if (existsSync(file)) return file;
  const rootfs = join(cacheDir(), "debootstrap-bookworm-minbase");
  if (!existsSync(rootfs)) await ensureFixture("debian");
  await mkdir(join(cacheDir(), "data"), { recursive: true });
  await mkdir(join(cacheDir(), "scratch"), { recursive: true });
  const work = await mkdtemp(join(cacheDir(), "scratch", "minbase-archive-"));
  try {
    process.stderr.write(`bench convert: building ${file} (once)\n`);
    sh("tar", ["--numeric-owner", "--xattrs", "-cf", join(work, "layer.tar"), "-C", rootfs, "."]);
    const diffId = await sha256File(join(work, "layer.tar"));
    // docker save's full form: the legacy `repositories` + `<id>/json` (what docker2aci reads)
    // and `manifest.json` + config (what we read).
    const id = createHash("sha256").update(`bench-minbase-${diffId}`).digest("hex");
    await mkdir(join(work, id));
    await rename(join(work, "layer.tar"), join(work, id, "layer.tar"));
    const cfg = { Cmd: ["/bin/sh"], Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] };
    const base = { architecture: "amd64", os: "linux", created: "2026-01-01T00:00:00Z" };
    await writeFile(
      join(work, id, "json"),
      JSON.stringify({ id, ...base, config: cfg, container_config: cfg }),
    );
    await writeFile(join(work, id, "VERSION"), "1.0");
    const config = JSON.stringify({
      ...base,
      config: cfg,
      rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
    });
    const configHex = createHash("sha256").update(config).digest("hex");
    await writeFile(join(work, `${configHex}.json`), config);
    const repoTag = "bench.example/minbase:1";
    await writeFile(
      join(work, "manifest.json"),
      JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [repoTag], Layers: [`${id}/layer.tar`] }]),
    );
    await writeFile(join(work, "repositories"), JSON.stringify({ "bench.example/minbase": { "1": id } }));
    sh("tar", [
      "-cf",
      `${file}.partial`,
      "-C",
      work,
      "manifest.json",
      "repositories",
      `${configHex}.json`,
      id,
    ]);
    await rename(`${file}.partial`, file);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return file;
}

function report(r: BenchResult, goal: number | undefined): void {
  const [o, peer] = r.subjects;
  const rss = (o!.peakRssKiB ?? 0) / 1024;
  const ratio = peer === undefined ? undefined : o!.median / peer.median;
  const vs =
    ratio === undefined || goal === undefined
      ? "no peer"
      : `ours/docker2aci ${ratio.toFixed(2)} (goal ≤ ${goal.toFixed(2)}: ${ratio <= goal ? "ok" : "MISSED"})`;
  process.stdout.write(
    `${r.name}: ${vs}, ours ${o!.median.toFixed(2)} s, peak RSS ${rss.toFixed(1)} MiB (limit ${rssLimitMiB}: ${rss <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
  );
}

export async function run(): Promise<void> {
  const archive = await minbaseArchive();
  const peer = peerBinary();
  if (peer === undefined)
    process.stdout.write("convert: no docker2aci binary ($DOCKER2ACI): our figures only\n");
  const scratch = join(cacheDir(), "scratch");
  await mkdir(scratch, { recursive: true });
  const work = await mkdtemp(join(scratch, "rkt-bench-convert-"));
  // Each run writes into its own empty directory (both tools write to the working directory).
  const inFresh = (cmd: string, args: string[]) => async () => {
    const cwd = await mkdtemp(join(work, "run-"));
    try {
      return await spawnMeasured(cmd, args, { cwd });
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  };
  const origin = await fixtureRegistry();
  try {
    for (const [compression, goal] of [
      ["none", 0.3],
      ["gzip", 0.5],
    ] as const) {
      const args = [`-compression=${compression}`, archive];
      report(
        await bench(`docker save archive (206 MB layer) to one ${compression} ACI`, {
          ours: inFresh(process.execPath, [ours, ...args]),
          peers: peer === undefined ? {} : { docker2aci: inFresh(peer, args) },
          runs: 3,
        }),
        goal,
      );
    }
    const fx = await ensureFixture("debian");
    const ref = `docker://${origin.host}/${fx.repoTag}`;
    for (const squash of [true, false]) {
      report(
        await bench(`the debian fixture from the registry, ${squash ? "squashed" : "one ACI per layer"}`, {
          ours: inFresh(process.execPath, [
            ours,
            "-insecure-allow-http",
            ...(squash ? [] : ["-nosquash"]),
            ref,
          ]),
          peers: {},
          runs: 3,
        }),
        undefined,
      );
    }
  } finally {
    await origin.stop();
    await rm(work, { recursive: true, force: true });
  }
}
