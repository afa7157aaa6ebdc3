// Registry pulls (issue 5), against the cached Debian fixture served by a local testkit registry:
// - cold pull: `rkt fetch docker://…` into an empty store (a child process: its peak RSS is ours
//   alone) vs `skopeo copy docker://… oci:DIR:TAG` in the same run;
// - warm re-fetch with `--pull-policy=update` and an unchanged tag: wall time of the whole command
//   and the blob bytes it reports downloading (goal: ≤ 0.2 s, 0 bytes);
// - a pull killed (SIGKILL) once half the image has crossed the wire, then run again: the bytes the
//   registry sent over both runs, counted by a TCP relay between rkt and the registry, over the
//   image's size (goal ≤ 1.05×; HTTP headers included, so the floor is slightly above 1).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { cacheDir, ensureFixture, fixtureRegistry } from "../fixtures.js";
import { baselineBin, bench, rktBin, spawnMeasured, withBaseline, type RunReport } from "../harness.js";

const rkt = rktBin;
const rssLimitMiB = 150;

// `rkt fetch` renders what it fetched when it can (root with overlayfs); these benchmarks measure
// the fetch into the store against copies that do not unpack, so rendering is turned off where
// the binary has the flag.
const fetchArgsOf = new Map<string, string[]>();
function fetchArgs(bin = rkt): string[] {
  let a = fetchArgsOf.get(bin);
  if (a === undefined) {
    const help = spawnSync(process.execPath, [bin, "fetch", "--help"], { encoding: "utf8" });
    a = `${help.stdout}${help.stderr}`.includes("--no-render") ? ["fetch", "--no-render"] : ["fetch"];
    fetchArgsOf.set(bin, a);
  }
  return a;
}
const fetchCmd = fetchArgs();
const warmGoalSeconds = 0.15;
const resumeGoal = 1.05;

/** A TCP relay to `target` that counts the bytes flowing back to clients. */
async function countingRelay(target: { host: string; port: number }): Promise<{
  port: number;
  received: () => number;
  reset: () => void;
  close: () => Promise<void>;
}> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    sockets.add(client).add(upstream);
    upstream.on("data", (b: Buffer) => (received += b.length));
    client.pipe(upstream).pipe(client);
    const done = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("relay has no port");
  return {
    port: addr.port,
    received: () => received,
    reset: () => (received = 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface FetchJson {
  bytesDownloaded?: number;
}

async function fetchJson(
  dir: string,
  url: string,
  bin = rkt,
): Promise<{ seconds: number; summary: FetchJson; peakRssKiB?: number | undefined }> {
  const t0 = process.hrtime.bigint();
  const r = await spawnMeasured(
    process.execPath,
    [bin, "--dir", dir, "--insecure-options=image,http", ...fetchArgs(bin), "--format=json", url],
    { capture: true },
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, summary: (JSON.parse(r.stdout) as FetchJson[])[0] ?? {}, peakRssKiB: r.peakRssKiB };
}

// Starts a pull and SIGKILLs it once `limit` bytes have come back through the relay.
async function killedPull(
  dir: string,
  url: string,
  relay: { received: () => number },
  limit: number,
): Promise<void> {
  const child = spawn(
    process.execPath,
    [rkt, "--dir", dir, "--insecure-options=image,http", ...fetchCmd, url],
    {
      stdio: "ignore",
    },
  );
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const timer = setInterval(() => {
    if (relay.received() >= limit) child.kill("SIGKILL");
  }, 5);
  try {
    const code = await exited;
    if (code === 0) throw new Error("the pull finished before it could be interrupted");
  } finally {
    clearInterval(timer);
  }
}

// A subject running `cmd` under /usr/bin/time in a fresh scratch directory, removed afterwards.
function inFreshDir(fresh: () => Promise<string>, cmd: string, args: (dir: string) => string[]) {
  return async (): Promise<RunReport> => {
    const dir = await fresh();
    try {
      return await spawnMeasured(cmd, args(dir));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}

// Bytes the killed pull left in the store's ingests (what a restart can resume from).
async function ingestBytes(dir: string): Promise<number> {
  const root = join(dir, "cas", "ingest");
  let n = 0;
  for (const e of await readdir(root).catch(() => [] as string[]))
    n += (await stat(join(root, e, "data")).catch(() => ({ size: 0 }))).size;
  return n;
}

// `docker save`-style archive of the fixture (skopeo writes it once into the cache): its layers
// are plain tars, so the import streams ~3x the pulled bytes; the point is bounded memory.
async function archiveImport(
  layoutDir: string,
  layoutRef: string,
  fresh: () => Promise<string>,
): Promise<void> {
  const file = join(cacheDir(), "data", "debian-docker-archive.tar");
  if (!existsSync(file)) {
    await mkdir(join(cacheDir(), "data"), { recursive: true });
    await spawnMeasured("skopeo", [
      "copy",
      "--quiet",
      `oci:${layoutDir}:${layoutRef}`,
      `docker-archive:${file}.partial:bench/debian:bookworm`,
    ]);
    await rename(`${file}.partial`, file);
  }
  const size = (await stat(file)).size;
  const r = await bench(
    `docker-archive import of the Debian fixture (${(size / 2 ** 20).toFixed(0)} MiB tar): rkt fetch vs skopeo copy to oci:`,
    {
      ours: inFreshDir(fresh, process.execPath, (dir) => [
        rkt,
        "--dir",
        dir,
        ...fetchCmd,
        `docker-archive:${file}`,
      ]),
      peers: withBaseline(
        {
          "skopeo copy": inFreshDir(fresh, "skopeo", (dir) => [
            "copy",
            "--quiet",
            `docker-archive:${file}`,
            `oci:${join(dir, "layout")}:bookworm`,
          ]),
        },
        (bin) =>
          inFreshDir(fresh, process.execPath, (dir) => [
            bin,
            "--dir",
            dir,
            ...fetchArgs(bin),
            `docker-archive:${file}`,
          ]),
      ),
      runs: 3,
      warmup: 1,
    },
  );
  const rss = (r.subjects[0]!.peakRssKiB ?? 0) / 1024;
  process.stdout.write(
    `docker-archive import: ${(size / 2 ** 20 / r.subjects[0]!.median).toFixed(0)} MiB/s, peak RSS ${rss.toFixed(1)} MiB (limit ${rssLimitMiB}: ${rss <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
  );
}

export async function run(): Promise<void> {
  const fixture = await ensureFixture("debian");
  const layout = JSON.parse(await readFile(join(fixture.layoutDir, "index.json"), "utf8")) as {
    manifests: { digest: string; size: number }[];
  };
  const top = layout.manifests.find((m) => m.digest === fixture.digest);
  const manifest = JSON.parse(
    await readFile(join(fixture.layoutDir, "blobs", "sha256", fixture.digest.slice(7)), "utf8"),
  ) as { config: { size: number }; layers: { size: number }[] };
  const imageBytes =
    (top?.size ?? 0) + manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
  const reg = await fixtureRegistry();
  const scratch = join(cacheDir(), "scratch");
  await mkdir(scratch, { recursive: true });
  const fresh = () => mkdtemp(join(scratch, "rkt-bench-pull-"));
  const url = `docker://${reg.host}/${fixture.repoTag}`;
  try {
    process.stdout.write(
      `\nfixture ${fixture.repoTag} ${fixture.digest}: ${manifest.layers.length} layers, ${(imageBytes / 2 ** 20).toFixed(1)} MiB\n`,
    );
    const pullArgs = (bin: string, render: boolean) => (dir: string) => [
      bin,
      "--dir",
      dir,
      "--insecure-options=image,http",
      ...(render ? ["fetch"] : fetchArgs(bin)),
      url,
    ];
    const skopeoCopy = (dir: string) => [
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      `docker://${reg.host}/${fixture.repoTag}`,
      `oci:${join(dir, "layout")}:bookworm`,
    ];
    const cold = await bench(`cold pull of the Debian fixture: rkt fetch vs skopeo copy`, {
      ours: inFreshDir(fresh, process.execPath, pullArgs(rkt, false)),
      peers: withBaseline({ "skopeo copy": inFreshDir(fresh, "skopeo", skopeoCopy) }, (bin) =>
        inFreshDir(fresh, process.execPath, pullArgs(bin, false)),
      ),
      runs: 5,
      warmup: 1,
    });
    const ours = cold.subjects[0]!;
    const rss = (ours.peakRssKiB ?? 0) / 1024;
    process.stdout.write(
      `cold pull: ours/skopeo ${(ours.median / cold.subjects[1]!.median).toFixed(2)} (goal ≤ 1.00), ${(imageBytes / 2 ** 20 / ours.median).toFixed(0)} MiB/s, peak RSS ${rss.toFixed(1)} MiB (limit ${rssLimitMiB}: ${rss <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
    );

    // Cold pull to a ready root filesystem: `rkt fetch` as root renders on fetch (the tree store:
    // every layer extracted, verified, hashed, synced) vs skopeo's copy then umoci's unpack.
    if (process.getuid?.() === 0) {
      const ready = await bench(
        `cold pull + ready rootfs: rkt fetch (render on fetch) vs skopeo copy + umoci unpack`,
        {
          ours: inFreshDir(fresh, process.execPath, pullArgs(rkt, true)),
          peers: withBaseline(
            {
              "skopeo copy + umoci unpack": async () => {
                const dir = await fresh();
                try {
                  const a = await spawnMeasured("skopeo", skopeoCopy(dir));
                  const b = await spawnMeasured("umoci", [
                    "unpack",
                    "--image",
                    `${join(dir, "layout")}:bookworm`,
                    join(dir, "bundle"),
                  ]);
                  return { peakRssKiB: Math.max(a.peakRssKiB ?? 0, b.peakRssKiB ?? 0) };
                } finally {
                  await rm(dir, { recursive: true, force: true });
                }
              },
            },
            (bin) => inFreshDir(fresh, process.execPath, pullArgs(bin, true)),
          ),
          runs: 3,
          warmup: 1,
        },
      );
      const r = ready.subjects[0]!;
      const rr = (r.peakRssKiB ?? 0) / 1024;
      process.stdout.write(
        `cold pull + rootfs: ours/(skopeo + umoci) ${(r.median / ready.subjects[1]!.median).toFixed(2)} (goal ≤ 0.50), peak RSS ${rr.toFixed(1)} MiB (limit ${rssLimitMiB}: ${rr <= rssLimitMiB ? "ok" : "EXCEEDED"})\n`,
      );
    }

    // Warm: one store, pulled once (untimed), then re-fetched with the default update policy.
    const warmDir = await fresh();
    const baseWarm = baselineBin() === undefined ? undefined : await fresh();
    try {
      await fetchJson(warmDir, url);
      if (baseWarm !== undefined) await fetchJson(baseWarm, url, baselineBin());
      let bytes = 0;
      const warmRun = (dir: string, bin: string) => async (): Promise<RunReport> => {
        const r = await fetchJson(dir, url, bin);
        bytes += r.summary.bytesDownloaded ?? 0;
        return { peakRssKiB: r.peakRssKiB, seconds: r.seconds };
      };
      const warm = await bench("warm re-fetch, --pull-policy=update, unchanged tag (whole rkt command)", {
        ours: warmRun(warmDir, rkt),
        peers: withBaseline({ "node -e 0": () => spawnMeasured(process.execPath, ["-e", "0"]) }, (bin) =>
          warmRun(baseWarm!, bin),
        ),
        runs: 7,
        warmup: 1,
      });
      const w = warm.subjects[0]!;
      const node = warm.subjects[1]!;
      process.stdout.write(
        `warm re-fetch: median ${w.median.toFixed(3)} s = ${(w.median / node.median).toFixed(2)}× node -e 0 (goals ≤ ${warmGoalSeconds} s and ≤ 2.0×: ${w.median <= warmGoalSeconds && w.median / node.median <= 2 ? "ok" : "MISSED"}), blob bytes downloaded over all runs: ${bytes}\n`,
      );
    } finally {
      await rm(warmDir, { recursive: true, force: true });
      if (baseWarm !== undefined) await rm(baseWarm, { recursive: true, force: true });
    }

    await archiveImport(fixture.layoutDir, fixture.layoutRef, fresh);

    // Interrupted at 50% and restarted, through a byte-counting relay.
    const [host, port] = [reg.host.split(":")[0]!, Number(reg.host.split(":")[1])];
    const relay = await countingRelay({ host, port });
    const relayUrl = `docker://127.0.0.1:${relay.port}/${fixture.repoTag}`;
    const ratios: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const dir = await fresh();
        try {
          relay.reset();
          await killedPull(dir, relayUrl, relay, imageBytes / 2);
          const first = relay.received();
          const kept = await ingestBytes(dir);
          const again = await fetchJson(dir, relayUrl);
          const total = relay.received();
          ratios.push(total / imageBytes);
          process.stdout.write(
            `interrupted pull ${i + 1}: killed after ${(first / 2 ** 20).toFixed(1)} MiB sent by the registry (${(kept / 2 ** 20).toFixed(1)} MiB in the ingests), restart downloaded ${((again.summary.bytesDownloaded ?? 0) / 2 ** 20).toFixed(1)} MiB of blobs; wire total ${(total / 2 ** 20).toFixed(1)} MiB = ${(total / imageBytes).toFixed(3)}× the image\n`,
          );
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    } finally {
      await relay.close();
    }
    const worst = Math.max(...ratios);
    process.stdout.write(
      `interrupted at 50% and restarted: worst ${worst.toFixed(3)}× the image bytes (goal ≤ ${resumeGoal}: ${worst <= resumeGoal ? "ok" : "MISSED"})\n`,
    );
  } finally {
    await reg.stop();
  }
}
