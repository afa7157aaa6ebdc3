// Round trip through the store: an OCI image built with the test kit, rendered flattened by the
// tree store, against the ACIs converted from it (squashed, and one per layer with dependencies),
// imported and rendered the same way: same files, modes, owners, links and contents.
import { createHash } from "node:crypto";
import { lstat, mkdtemp, readFile, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openOciLayout, importOciLayout } from "@rkt/fetch";
import { LocalStore, importAci, renderImageTo } from "@rkt/store";
import { writeOciLayout, type FileEntry } from "@rkt/testkit";
import { convertImage, storeImageInput, type AciSink } from "../src/index.js";

interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  link?: string;
  sha?: string;
  ino?: number;
}

async function walk(root: string): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  async function go(rel: string): Promise<void> {
    for (const name of await readdir(join(root, rel))) {
      const p = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(join(root, p));
      const n: Node = { type: "other", mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isDirectory()) n.type = "dir";
      else if (st.isSymbolicLink()) {
        n.type = "symlink";
        n.link = await readlink(join(root, p));
      } else if (st.isFile()) {
        n.type = "file";
        n.sha = createHash("sha256")
          .update(await readFile(join(root, p)))
          .digest("hex");
        if (st.nlink > 1) n.ino = st.ino;
      }
      out.set(p, n);
      if (st.isDirectory()) await go(p);
    }
  }
  await go("");
  return out;
}

// Hard links: the set of paths sharing an inode, instead of inode numbers.
function linkGroups(t: Map<string, Node>): string[][] {
  const by = new Map<number, string[]>();
  for (const [p, n] of t) if (n.ino !== undefined) by.set(n.ino, [...(by.get(n.ino) ?? []), p]);
  return [...by.values()].map((g) => g.sort()).sort();
}

function comparable(t: Map<string, Node>): Record<string, Omit<Node, "ino">> {
  return Object.fromEntries([...t].map(([p, { ino: _ino, ...n }]) => [p, n]));
}

const owned = { uid: 1000, gid: 1000 };
const layers: FileEntry[][] = [
  [
    { path: "bin", type: "dir" },
    { path: "bin/sh", type: "file", content: "#!shell\n", mode: 0o755 },
    { path: "bin/ls", type: "hardlink", linkname: "bin/sh" },
    { path: "etc", type: "dir" },
    { path: "etc/passwd", type: "file", content: "root:x:0:0::/root:/bin/sh\n" },
    { path: "etc/shadow", type: "file", content: "secret", mode: 0o600 },
    { path: "etc/alternatives", type: "dir" },
    { path: "etc/alternatives/pager", type: "symlink", linkname: "/bin/less" },
    { path: "home", type: "dir" },
    { path: "home/user", type: "dir", mode: 0o700, ...owned },
    { path: "home/user/.profile", type: "file", content: "PS1=$\n", ...owned },
    { path: "var", type: "dir" },
    { path: "var/cache", type: "dir" },
    { path: "var/cache/a", type: "file", content: "cached a" },
    { path: "var/cache/sub", type: "dir" },
    { path: "var/cache/sub/b", type: "file", content: "cached b" },
    { path: "tmp", type: "dir", mode: 0o1777 },
    { path: "usr", type: "dir" },
    { path: "usr/lib", type: "dir" },
    { path: "usr/lib/libold.so", type: "file", content: "old lib" },
  ],
  [
    { path: "etc/shadow", type: "whiteout" },
    { path: "var/cache", type: "dir" },
    { path: "var/cache", type: "opaque" },
    { path: "var/cache/fresh", type: "file", content: "fresh" },
    { path: "usr/lib/libold.so", type: "whiteout" },
    { path: "usr/lib/libnew.so", type: "file", content: "new lib", mode: 0o755 },
    { path: "usr/lib/libnew.so.1", type: "symlink", linkname: "libnew.so" },
  ],
  [
    {
      path: "etc/passwd",
      type: "file",
      content: "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    },
    // Layers as Docker writes them carry their parent directories (the tree store gives a
    // missing parent its own 0755 root directory, hiding the lower one's owner and mode).
    { path: "home", type: "dir" },
    { path: "home/user", type: "dir", mode: 0o750, ...owned },
    { path: "home/user/notes", type: "file", content: "n", mode: 0o640, ...owned },
    { path: "bin/sh", type: "whiteout" },
  ],
];

const stdio = ["dev", "dev/fd", "dev/stderr", "dev/stdin", "dev/stdout"];

describe("round trip: image → ACI → rendered tree equals the image's flattened tree", () => {
  let work: string;
  let store: LocalStore;
  let ociId: string;
  let expected: Map<string, Node>;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "d2a-roundtrip-"));
    store = await LocalStore.open(join(work, "store"));
    await writeOciLayout(join(work, "layout"), {
      layers,
      config: { Entrypoint: ["/bin/sh"], Env: ["PATH=/bin"], User: "1000:1000", WorkingDir: "/home/user" },
    });
    const r = await importOciLayout(store, await openOciLayout(join(work, "layout")), {
      name: "example.com/debianish",
      what: "layout",
    });
    ociId = r.id;
    await renderImageTo(store, ociId, join(work, "oci-render"), { flatten: true, rootfsOnly: true });
    expected = await walk(join(work, "oci-render"));
  }, 60_000);

  afterAll(async () => {
    store.close();
    await rm(work, { recursive: true, force: true });
  });

  const storeSink =
    (ids: string[]): AciSink =>
    async (t, data) => {
      ids.push((await importAci(store, data, { what: t.fileName })).id);
    };

  it("the flattened OCI image is what the layers say (sanity check of the fixture)", () => {
    expect(expected.has("etc/shadow")).toBe(false);
    expect(expected.has("var/cache/a")).toBe(false);
    expect(expected.get("var/cache/fresh")?.type).toBe("file");
    expect(expected.has("bin/sh")).toBe(false);
    expect(expected.get("bin/ls")?.type).toBe("file");
  });

  it("squashed", async () => {
    const ids: string[] = [];
    const acis = await convertImage(await storeImageInput(store, ociId), storeSink(ids), {
      compression: "gzip",
    });
    expect(ids).toEqual(acis.map((a) => a.imageId));
    expect(acis[0]!.manifest.app).toMatchObject({
      exec: ["/bin/sh"],
      user: "1000",
      group: "1000",
      workingDirectory: "/home/user",
      environment: [{ name: "PATH", value: "/bin" }],
    });
    await renderImageTo(store, ids[0]!, join(work, "aci-render"), { flatten: true, rootfsOnly: true });
    const got = await walk(join(work, "aci-render"));
    for (const p of stdio) got.delete(p);
    expect(comparable(got)).toEqual(comparable(expected));
    expect(linkGroups(got)).toEqual(linkGroups(expected));
  });

  it("one ACI per layer, rendered with its dependencies", async () => {
    const ids: string[] = [];
    const acis = await convertImage(await storeImageInput(store, ociId), storeSink(ids), {
      squash: false,
      compression: "none",
    });
    expect(acis).toHaveLength(3);
    const top = acis[2]!.manifest;
    expect(top.dependencies?.map((d) => d.imageID)).toEqual([ids[0], ids[1]]);
    expect(top.pathWhitelist).toContain("/var/cache/fresh");
    expect(top.pathWhitelist).not.toContain("/var/cache/a");
    expect(top.pathWhitelist).not.toContain("/etc/shadow");
    await renderImageTo(store, ids[2]!, join(work, "layers-render"), { flatten: true, rootfsOnly: true });
    const got = await walk(join(work, "layers-render"));
    for (const p of stdio) got.delete(p);
    expect(comparable(got)).toEqual(comparable(expected));
  });
});
