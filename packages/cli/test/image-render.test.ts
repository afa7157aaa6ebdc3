// `rkt image render|verify`, and the tree side of `image gc|rm`, end to end on real files as root:
// ACIs with dependencies and a pathWhitelist, a multi-layer OCI image with whiteouts, overlay
// mounts and flattened copies compared, tampered trees detected and repaired.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from "node:fs";
import { lstat, readFile, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAci, type AciWriteEntry } from "@rkt/appc";
import { LocalStore, mountPointsOf, renderStoredImage } from "@rkt/store";
import { writeOciLayout } from "@rkt/testkit";
import { mountsUnder, runRkt, type RktRun } from "./helpers.js";

let tmp: string;
let n = 0;
const isRoot = process.getuid?.() === 0;

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=image", ...args], { cwd: tmp });
}

/** Every entry under `root`: type, mode, owner, and contents or link target. */
async function listTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel === "" ? name : `${rel}/${name}`;
      const p = join(root, r);
      const st = await lstat(p);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${meta}`;
        await walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link ${meta} ${await readlink(p)}`;
      else if (st.isFile()) out[r] = `file ${meta} ${await readFile(p, "utf8")}`;
      else out[r] = `other ${meta} ${st.rdev}`;
    }
  };
  await walk("");
  return out;
}

async function aciFile(manifest: object, entries: AciWriteEntry[]): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of writeAci(
    JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", ...manifest }),
    entries,
  ))
    chunks.push(c as Buffer);
  const file = join(tmp, `img${n++}.aci`);
  writeFileSync(file, Buffer.concat(chunks));
  return file;
}

const file = (name: string, body: string, mode = 0o644): AciWriteEntry => ({
  header: { name, type: "file", mode, size: body.length },
  body,
});
const dir = (name: string, mode = 0o755): AciWriteEntry => ({ header: { name, type: "directory", mode } });

let aciTop: string;
let aciBase: string;
let ociLayout: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-render-test-"));
  // base is found by name; top whitelists some of base's files (an ancestor's whitelist filters
  // directories too) and overrides shared/f.
  aciBase = await aciFile({ name: "example.com/base" }, [
    dir("etc", 0o750),
    file("etc/base-file", "base"),
    dir("shared"),
    file("shared/f", "from-base"),
    dir("opt"),
    file("opt/junk", "junk"),
  ]);
  aciTop = await aciFile(
    {
      name: "example.com/top",
      dependencies: [{ imageName: "example.com/base" }],
      pathWhitelist: ["/top-file", "/shared/f", "/etc/base-file"],
    },
    [file("top-file", "top", 0o755), dir("shared"), file("shared/f", "from-top")],
  );
  ociLayout = join(tmp, "oci");
  await writeOciLayout(ociLayout, {
    layers: [
      [
        { path: "a", type: "file", content: "1" },
        { path: "d", type: "dir" },
        { path: "d/x", type: "file", content: "x" },
        { path: "keep", type: "file", content: "keep", mode: 0o4755 },
        { path: "l", type: "symlink", linkname: "keep" },
      ],
      [
        { path: "a", type: "whiteout" },
        { path: "d", type: "opaque" },
        { path: "d/y", type: "file", content: "y" },
      ],
      [{ path: "b", type: "file", content: "b3", uid: 7, gid: 8 }],
    ],
  });
});
afterAll(async () => {
  for (const mp of mountsUnder(tmp).reverse()) execFileSync("umount", [mp]);
  await rm(tmp, { recursive: true, force: true });
});

async function store(): Promise<{ dir: string; aci: string; oci: string }> {
  const d = mkdtempSync(join(tmp, "store-"));
  const r = await rkt(d, ["fetch", "--no-render", "--full", aciBase, aciTop, `oci:${ociLayout}`]);
  expect(r.stderr).not.toMatch(/error/);
  expect(r.code).toBe(0);
  const [, aci = "", oci = ""] = r.stdout.trim().split("\n");
  return { dir: d, aci, oci };
}

const expectedAci = {
  etc: "dir 755 0:0",
  "etc/base-file": "file 644 0:0 base",
  shared: "dir 755 0:0",
  "shared/f": "file 644 0:0 from-top",
  "top-file": "file 755 0:0 top",
};
const expectedOci = {
  b: "file 644 7:8 b3",
  d: "dir 755 0:0",
  "d/y": "file 644 0:0 y",
  keep: "file 4755 0:0 keep",
  l: "link 777 0:0 keep",
};

describe("mountPointsOf", () => {
  it("reads mount points (octal escapes undone) and filters by type", () => {
    const info = [
      "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - overlay overlay rw,lowerdir=/x",
      "37 35 98:0 / /srv rw - ext4 /dev/vda rw",
    ].join("\n");
    expect([...mountPointsOf(info, "overlay")]).toEqual(["/mnt/a b"]);
    expect([...mountPointsOf(info)].sort()).toEqual(["/mnt/a b", "/srv"]);
  });
});

describe("rkt image render", () => {
  it("renders an ACI with its dependency and whitelist, overlay-mounted and flattened alike", async () => {
    const s = await store();
    const mounted = join(tmp, `out${n++}`);
    const r = await rkt(s.dir, ["image", "render", "--rootfs-only", "example.com/top", mounted]);
    // stdout says where the rootfs is.
    expect(r).toMatchObject({ code: 0, stdout: `${mounted}\n` });
    expect(r.stderr).toBe(`image render: ${mounted} is an overlay mount (umount it when done)\n`);
    expect(mountsUnder(tmp)).toContain(mounted);
    const flat = join(tmp, `out${n++}`);
    const f = await rkt(s.dir, ["image", "render", "--flatten", "--format=json", s.aci, flat]);
    expect(f).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(f.stdout)).toEqual({
      id: s.aci,
      kind: "aci",
      path: flat,
      rootfs: join(flat, "rootfs"),
      manifest: join(flat, "manifest"),
      mode: "copy",
    });
    expect(mountsUnder(tmp)).not.toContain(join(flat, "rootfs"));
    expect(await listTree(mounted)).toEqual(expectedAci);
    expect(await listTree(join(flat, "rootfs"))).toEqual(expectedAci);
    expect(JSON.parse(readFileSync(join(flat, "manifest"), "utf8"))).toMatchObject({
      name: "example.com/top",
    });
  });

  it("renders a multi-layer OCI image with whiteouts and an opaque dir; both modes identical", async () => {
    const s = await store();
    const mounted = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", s.oci, mounted])).code).toBe(0);
    const flat = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", "--flatten", "--rootfs-only", s.oci, flat])).code).toBe(0);
    expect(await listTree(join(mounted, "rootfs"))).toEqual(expectedOci);
    expect(await listTree(flat)).toEqual(expectedOci);
    // the mount is writable without touching the store's snapshots
    writeFileSync(join(mounted, "rootfs", "keep"), "changed");
    const again = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", "--flatten", "--rootfs-only", s.oci, again])).code).toBe(0);
    expect(await listTree(again)).toEqual(expectedOci);
    // --overwrite over our own mount unmounts it first
    const o = await rkt(s.dir, ["image", "render", "--overwrite", s.oci, mounted]);
    expect(o.code).toBe(0);
    expect(mountsUnder(tmp).filter((m) => m === join(mounted, "rootfs"))).toHaveLength(1);
    expect(await listTree(join(mounted, "rootfs"))).toEqual(expectedOci);
  });

  it("rebuilds a tree whose snapshot was removed by hand", async () => {
    const s = await store();
    expect((await rkt(s.dir, ["image", "render", "--flatten", s.oci, join(tmp, `out${n++}`)])).code).toBe(0);
    const layers = join(s.dir, "cas", "layers");
    const victim = readdirSync(layers).filter((x) => !x.startsWith("."))[0]!;
    await rm(join(layers, victim), { recursive: true });
    const again = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", "--flatten", "--rootfs-only", s.oci, again])).code).toBe(0);
    expect(await listTree(again)).toEqual(expectedOci);
    expect(readdirSync(layers)).toContain(victim);
  });

  it("refuses bad input with one line and exit 254, leaving the directory as it was", async () => {
    const s = await store();
    const unknown = await rkt(s.dir, ["image", "render", "example.com/nope", join(tmp, "never")]);
    expect(unknown.code).toBe(254);
    expect(unknown.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(unknown.stderr).toMatch(/cannot find aci satisfying name: "example.com\/nope"/);
    expect(existsSync(join(tmp, "never"))).toBe(false);
    const busy = join(tmp, `out${n++}`);
    mkdirSync(busy);
    writeFileSync(join(busy, "mine"), "x");
    const exists = await rkt(s.dir, ["image", "render", s.oci, busy]);
    expect(exists.code).toBe(254);
    expect(exists.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(exists.stderr).toMatch(/output directory exists \(try --overwrite\)/);
    expect(readdirSync(busy)).toEqual(["mine"]);
    const usage = await rkt(s.dir, ["image", "render", s.oci]);
    expect(usage.code).toBe(254);
    const v = await rkt(s.dir, ["image", "verify", "example.com/nope"]);
    expect(v.code).toBe(254);
    expect(v.stderr).toMatch(/unable to resolve store key for image example.com\/nope: cannot find aci/);
  });

  // appc's hash strings are "sha512-" and any value (the spec writes "sha512-..."); only the
  // dependency actually looked up needs an ID the store can resolve.
  it("stores an ACI whose dependency imageID is the spec's sha512-..., and says so when rendering it", async () => {
    const d = mkdtempSync(join(tmp, "store-"));
    const pinned = await aciFile(
      {
        name: "example.com/pinned",
        dependencies: [{ imageName: "example.com/base", imageID: "sha512-..." }],
      },
      [file("p", "p")],
    );
    const f = await rkt(d, ["fetch", "--no-render", aciBase, pinned]);
    expect(f.code).toBe(0);
    const r = await rkt(d, ["image", "render", "example.com/pinned", join(tmp, `out${n++}`)]);
    expect(r.code).toBe(254);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/dependency "example.com\/base" is not in the store: no image IDs found/);
  });
});

describe("as an unprivileged user", () => {
  it("renders a flattened copy (whiteouts applied from marker files, owners its own), verifies it", async (ctx) => {
    const bin = join(import.meta.dirname, "..", "bin", "rkt.js");
    // The checkout itself must be readable by uid 65534 (a clone under a 0700 directory is not).
    const reachable = spawnSync("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "test",
      "-r",
      bin,
    ]);
    if (reachable.status !== 0) ctx.skip(`${bin} is not readable by uid 65534`);
    chmodSync(tmp, 0o755);
    const home = join(tmp, `nobody${n++}`);
    mkdirSync(home, { mode: 0o777 });
    chmodSync(home, 0o777);
    const as = (args: string[]): string =>
      execFileSync(
        "setpriv",
        [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          process.execPath,
          bin,
          "--dir",
          join(home, "s"),
          ...args,
        ],
        { encoding: "utf8" },
      );
    const id = as(["fetch", `oci:${ociLayout}`]).trim();
    expect(readdirSync(join(home, "s", "cas", "trees"))).toEqual([]); // no render on fetch without root
    as(["image", "render", "--rootfs-only", id, join(home, "out")]);
    expect(mountsUnder(tmp)).not.toContain(join(home, "out"));
    const mine = Object.fromEntries(
      Object.entries(expectedOci).map(([k, v]) => [k, v.replace(/ \d+:\d+/, " 65534:65534")]),
    );
    expect(await listTree(join(home, "out"))).toEqual(mine);
    expect(as(["image", "verify", id])).toMatch(/^successfully verified checksum/);
  });
});

describe("hostile layers", () => {
  it("a layer escaping its root: render refuses with one line naming the entry; a rendering fetch stores nothing", async () => {
    const layout = join(tmp, `hostile${n++}`);
    await writeOciLayout(layout, {
      layers: [
        [{ path: "ok", type: "file", content: "fine" }],
        [{ path: "../../escaped", type: "file", content: "x" }],
      ],
    });
    const d = mkdtempSync(join(tmp, "store-"));
    if (isRoot) {
      // As root the fetch extracts the layers as they are stored (one pass): the refusal fails it.
      const f = await rkt(d, ["fetch", `oci:${layout}`]);
      expect(f.code).toBe(254);
      expect(f.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(f.stderr).toMatch(/\.\.\/\.\.\/escaped/);
      expect((await rkt(d, ["image", "list", "--no-legend"])).stdout).toBe("");
      expect(readdirSync(join(d, "cas", "layers"))).toEqual([]);
    }
    const f = await rkt(d, ["fetch", "--no-render", `oci:${layout}`]);
    expect(f.code).toBe(0);
    const id = f.stdout.trim();
    const out = join(tmp, `out${n++}`);
    const r = await rkt(d, ["image", "render", "--flatten", id, out]);
    expect(r.code).toBe(254);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/\.\.\/\.\.\/escaped/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(tmp, "escaped"))).toBe(false);
    expect(existsSync(join(d, "cas", "escaped"))).toBe(false);
    expect(readdirSync(join(d, "cas", "trees"))).toEqual([]);
  });
});

describe("rkt image verify", () => {
  it("says an image is not rendered, then verifies its tree", async () => {
    const s = await store();
    expect((await rkt(s.dir, ["image", "verify", s.oci])).stdout).toBe(
      `image ${JSON.stringify(s.oci)} not rendered; no verification needed\n`,
    );
    expect((await rkt(s.dir, ["image", "render", "--flatten", s.oci, join(tmp, `out${n++}`)])).code).toBe(0);
    expect((await rkt(s.dir, ["image", "verify", s.oci, "example.com/top"])).stdout).toBe(
      `successfully verified checksum for image: ${JSON.stringify(s.oci)} (${JSON.stringify(s.oci)})\n` +
        `image "example.com/top" not rendered; no verification needed\n`,
    );
  });

  it("detects and repairs a tampered flattened tree and a tampered snapshot", async () => {
    const s = await store();
    const st = await LocalStore.open(s.dir);
    const tree = await renderStoredImage(st, s.oci, { flatten: true });
    st.close();
    const treeDir = join(s.dir, "cas", "trees", tree.id);
    writeFileSync(join(treeDir, "rootfs", "keep"), "evil");
    const bad = await rkt(s.dir, ["image", "verify", s.oci]);
    expect(bad.code).toBe(0);
    expect(bad.stdout).toMatch(
      /^tree cache verification failed for image sha256:[0-9a-f]{64}: wrong tree hash: sha512-[0-9a-f]+, expected: sha512-[0-9a-f]+ \(flattened rootfs\); {2}rebuilding\.\.\.\n$/,
    );
    expect(readFileSync(join(treeDir, "rootfs", "keep"), "utf8")).toBe("keep");
    expect((await rkt(s.dir, ["image", "verify", s.oci])).stdout).toMatch(/^successfully verified checksum/);
    // a layer snapshot changed behind our back: found by re-walking it, re-extracted from the blob
    const snap = join(s.dir, "cas", "layers", tree.layers[0]!, "fs", "keep");
    writeFileSync(snap, "evil");
    const bad2 = await rkt(s.dir, ["image", "verify", s.oci]);
    expect(bad2.stdout).toMatch(
      /^tree cache verification failed for image .*: wrong tree hash: .*; {2}rebuilding/,
    );
    expect(readFileSync(snap, "utf8")).toBe("keep");
    expect((await rkt(s.dir, ["image", "verify", s.oci])).stdout).toMatch(/^successfully verified checksum/);
  });

  it("will not repair a snapshot under a live overlay mount; after umount it does", async () => {
    const s = await store();
    const out = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", s.oci, out])).code).toBe(0);
    const tree = JSON.parse(
      readFileSync(
        join(s.dir, "cas", "trees", readdirSync(join(s.dir, "cas", "trees"))[0]!, "tree.json"),
        "utf8",
      ),
    ) as { layers: string[] };
    const snap = join(s.dir, "cas", "layers", tree.layers[0]!, "fs", "keep");
    writeFileSync(snap, "evil");
    const busy = await rkt(s.dir, ["image", "verify", s.oci]);
    expect(busy.code).toBe(254);
    expect(busy.stderr).toMatch(
      new RegExp(
        `^verify: tree \\S+ is damaged \\(.*\\), but its snapshot \\S+ is in use by the overlay mount at ${out}/rootfs; unmount it and verify again\\n$`,
      ),
    );
    expect(readFileSync(snap, "utf8")).toBe("evil");
    expect(readdirSync(join(out, "rootfs")).sort()).toContain("keep");
    execFileSync("umount", [join(out, "rootfs")]);
    const fixed = await rkt(s.dir, ["image", "verify", s.oci]);
    expect(fixed.stdout).toMatch(/^tree cache verification failed for image .*; {2}rebuilding/);
    expect(readFileSync(snap, "utf8")).toBe("keep");
  });
});

describe("tree sizes in image list", () => {
  it("each image's size grows by its own tree: the uncompressed layer bytes of its snapshots", async () => {
    const s = await store();
    const sizes = async (): Promise<Map<string, number>> => {
      const r = await rkt(s.dir, ["image", "list", "--format=json"]);
      const rows = JSON.parse(r.stdout) as { id: string; size: number }[];
      return new Map(rows.map((x) => [x.id, x.size]));
    };
    const before = await sizes();
    const out = mkdtempSync(join(tmp, "out-"));
    expect((await rkt(s.dir, ["image", "render", "--flatten", s.oci, join(out, "r")])).code).toBe(0);
    const after = await sizes();
    const treeDirs = readdirSync(join(s.dir, "cas", "trees")).filter((x) => !x.startsWith("."));
    expect(treeDirs).toHaveLength(1);
    const tree = JSON.parse(readFileSync(join(s.dir, "cas", "trees", treeDirs[0]!, "tree.json"), "utf8")) as {
      layers: string[];
    };
    const snapshotBytes = tree.layers
      .map(
        (k) =>
          JSON.parse(readFileSync(join(s.dir, "cas", "layers", k, "snapshot.json"), "utf8")) as {
            uncompressedSize: number;
          },
      )
      .reduce((n, i) => n + i.uncompressedSize, 0);
    expect(snapshotBytes).toBeGreaterThan(0);
    const grew = [...after].filter(([id, n]) => n !== before.get(id));
    expect(grew).toHaveLength(1);
    const [id, size] = grew[0]!;
    expect(id.startsWith("sha256:")).toBe(true);
    expect(size - before.get(id)!).toBeGreaterThanOrEqual(snapshotBytes);
  });
});

describe("render on fetch", () => {
  it("renders each fetched image as root with overlayfs (rkt); --no-render skips it", async () => {
    const d = mkdtempSync(join(tmp, "store-"));
    const r = await rkt(d, ["fetch", "--full", aciBase, aciTop, `oci:${ociLayout}`]);
    expect(r.code).toBe(0);
    const [base = "", top = "", oci = ""] = r.stdout.trim().split("\n");
    const v = await rkt(d, ["image", "verify", base, top, oci]);
    expect(v.stdout.match(/^successfully verified checksum for image/gm)).toHaveLength(3);
    expect(readdirSync(join(d, "cas", "trees")).filter((x) => !x.startsWith("."))).toHaveLength(3);
    const d2 = mkdtempSync(join(tmp, "store-"));
    expect((await rkt(d2, ["fetch", "--no-render", `oci:${ociLayout}`])).code).toBe(0);
    expect(readdirSync(join(d2, "cas", "trees"))).toEqual([]);
    expect(readdirSync(join(d2, "cas", "layers"))).toEqual([]);
  });
});

describe("trees in image gc and image rm", () => {
  const snapshots = (d: string): string[] =>
    readdirSync(join(d, "cas", "layers")).filter((x) => !x.startsWith("."));
  const trees = (d: string): string[] =>
    readdirSync(join(d, "cas", "trees")).filter((x) => !x.startsWith("."));

  it("gc removes trees and snapshots nothing references, keeps a mounted tree until unmounted", async () => {
    const s = await store();
    expect((await rkt(s.dir, ["image", "render", "--flatten", s.aci, join(tmp, `out${n++}`)])).code).toBe(0);
    const mounted = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", "--rootfs-only", s.oci, mounted])).code).toBe(0);
    expect(trees(s.dir)).toHaveLength(2);
    const g = await rkt(s.dir, ["image", "gc", "--trees-only"]);
    expect(g.code).toBe(0);
    expect(g.stderr).toMatch(
      /^gc: removed treestore "deps-sha512-[0-9a-f]{64}"\ngc: removed 4 unreferenced layer snapshot\(s\)\n$/,
    );
    expect(trees(s.dir)).toEqual([expect.stringMatching(/^chain-sha256-/)]);
    expect(snapshots(s.dir)).toHaveLength(3);
    expect(await listTree(mounted)).toEqual(expectedOci);
    execFileSync("umount", [mounted]);
    const g2 = await rkt(s.dir, ["image", "gc", "--trees-only"]);
    expect(g2.stderr).toMatch(
      /gc: removed treestore "chain-sha256-[0-9a-f]{64}"\ngc: removed 3 unreferenced layer snapshot\(s\)/,
    );
    expect(trees(s.dir)).toEqual([]);
    expect(snapshots(s.dir)).toEqual([]);
    expect(readdirSync(join(s.dir, "cas", "mounts"))).toEqual([]);
    // stale snapshot temp dirs of dead processes go too
    mkdirSync(join(s.dir, "cas", "layers", ".tmp-999999-1-dead"));
    await rkt(s.dir, ["image", "gc", "--trees-only"]);
    expect(readdirSync(join(s.dir, "cas", "layers"))).toEqual([]);
  });

  it("image rm removes the image's trees and snapshots; refuses while its tree is mounted", async () => {
    const s = await store();
    const mounted = join(tmp, `out${n++}`);
    expect((await rkt(s.dir, ["image", "render", "--rootfs-only", s.oci, mounted])).code).toBe(0);
    const held = await rkt(s.dir, ["image", "rm", s.oci]);
    expect(held.code).toBe(254);
    expect(held.stderr).toMatch(/in use by mount-/);
    execFileSync("umount", [mounted]);
    const r = await rkt(s.dir, ["image", "rm", s.oci]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`successfully removed image: ${JSON.stringify(s.oci)}\n`);
    expect(trees(s.dir)).toEqual([]);
    expect(snapshots(s.dir)).toEqual([]);
  });
});
