// Chaos: SIGKILL at random instants of `rkt image render` (overlay mounts and flattened copies),
// `rkt image gc` and `rkt run` (runc), ≥ 50 kills each. After every kill `rkt image fsck` exits 0
// and the next command completes; at the end nothing is left mounted and no temporary remains.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, gc, listImages } from "@rkt/store";
import { randomLayer, writeOciLayout, type BuiltImage } from "@rkt/testkit";
import {
  chaosRandom,
  expectDone,
  figure,
  fsckOk,
  killLoop,
  rkt,
  rktHere,
  writeRandomAci,
  type KillTally,
} from "./helpers.js";

const kills = 50;
const root = process.getuid?.() === 0;
const examples = resolve(import.meta.dirname, "..", "..", "examples");
const { seed, random } = chaosRandom();
let tmp: string;
let layout: string;
let img: BuiltImage;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-chaos-rgr-"));
  layout = join(tmp, "layout");
  img = await writeOciLayout(
    layout,
    {
      layers: [
        randomLayer(1 << 20, { seed: "render-a", files: 100, dir: "a" }),
        randomLayer(1 << 19, { seed: "render-b", files: 60, dir: "b" }),
      ],
    },
    { ref: "v1" },
  );
}, 120_000);

afterAll(async () => {
  for (const m of mountsUnder(tmp).reverse()) execFileSync("umount", ["-l", m]);
  await rm(tmp, { recursive: true, force: true });
});

/** Mount points under `dir` (deepest last). */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
    .filter((mp) => mp.startsWith(`${dir}/`));
}

function unmountUnder(dir: string): void {
  for (const m of mountsUnder(dir).reverse()) execFileSync("umount", [m]);
}

async function withStore<T>(dir: string, fn: (s: LocalStore) => Promise<T>): Promise<T> {
  const store = await LocalStore.open(dir);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function tallyLine(t: KillTally): Record<string, string | number> {
  return {
    kills: `${t.kills} survived (${t.rounds} rounds, fsck exit 0 after every one, ${t.withGarbage} with reclaimable garbage)`,
    hangs: t.hangs,
    time: `${(t.ms / 1000).toFixed(1)} s`,
  };
}

describe.skipIf(!root)("SIGKILL at random instants (root: overlay mounts, runc)", () => {
  it(`image render: ${kills} kills (overlay and --flatten in turn), the next render completes`, async () => {
    const dir = join(tmp, "render");
    const out = join(tmp, "out");
    const fetched = await rkt(dir, ["--insecure-options=image", "fetch", "--no-render", `oci:${layout}:v1`]);
    expectDone(fetched, "fetch");
    const id = img.descriptor.digest;
    const flags = (round: number): string[] => (round % 2 === 0 ? [] : ["--flatten"]);
    const t = await killLoop({
      dir,
      kills,
      random,
      // No tree, no snapshot, no output: the render has everything to do.
      prepare: async () => {
        unmountUnder(tmp);
        await rm(out, { recursive: true, force: true });
        await withStore(dir, (s) => gc(s, { treesOnly: true }));
      },
      command: (round, killAfterMs) =>
        rkt(dir, ["image", "render", ...flags(round), id, out], { killAfterMs }),
      next: async (round) => {
        const r = await rkt(dir, ["image", "render", "--overwrite", ...flags(round), id, out]);
        expectDone(r, "the render after a kill");
        expect(readdirSync(join(out, "rootfs", "a"))).toHaveLength(100);
        expect(readdirSync(join(out, "rootfs", "b"))).toHaveLength(60);
      },
    });
    // What killed renders left beside the output, and their mounts, go with the next gc.
    unmountUnder(tmp);
    expectDone(await rkt(dir, ["image", "gc"]), "gc");
    expect(readdirSync(tmp).filter((n) => n.startsWith(".out.rkt-"))).toEqual([]);
    expect(mountsUnder(tmp)).toEqual([]);
    figure("render", { ...tallyLine(t), seed });
  }, 300_000);

  it(`image gc: ${kills} kills of a gc of images, trees and snapshots; the next gc leaves a clean, empty store`, async () => {
    // A store with an OCI image and 12 ACIs, all rendered; every round starts from a copy.
    const template = join(tmp, "gc-template");
    const acis = Array.from({ length: 12 }, (_, i) => join(tmp, `gc${i}.aci`));
    for (const [i, f] of acis.entries()) await writeRandomAci(f, `example.com/gc${i}`, 16, 8 << 10);
    for (const src of [[`oci:${layout}:v1`], acis]) {
      expectDone(await rkt(template, ["--insecure-options=image", "fetch", ...src]), `fetch ${src[0]}`);
    }
    const dir = join(tmp, "gc");
    const whole = [
      await withStore(template, (s) => Promise.resolve(listImages(s).length)),
      readdirSync(join(template, "cas", "trees")).length,
      readdirSync(join(template, "cas", "layers")).length,
    ];
    expect(whole.every((n) => n > 0)).toBe(true);
    let midway = 0;
    const t = await killLoop({
      dir,
      kills,
      random,
      prepare: async () => {
        await rm(dir, { recursive: true, force: true });
        cpSync(template, dir, { recursive: true });
      },
      command: (_round, killAfterMs) => rkt(dir, ["image", "gc", "--grace-period=0s"], { killAfterMs }),
      next: async () => {
        // A kill in the middle of the work (not before it began or after it ended)?
        const left = [
          await withStore(dir, (s) => Promise.resolve(listImages(s).length)),
          readdirSync(join(dir, "cas", "trees")).length,
          readdirSync(join(dir, "cas", "layers")).length,
        ];
        if (left.some((n, i) => n < whole[i]!) && left.some((n) => n > 0)) midway++;
        const r = await rkt(dir, ["image", "gc", "--grace-period=0s"]);
        expectDone(r, "the gc after a kill");
        const report = await fsckOk(dir);
        expect(report.garbage).toEqual([]);
        expect(await withStore(dir, (s) => Promise.resolve(listImages(s)))).toEqual([]);
        expect(readdirSync(join(dir, "cas", "layers"))).toEqual([]);
        expect(readdirSync(join(dir, "cas", "trees"))).toEqual([]);
      },
    });
    figure("gc", { ...tallyLine(t), "killed half-way through the collection": midway, seed });
  }, 300_000);

  it(`run (runc): ${kills} kills, the next run completes; rkt gc leaves no pod and no mount`, async () => {
    const dir = join(tmp, "run");
    const images = [join(examples, "hello.aci"), `oci:${join(examples, "hello-oci")}`];
    for (const i of images)
      expectDone(await rkt(dir, ["--insecure-options=image", "fetch", i]), `fetch ${i}`);
    const hello = "Hello from a bundled rkt example image.\n";
    let pods = 0;
    let prepared = 0;
    const t = await killLoop({
      dir,
      kills,
      random,
      prepare: () => Promise.resolve(),
      command: (round, killAfterMs) =>
        rkt(dir, ["--insecure-options=image", "run", images[round < 0 ? 0 : round % 2]!], { killAfterMs }),
      next: async (round) => {
        const r = await rkt(dir, ["--insecure-options=image", "run", images[round % 2]!]);
        expectDone(r, "the run after a kill");
        expect(r.stdout).toContain(hello);
        // A run killed between prepare and run leaves a prepared pod, which rkt keeps for
        // --expire-prepared (24 h, as rkt: `rkt run-prepared` can still start it).
        const listed = JSON.parse((await rktHere(dir, ["list", "--format=json"])).stdout) as {
          state: string;
        }[];
        prepared += listed.filter((p) => p.state === "prepared").length;
        const g = await rktHere(dir, ["gc", "--grace-period=0s", "--expire-prepared=0s"]);
        expect(g.code, `rkt gc: ${g.stdout}${g.stderr}`).toBe(0);
        pods += (g.stdout.match(/\n/g) ?? []).length;
      },
    });
    const g = await rkt(dir, ["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    expectDone(g, "rkt gc");
    const listed = await rkt(dir, ["list", "--format=json"]);
    expect(JSON.parse(listed.stdout), listed.stdout).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(existsSync(join(dir, "pods")) ? readdirSync(join(dir, "pods", "run")) : []).toEqual([]);
    figure("run", {
      ...tallyLine(t),
      "pods collected by rkt gc": `${pods} (${prepared} left prepared by a kill between prepare and run)`,
      seed,
    });
  }, 300_000);
});
