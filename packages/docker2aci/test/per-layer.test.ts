// --nosquash: one ACI per layer, base first, with docker2aci's names, labels, dependencies and
// cumulative path whitelists; every file validated as `rkt image validate` does.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateAci } from "@rkt/fetch";
import { convertImage, directorySink } from "../src/index.js";
import { listAci, memoryImage, names } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "d2a-layers-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("one ACI per layer", () => {
  it("writes base-first ACIs that validate, the top depending on the others", async () => {
    const img = await memoryImage([
      [
        { name: "a/", type: "directory" },
        { name: "a/one", body: "1" },
        { name: "a/two", body: "2" },
        { name: "o/", type: "directory" },
        { name: "o/old", body: "old" },
      ],
      [{ name: "a/.wh.one" }, { name: "o/.wh..wh..opq" }, { name: "o/new", body: "new" }],
      [
        { name: "top", body: "t" },
        { name: "dev/", type: "directory" },
        { name: "dev/stdin", type: "symlink", linkname: "/mine" },
      ],
    ]);
    const acis = await convertImage(img, directorySink(dir), { squash: false, compression: "gzip" });
    const hex = img.layers.map((l) => l.digest.slice(7));
    expect(acis.map((a) => a.fileName)).toEqual(
      hex.map((h) => `docker2aci-dockerv22test-${h}-v0.1.0-linux-amd64.aci`),
    );
    expect((await readdir(dir)).sort()).toEqual(acis.map((a) => a.fileName).sort());
    for (const a of acis) {
      const v = await validateAci(join(dir, a.fileName));
      expect(v.issues).toEqual([]);
    }
    const [base, mid, top] = await Promise.all(
      acis.map(async (a) => listAci(await readFile(join(dir, a.fileName)))),
    );
    expect(base!.manifest.name).toBe(`127.0.0.1_5000/docker2aci/dockerv22test-sha256-${hex[0]}`);
    expect(base!.manifest.labels).toEqual([
      { name: "arch", value: "amd64" },
      { name: "os", value: "linux" },
    ]);
    expect(base!.manifest.app).toBeUndefined();
    expect(base!.manifest.annotations).toBeUndefined();
    expect(names(base!.entries)).toEqual([
      "a",
      "a/one",
      "a/two",
      "dev/fd",
      "dev/stderr",
      "dev/stdin",
      "dev/stdout",
      "o",
      "o/old",
    ]);
    expect(mid!.manifest.pathWhitelist).toEqual([
      "/a",
      "/a/two",
      "/dev/fd",
      "/dev/stderr",
      "/dev/stdin",
      "/dev/stdout",
      "/o",
      "/o/new",
    ]);
    expect(top!.manifest.name).toBe(`127.0.0.1_5000/docker2aci/dockerv22test-sha256_${hex[2]}`);
    expect(top!.manifest.app?.exec).toEqual(["/bin/sh", "-c", "echo", "foo"]);
    expect(top!.manifest.dependencies).toEqual([
      { imageName: base!.manifest.name, imageID: acis[0]!.imageId, labels: base!.manifest.labels },
      { imageName: mid!.manifest.name, imageID: acis[1]!.imageId, labels: mid!.manifest.labels },
    ]);
    expect(top!.entries.find((e) => e.name === "rootfs/dev/stdin")?.linkname).toBe("/mine");
    expect(top!.manifest.pathWhitelist).toContain("/top");
    expect(top!.manifest.pathWhitelist).not.toContain("/a/one");
    expect(top!.manifest.pathWhitelist).not.toContain("/o/old");
    // The image IDs are the sha512 of the uncompressed archives.
    expect(acis.map((a) => a.imageId)).toEqual([base!.imageId, mid!.imageId, top!.imageId]);
    // The manifest comes last in a layer ACI (docker2aci), once the whitelist is known.
    expect(base!.entries[0]?.name).toBe("rootfs");
  });

  it("uses docker2aci's docker-save names: <repo>-<tag>-<os>-<arch>-<index from top>", async () => {
    const img = await memoryImage([[{ name: "a", body: "1" }], [{ name: "b", body: "2" }]], {
      name: { repository: "myorg/app", tag: "1.0" },
    });
    const acis = await convertImage(img, directorySink(dir), {
      squash: false,
      compression: "none",
      layerFileNames: "docker-save",
    });
    expect(acis.map((a) => a.fileName)).toEqual([
      "myorg-app-1.0-linux-amd64-1.aci",
      "myorg-app-1.0-linux-amd64-0.aci",
    ]);
    expect(acis[1]!.name).toMatch(/^myorg\/app-sha256_/);
  });

  it("keeps the later of duplicate entries within a layer ACI", async () => {
    const img = await memoryImage([
      [
        { name: "d", body: "first" },
        { name: "d", body: "second" },
      ],
    ]);
    const acis = await convertImage(img, directorySink(dir), { squash: false, compression: "none" });
    const l = await listAci(await readFile(join(dir, acis[0]!.fileName)));
    expect(l.entries.filter((e) => e.name === "rootfs/d")).toEqual([
      expect.objectContaining({ content: "second" }),
    ]);
  });
});
