// The tree store from the CLI (issue 6), as root with overlayfs:
// - first render of the `debian` fixture already in the store (`rkt image render`, a child
//   process: every layer extracted into its snapshot, diffIDs verified, snapshots hashed and
//   synced, the tree overlay-mounted) vs `umoci unpack` of the same layout vs `tar -xzf` of its
//   layers in turn (no whiteouts applied, nothing verified: a floor);
// - a second tree of an image already rendered (what a new pod's rootfs costs): in process,
//   `renderStoredImage` (the tree exists) + `mountStoredTree` into a new directory; and the same
//   through `rkt image render`, node's start included;
// - a gzip'd ACI of a ~200 MB Debian rootfs (debootstrap minbase, without its /dev nodes, which
//   rkt 1.30 cannot render), signed by a throwaway RSA key that each rkt trusts in its own local
//   config: `rkt fetch` (signature check, import, render on fetch) vs rkt 1.30's when `RKT` names
//   it, vs `tar -xzf` of the same file.
// Stores are prepared before the timed runs (a fetch with --no-render, copied per run).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LocalStore, mountStoredTree, renderStoredImage } from "@rkt/store";
import { cacheDir, ensureFixture } from "../fixtures.js";
import { benchSigner } from "../gpg-signer.js";
import { bench, median, rktBin, spawnMeasured, withBaseline, type RunReport } from "../harness.js";

const rkt = rktBin;
const runs = 3;
const warmup = 1;

function sh(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Unmounts every mount under `root` (deepest first). */
function unmountUnder(root: string): void {
  const mps = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mps) sh("umount", [m]);
}

/** The layer blobs of the image tagged `ref` in an OCI layout, base first. */
function layoutLayers(layout: string, ref: string): string[] {
  const blob = (d: string): string => join(layout, "blobs", ...d.split(":"));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m =
    index.manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === ref) ??
    index.manifests[0]!;
  const manifest = JSON.parse(readFileSync(blob(m.digest), "utf8")) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => blob(l.digest));
}

/**
 * A gzip'd ACI of the debootstrap minbase rootfs the `debian` fixture was built from (once), less
 * the device nodes under /dev: rkt 1.30 reads them into its tree hash and never finishes.
 */
async function debianAci(): Promise<string> {
  const file = join(cacheDir(), "data", "debian-minbase-nodev.aci");
  if (existsSync(file)) return file;
  await rm(join(cacheDir(), "data", "debian-minbase.aci"), { force: true }); // the earlier, with nodes
  const rootfs = join(cacheDir(), "debootstrap-bookworm-minbase");
  if (!existsSync(rootfs)) await ensureFixture("debian");
  await mkdir(join(cacheDir(), "data"), { recursive: true });
  const mdir = await mkdtemp(join(cacheDir(), "scratch", "aci-manifest-"));
  await writeFile(
    join(mdir, "manifest"),
    JSON.stringify({
      acKind: "ImageManifest",
      acVersion: "0.8.11",
      name: "bench.example/debian-minbase",
      labels: [
        { name: "os", value: "linux" },
        { name: "arch", value: "amd64" },
      ],
    }),
  );
  process.stderr.write(`bench render: building ${file} (once)\n`);
  // `S`: symlink targets are left as they are; only entry names move under rootfs/.
  sh("tar", [
    "--numeric-owner",
    "--xattrs",
    "-czf",
    `${file}.partial`,
    "-C",
    mdir,
    "manifest",
    "-C",
    rootfs,
    "--transform=s,^\\.,rootfs,S",
    "--exclude=./dev/*",
    ".",
  ]);
  await rename(`${file}.partial`, file);
  await rm(mdir, { recursive: true, force: true });
  return file;
}

export async function run(): Promise<void> {
  const fx = await ensureFixture("debian");
  const scratch = await mkdtemp(join(cacheDir(), "scratch", "render-"));
  try {
    // A store holding the fixture (not rendered), copied (untimed) before each run.
    const base = join(scratch, "base");
    sh(process.execPath, [rkt, "--dir", base, "fetch", "--no-render", `oci:${fx.layoutDir}:${fx.layoutRef}`]);
    const layers = layoutLayers(fx.layoutDir, fx.layoutRef);
    let k = 0;
    const out = (): string => join(scratch, `out-${k++}`);
    let lastStore = "";
    const renderFresh = (bin: string) => async (): Promise<RunReport> => {
      const d = join(scratch, `store-${k++}`);
      sh("cp", ["-a", base, d]);
      lastStore = d;
      const t0 = process.hrtime.bigint();
      const r = await spawnMeasured(process.execPath, [
        bin,
        "--dir",
        d,
        "image",
        "render",
        "--rootfs-only",
        fx.digest,
        out(),
      ]);
      return { peakRssKiB: r.peakRssKiB, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    };
    const first = await bench(`first render of the debian fixture (${layers.length} layers) from the store`, {
      ours: renderFresh(rkt),
      peers: withBaseline(
        {
          "umoci unpack": () =>
            spawnMeasured("umoci", ["unpack", "--image", `${fx.layoutDir}:${fx.layoutRef}`, out()]),
          "tar -xzf layers": async () => {
            const d = out();
            await mkdir(d);
            let peak = 0;
            for (const l of layers)
              peak = Math.max(peak, (await spawnMeasured("tar", ["-xzf", l, "-C", d])).peakRssKiB ?? 0);
            return { peakRssKiB: peak };
          },
        },
        renderFresh,
      ),
      runs,
      warmup,
    });
    const umoci = first.subjects.find((s) => s.name === "umoci unpack")!;
    process.stdout.write(
      `first render / umoci unpack: ${(first.subjects[0]!.median / umoci.median).toFixed(2)}x (goal <= 0.5x)\n`,
    );

    // Second tree: the last store used above has the tree.
    unmountUnder(scratch);
    const rendered = lastStore;
    const store = await LocalStore.open(rendered);
    const lib: number[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const target = out();
        await mkdir(target);
        const t0 = process.hrtime.bigint();
        const tree = await renderStoredImage(store, fx.digest);
        await mountStoredTree(store, tree, target);
        lib.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    } finally {
      store.close();
    }
    const cli: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      sh(process.execPath, [rkt, "--dir", rendered, "image", "render", "--rootfs-only", fx.digest, out()]);
      cli.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    process.stdout.write(
      `\n## second tree of a rendered image (a new pod's rootfs)\n` +
        `renderStoredImage + mountStoredTree (in process): median ${median(lib).toFixed(1)} ms, min ${Math.min(...lib).toFixed(1)}, max ${Math.max(...lib).toFixed(1)} (goal <= 50 ms)\n` +
        `rkt image render (child process, node start included): median ${median(cli).toFixed(0)} ms\n`,
    );
    unmountUnder(scratch);

    // The ACI (a link to the cached file) and its signature, side by side as rkt looks for them;
    // a local config per tool, each trusting the signer for every prefix.
    const aci = join(scratch, "debian-minbase.aci");
    sh("ln", ["-s", await debianAci(), aci]);
    const signer = await benchSigner(join(scratch, "gnupg"), "rsa2048");
    signer.gpg(["--armor", "--detach-sign", "-o", `${aci}.asc`, aci]);
    const key = join(scratch, "signer.asc");
    await writeFile(key, signer.gpg(["--armor", "--export", signer.email]));
    // A node script (ours, the baseline) runs under this node; a binary (rkt 1.30) on its own.
    const invoke = (bin: string, args: string[]): [string, string[]] =>
      bin.endsWith(".js") ? [process.execPath, [bin, ...args]] : [bin, args];
    const configs = new Map<string, string>();
    const configFor = (bin: string): string => {
      let dir = configs.get(bin);
      if (dir === undefined) {
        dir = join(scratch, `etc-${configs.size}`);
        configs.set(bin, dir);
        sh(...invoke(bin, [`--local-config=${dir}`, "trust", "--root", "--skip-fingerprint-review", key]));
      }
      return dir;
    };
    const fetchAci = (bin: string) => {
      const config = configFor(bin);
      return () =>
        spawnMeasured(
          ...invoke(bin, [
            `--local-config=${config}`,
            "--dir",
            join(scratch, `aci-store-${k++}`),
            "fetch",
            aci,
          ]),
        );
    };
    // rkt 1.30 itself, when RKT names its binary: as root it renders on fetch too.
    const rkt130 = process.env["RKT"];
    const fetched = await bench(
      `rkt fetch + render of a gzip'd Debian rootfs ACI (${(Number(sh("stat", ["-L", "-c", "%s", aci])) / 2 ** 20).toFixed(0)} MiB gz)`,
      {
        ours: fetchAci(rkt),
        peers: withBaseline(
          {
            ...(rkt130 !== undefined && rkt130 !== "" ? { "rkt 1.30": fetchAci(resolve(rkt130)) } : {}),
            "tar -xzf": async () => {
              const d = out();
              await mkdir(d);
              return spawnMeasured("tar", ["-xzf", aci, "-C", d]);
            },
          },
          fetchAci,
        ),
        runs,
        warmup,
      },
    );
    const peer = fetched.subjects.find((x) => x.name === "rkt 1.30");
    process.stdout.write(
      `fetch + render wall: ${fetched.subjects[0]!.median.toFixed(2)} s${peer === undefined ? " (set RKT to rkt 1.30's binary to compare)" : `, ${(fetched.subjects[0]!.median / peer.median).toFixed(2)}× rkt 1.30 (goal ≤ 0.5×)`}\n`,
    );
  } finally {
    unmountUnder(scratch);
    await rm(scratch, { recursive: true, force: true });
  }
}
