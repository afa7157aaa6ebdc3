// Benchmark fixtures, built once and cached outside the repository:
//   debian:      Debian bookworm minbase (debootstrap) + ~120 MB of binaries + a deleting layer
//   small-files: one layer of 50,000 small files
// Each is an OCI layout under $RKT_BENCH_CACHE (default ~/.cache/rkt-bench) and is also pushed to a
// registry whose storage lives in the cache, so benchmarks can start a registry over it and pull.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  directoryEntries,
  pushLayout,
  startRegistry,
  writeOciLayout,
  type FileEntry,
  type Registry,
} from "@rkt/testkit";

/** Bump when a fixture's content changes: cached fixtures of another version are rebuilt. */
export const fixtureVersion = "2";

/** Names of the fixtures this module builds. */
export type FixtureName = "debian" | "small-files";
export const fixtureNames: readonly FixtureName[] = ["debian", "small-files"];

/** A built fixture. */
export interface Fixture {
  name: FixtureName;
  /** OCI layout directory holding the image under `layoutRef`. */
  layoutDir: string;
  layoutRef: string;
  /** Repository and tag in the cached registry storage. */
  repoTag: string;
  /** Manifest digest. */
  digest: string;
  /** Total compressed layer bytes. */
  bytes: number;
}

/** Where fixtures live: `$RKT_BENCH_CACHE` or `~/.cache/rkt-bench`. */
export function cacheDir(): string {
  return process.env["RKT_BENCH_CACHE"] ?? join(homedir(), ".cache", "rkt-bench");
}

/** Registry storage holding every pushed fixture. */
export function registryStorage(): string {
  return join(cacheDir(), `registry-v${fixtureVersion}`);
}

/** Starts a plain registry over the cached fixture storage. Caller stops it. */
export async function fixtureRegistry(): Promise<Registry> {
  return await startRegistry({ storageDir: registryStorage() });
}

function log(msg: string): void {
  process.stderr.write(`fixtures: ${msg}\n`);
}

/** Returns the fixture, building (and pushing) it first when it is not cached. */
export async function ensureFixture(name: FixtureName): Promise<Fixture> {
  const dir = join(cacheDir(), `${name}-v${fixtureVersion}`);
  const stamp = join(dir, "fixture.json");
  if (existsSync(stamp)) return JSON.parse(await readFile(stamp, "utf8")) as Fixture;
  log(`building ${name} in ${dir} (once; cached afterwards)`);
  await pruneStale();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const started = Date.now();
  const fixture = name === "debian" ? await buildDebian(dir) : await buildSmallFiles(dir);
  const reg = await fixtureRegistry();
  try {
    const pushed = await pushLayout(fixture.layoutDir, fixture.repoTag, reg);
    if (pushed !== fixture.digest) throw new Error(`pushed ${pushed}, built ${fixture.digest}`);
  } finally {
    await reg.stop();
  }
  await writeFile(stamp, JSON.stringify(fixture, null, 2));
  log(
    `${name}: ${fixture.digest}, ${(fixture.bytes / 2 ** 20).toFixed(1)} MiB, ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  return fixture;
}

/** Removes fixtures and registry storage of other fixture versions. */
async function pruneStale(): Promise<void> {
  if (!existsSync(cacheDir())) return;
  for (const entry of await readdir(cacheDir())) {
    const m = /^(debian|small-files|registry)-v(.+)$/.exec(entry);
    if (m !== null && m[2] !== fixtureVersion) {
      log(`removing stale ${entry}`);
      await rm(join(cacheDir(), entry), { recursive: true, force: true });
    }
  }
}

/** The first Debian mirror apt uses on this machine (deb822 `.sources` or one-line `sources.list`). */
export async function aptMirror(): Promise<string> {
  const files: string[] = [];
  if (existsSync("/etc/apt/sources.list")) files.push("/etc/apt/sources.list");
  if (existsSync("/etc/apt/sources.list.d")) {
    for (const f of (await readdir("/etc/apt/sources.list.d")).sort()) {
      if (f.endsWith(".sources") || f.endsWith(".list")) files.push(join("/etc/apt/sources.list.d", f));
    }
  }
  for (const f of files) {
    const text = await readFile(f, "utf8");
    if (f.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string): string | undefined =>
          new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim();
        if (/\bdeb\b/.test(field("Types") ?? "") && /(^|\s)bookworm(\s|$)/.test(field("Suites") ?? "")) {
          const uri = field("URIs")?.split(/\s+/)[0];
          if (uri !== undefined) return uri;
        }
      }
    } else {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
      if (m?.[1] !== undefined) return m[1];
    }
  }
  throw new Error("fixtures: no bookworm mirror in /etc/apt/sources.list or /etc/apt/sources.list.d");
}

function needTool(tool: string, pkg: string): void {
  try {
    execFileSync("sh", ["-c", `command -v ${tool} || test -x /usr/sbin/${tool}`], { stdio: "ignore" });
  } catch {
    throw new Error(`fixtures: needs ${tool} (apt-get install ${pkg})`);
  }
}

async function runInherit(cmd: string, args: readonly string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
    c.on("error", reject);
    c.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} failed with status ${code}`)),
    );
  });
}

/** Entries of `gen` until `budget` bytes of file content have been yielded (directories always). */
async function* limitBytes(gen: AsyncIterable<FileEntry>, budget: number): AsyncGenerator<FileEntry> {
  let used = 0;
  for await (const e of gen) {
    if (e.type === "file" && typeof e.content === "object" && "size" in e.content) {
      if (used + e.content.size > budget) continue;
      used += e.content.size;
    }
    // Hard links to files we skipped would dangle; symlinks may dangle harmlessly.
    if (e.type === "hardlink") continue;
    yield e;
  }
}

// What slim base images (debian:bookworm-slim) leave out: apt lists and the downloaded .debs.
const slimSkip =
  /^(var\/lib\/apt\/lists\/[^/]+$|var\/cache\/apt\/(archives\/[^/]+\.deb|[^/]+\.bin)$|\.rkt-complete$)/;
async function* slim(gen: AsyncIterable<FileEntry>): AsyncGenerator<FileEntry> {
  for await (const e of gen) if (!(e.type === "file" && slimSkip.test(e.path))) yield e;
}

async function* concat(...gens: AsyncIterable<FileEntry>[]): AsyncGenerator<FileEntry> {
  for (const g of gens) yield* g;
}

async function buildDebian(dir: string): Promise<Fixture> {
  if (process.getuid?.() !== 0)
    throw new Error("fixtures: debian needs root (debootstrap creates device nodes)");
  needTool("debootstrap", "debootstrap");
  const mirror = await aptMirror();
  // The debootstrap tree is cached on its own (outside any fixture version): rebuilding a fixture
  // must not download Debian again.
  const rootfs = join(cacheDir(), "debootstrap-bookworm-minbase");
  if (!existsSync(join(rootfs, ".rkt-complete"))) {
    await rm(rootfs, { recursive: true, force: true });
    log(`debootstrap --variant=minbase bookworm ${rootfs} ${mirror} (takes minutes)`);
    await runInherit("debootstrap", ["--variant=minbase", "bookworm", rootfs, mirror]);
    await writeFile(join(rootfs, ".rkt-complete"), "");
  }
  const layoutDir = join(dir, "layout");
  // ~140 MiB of real binaries: compressible like production layers, unlike random data.
  const bulk = concat(
    dirs("opt", "opt/bulk", "opt/bulk/bin", "opt/bulk/lib"),
    limitBytes(directoryEntries("/usr/bin", "opt/bulk/bin"), 90 * 2 ** 20),
    limitBytes(directoryEntries("/usr/lib/x86_64-linux-gnu", "opt/bulk/lib"), 50 * 2 ** 20),
  );
  const img = await writeOciLayout(
    layoutDir,
    {
      layers: [
        { entries: slim(directoryEntries(rootfs)) },
        { entries: bulk },
        [
          { path: "usr/share/doc", type: "opaque" },
          { path: "usr/share/doc/README", type: "file", content: "docs removed\n" },
          { path: "usr/share/locale", type: "whiteout" },
          { path: "etc/motd", type: "whiteout" },
          { path: "opt/bulk/bin/perl", type: "whiteout" },
        ],
      ],
      config: {
        Cmd: ["/bin/bash"],
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      },
    },
    { ref: "bookworm" },
  );
  return {
    name: "debian",
    layoutDir,
    layoutRef: "bookworm",
    repoTag: "bench/debian:bookworm",
    digest: img.descriptor.digest,
    bytes: img.layers.reduce((n, l) => n + l.size, 0),
  };
}

async function* dirs(...paths: string[]): AsyncGenerator<FileEntry> {
  for (const path of paths) yield { path, type: "dir" };
  await Promise.resolve();
}

/** 50,000 files of 64-4095 bytes in 100 directories; content derived from the index (reproducible). */
async function* smallFiles(): AsyncGenerator<FileEntry> {
  yield { path: "data", type: "dir" };
  for (let d = 0; d < 100; d++) {
    yield { path: `data/${String(d).padStart(3, "0")}`, type: "dir" };
    for (let f = 0; f < 500; f++) {
      const seed = createHash("sha256").update(`${d}/${f}`).digest();
      const size = 64 + (seed.readUInt16BE(0) % 4032);
      const content = Buffer.alloc(size);
      for (let i = 0; i < size; i += seed.length) seed.copy(content, i, 0, Math.min(seed.length, size - i));
      yield {
        path: `data/${String(d).padStart(3, "0")}/${String(f).padStart(4, "0")}.txt`,
        type: "file",
        content,
      };
    }
  }
  await Promise.resolve();
}

async function buildSmallFiles(dir: string): Promise<Fixture> {
  const layoutDir = join(dir, "layout");
  const img = await writeOciLayout(layoutDir, { layers: [{ entries: smallFiles() }] }, { ref: "v1" });
  return {
    name: "small-files",
    layoutDir,
    layoutRef: "v1",
    repoTag: "bench/small-files:v1",
    digest: img.descriptor.digest,
    bytes: img.layers.reduce((n, l) => n + l.size, 0),
  };
}
