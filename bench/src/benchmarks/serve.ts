// `rkt image serve` (issue 13, item 2): 8 concurrent `rkt fetch --no-render` of the Debian fixture
// from a node's store served by `rkt image serve`, vs the same 8 from the docker-registry that
// holds the fixture, in the same run (goal: throughput ≥ 1.0× the registry's). The server's peak
// RSS over every run is its VmHWM, read from /proc before it is stopped (goal ≤ 200 MiB).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cacheDir, ensureFixture, fixtureRegistry } from "../fixtures.js";
import { bench, spawnMeasured } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");
const clients = 8;
const rssGoalMiB = 200;
const throughputGoal = 1.0;

// Starts `rkt image serve` on a free loopback port; resolves once it printed its address.
async function startServe(dir: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [rkt, "--dir", dir, "image", "serve", "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const address = await new Promise<string>((done, fail) => {
    let text = "";
    child.stdout.on("data", (c: Buffer) => {
      text += c.toString();
      const m = /listening on http:\/\/(\S+)\n/.exec(text);
      if (m?.[1] !== undefined) done(m[1]);
    });
    child.on("exit", (code) => fail(new Error(`rkt image serve exited (${code}) before listening`)));
  });
  return { child, address };
}

async function peakRssMiB(pid: number): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN) / 1024;
}

export async function run(): Promise<void> {
  const fixture = await ensureFixture("debian");
  await mkdir(join(cacheDir(), "scratch"), { recursive: true });
  const work = await mkdtemp(join(cacheDir(), "scratch", "rkt-bench-serve-"));
  const reg = await fixtureRegistry();
  let serve: { child: ChildProcess; address: string } | undefined;
  try {
    const fetchArgs = (dir: string, ref: string) => [
      rkt,
      "--dir",
      dir,
      "--insecure-options=image,http",
      "fetch",
      "--no-render",
      ref,
    ];
    // The warm node: the fixture fetched once from the registry, as a node that ran it has it.
    const warm = join(work, "warm");
    await spawnMeasured(process.execPath, fetchArgs(warm, `docker://${reg.host}/${fixture.repoTag}`));
    serve = await startServe(warm);
    const served = serve.address;
    let round = 0;
    // Eight neighbours at once, each into an empty store of its own.
    const pullAll = (ref: string) => async (): Promise<void> => {
      const dirs = Array.from({ length: clients }, (_, i) => join(work, `n${round}-${i}`));
      round++;
      try {
        await Promise.all(dirs.map((d) => spawnMeasured(process.execPath, fetchArgs(d, ref))));
      } finally {
        await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
      }
    };
    // The stored name is REGISTRY/bench/debian; a mirror is asked for bench/debian.
    const r = await bench(
      `${clients} concurrent rkt fetch of the Debian fixture: rkt image serve vs docker-registry`,
      {
        ours: pullAll(`docker://${served}/${fixture.repoTag}`),
        peers: { "docker-registry": pullAll(`docker://${reg.host}/${fixture.repoTag}`) },
        runs: 5,
      },
    );
    const rss = await peakRssMiB(serve.child.pid!);
    const [ours, peer] = r.subjects;
    const ratio = peer!.median / ours!.median;
    const mib = (clients * fixture.bytes) / 2 ** 20;
    process.stdout.write(
      `serve: ${mib.toFixed(0)} MiB per run; throughput ours ${(mib / ours!.median).toFixed(0)} MiB/s vs docker-registry ${(mib / peer!.median).toFixed(0)} MiB/s = ${ratio.toFixed(2)}× (goal ≥ ${throughputGoal.toFixed(1)}: ${ratio >= throughputGoal ? "ok" : "MISSED"}); server peak RSS ${rss.toFixed(1)} MiB (goal ≤ ${rssGoalMiB}: ${rss <= rssGoalMiB ? "ok" : "MISSED"})\n`,
    );
  } finally {
    if (serve !== undefined) {
      const exited = new Promise((done) => serve!.child.once("exit", done));
      serve.child.kill("SIGTERM");
      await exited;
    }
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}
