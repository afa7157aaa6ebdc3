// Chaos: SIGKILL at random instants of registry pulls, ACI imports and OCI layout imports, each
// through the built `rkt` (≥ 50 kills each). After every kill `rkt image fsck` exits 0 and the
// same command run again completes; a pull resumes what the killed one downloaded, and the bytes
// fetched twice are counted by a proxy in front of the registry.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, gc, listImages, removeImages } from "@rkt/store";
import {
  pushLayout,
  randomLayer,
  startFaultProxy,
  useRegistry,
  writeOciLayout,
  type BuiltImage,
  type FaultProxy,
} from "@rkt/testkit";
import {
  chaosRandom,
  expectDone,
  figure,
  killLoop,
  mib,
  rkt,
  writeRandomAci,
  type KillTally,
} from "./helpers.js";

const kills = 50;
const reg = useRegistry({ mode: "plain" });
const { seed, random } = chaosRandom();
let tmp: string;
let proxy: FaultProxy;
let img: BuiltImage;
let layout: string;
let aciFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-chaos-imports-"));
  layout = join(tmp, "layout");
  img = await writeOciLayout(
    layout,
    {
      layers: [
        randomLayer(2 << 20, { seed: "chaos-a", files: 40 }),
        randomLayer(2 << 20, { seed: "chaos-b", files: 40 }),
        randomLayer(1 << 20, { seed: "chaos-c", files: 8 }),
      ],
    },
    { ref: "v1" },
  );
  await pushLayout(layout, "chaos/pull:v1", reg());
  proxy = await startFaultProxy(reg().host);
  aciFile = join(tmp, "chaos.aci");
  await writeRandomAci(aciFile, "example.com/chaos", 48, 100 << 10);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await rm(tmp, { recursive: true, force: true });
});

/** Removes every image and what only it needed, so the next command has all its work to do. */
async function emptyStore(dir: string): Promise<void> {
  const store = await LocalStore.open(dir);
  try {
    await removeImages(
      store,
      listImages(store).map((i) => i.id),
    );
    await gc(store, { gracePeriodMs: 0 });
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

describe("SIGKILL at random instants", () => {
  it(`registry pulls: ${kills} kills, each resumed by the next pull; bytes re-downloaded counted`, async () => {
    const dir = join(tmp, "pull");
    const url = `docker://${proxy.host}/chaos/pull:v1`;
    const args = ["--insecure-options=image,http", "fetch", "--no-render", url];
    const size = img.config.size + img.layers.reduce((n, l) => n + l.size, 0);
    let killedGot = 0;
    let again = 0;
    let resumedBytes = 0;
    const t = await killLoop({
      dir,
      kills,
      random,
      prepare: () => emptyStore(dir),
      command: async (_round, killAfterMs) => {
        proxy.resetLog();
        const r = await rkt(dir, args, { killAfterMs });
        killedGot += proxy.blobBytes();
        return r;
      },
      next: async () => {
        proxy.resetLog();
        const r = await rkt(dir, [...args.slice(0, -1), "--format=json", url]);
        expectDone(r, "the pull after a kill");
        const [s] = JSON.parse(r.stdout) as { id: string; bytesReused: number }[];
        expect(s?.id).toBe(img.descriptor.digest);
        resumedBytes += s!.bytesReused;
        again += proxy.blobBytes();
      },
    });
    // Whatever the killed pull received and the next one fetched again, beyond the image itself.
    const twice = killedGot + again - (t.rounds + 1) * size;
    expect(twice).toBeGreaterThanOrEqual(0);
    figure("pull", {
      ...tallyLine(t),
      "re-downloaded": `${mib(twice)} of ${mib(killedGot)} the killed pulls received (${((100 * twice) / Math.max(1, killedGot)).toFixed(1)}%); reused by the next pulls ${mib(resumedBytes)}; image ${mib(size)}`,
      seed,
    });
  }, 240_000);

  it(`ACI imports: ${kills} kills, the next import completes`, async () => {
    const dir = join(tmp, "aci");
    const args = ["--insecure-options=image", "fetch", "--no-render", aciFile];
    let id = "";
    const t = await killLoop({
      dir,
      kills,
      random,
      prepare: () => emptyStore(dir),
      command: (_round, killAfterMs) => rkt(dir, args, { killAfterMs }),
      next: async () => {
        const r = await rkt(dir, args);
        expectDone(r, "the import after a kill");
        id ||= r.stdout.trim();
        expect(r.stdout.trim()).toBe(id);
      },
    });
    expect(id).toMatch(/^sha512-[0-9a-f]{32,64}$/);
    figure("aci-import", { ...tallyLine(t), seed });
  }, 240_000);

  it(`OCI layout imports: ${kills} kills, the next import completes`, async () => {
    const dir = join(tmp, "layout-store");
    const args = ["--insecure-options=image", "fetch", "--no-render", `oci:${layout}:v1`];
    const t = await killLoop({
      dir,
      kills,
      random,
      prepare: () => emptyStore(dir),
      command: (_round, killAfterMs) => rkt(dir, args, { killAfterMs }),
      next: async () => {
        const r = await rkt(dir, args);
        expectDone(r, "the import after a kill");
        expect(r.stdout.trim()).toBe(img.descriptor.digest);
      },
    });
    figure("layout-import", { ...tallyLine(t), seed });
  }, 240_000);
});
