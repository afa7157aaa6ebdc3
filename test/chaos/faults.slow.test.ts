// Chaos: a fault-injecting proxy in front of the real registry. For each fault (connection
// reset, stall, truncation, a wrong byte, a wrong Content-Length, 5xx then success, 429 storms
// with Retry-After) a pull through the built `rkt` either recovers (retry, resume) with the right
// image or fails in bounded time with one clear line and exit 254, leaving nothing visible: no
// image, no blob of the faulted layer, a store fsck passes and that the next clean pull fills.
// Stalls go through the library with a short stall timeout (the CLI waits 30 s per stall).
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDockerReference, type Digest } from "@rkt/oci";
import { RegistryClient, pullImage } from "@rkt/fetch";
import { LocalStore, listImages } from "@rkt/store";
import {
  isBlobGet,
  pushLayout,
  randomLayer,
  startFaultProxy,
  useRegistry,
  writeOciLayout,
  type BuiltImage,
  type Fault,
  type FaultProxy,
  type FaultRule,
} from "@rkt/testkit";
import { expectDone, figure, fsckOk, rkt } from "./helpers.js";

const reg = useRegistry({ mode: "plain" });
let tmp: string;
let proxy: FaultProxy;
let img: BuiltImage;
let layer: Digest;
let n = 0;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-chaos-faults-"));
  const dir = join(tmp, "layout");
  img = await writeOciLayout(dir, {
    layers: [
      randomLayer(1 << 20, { seed: "fault-a", compression: "none" }),
      randomLayer(64 << 10, { seed: "fault-b" }),
    ],
  });
  layer = img.layers[0]!.digest;
  await pushLayout(dir, "faults/app:v1", reg());
  proxy = await startFaultProxy(reg().host);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await rm(tmp, { recursive: true, force: true });
});

const onLayer = (r: { method: string; path: string }): boolean => isBlobGet(r) && r.path.endsWith(layer);
const onManifest = (r: { method: string; path: string }): boolean =>
  r.method === "GET" && r.path.includes("/manifests/");

interface Outcome {
  name: string;
  ok: boolean;
  ms: number;
  line: string;
}
const outcomes: Outcome[] = [];

/** Whatever the failure, nothing of it is visible and a clean pull then completes. */
async function nothingVisible(dir: string): Promise<void> {
  const store = await LocalStore.open(dir);
  try {
    expect(listImages(store)).toEqual([]);
    expect(existsSync(store.blobFile(layer))).toBe(false);
  } finally {
    store.close();
  }
  await fsckOk(dir);
  proxy.setRules([]);
  const clean = await pull(dir);
  expectDone(clean, "a clean pull after the fault");
  expect(clean.stdout.trim()).toBe(img.descriptor.digest);
  await fsckOk(dir);
}

function pull(dir: string): ReturnType<typeof rkt> {
  return rkt(dir, [
    "--insecure-options=image,http",
    "fetch",
    "--no-render",
    `docker://${proxy.host}/faults/app:v1`,
  ]);
}

/** Runs one pull under `rules`; returns its outcome after the checks either way. */
async function underFault(
  name: string,
  rules: Parameters<FaultProxy["setRules"]>[0],
  expectOk: boolean,
  boundMs: number,
  message?: RegExp,
): Promise<void> {
  const dir = join(tmp, `store-${n++}`);
  proxy.setRules(rules);
  proxy.resetLog();
  const r = await pull(dir);
  proxy.setRules([]);
  expect(r.hung, `${name} hung`).toBe(false);
  expect(r.ms, `${name} took ${r.ms} ms`).toBeLessThan(boundMs);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("fetch: "));
  if (expectOk) {
    expectDone(r, name);
    expect(r.stdout.trim()).toBe(img.descriptor.digest);
    await fsckOk(dir);
  } else {
    expect(r.code, r.stderr).toBe(254);
    expect(errors, r.stderr).toHaveLength(1);
    expect(errors[0]).toContain(`${proxy.host}/faults/app:v1`);
    if (message !== undefined) expect(errors[0]).toMatch(message);
    await nothingVisible(dir);
  }
  outcomes.push({ name, ok: r.code === 0, ms: r.ms, line: errors[0] ?? "" });
}

type Match = (r: { method: string; path: string }) => boolean;
const times = (fault: Fault, count: number, match: Match = onLayer): FaultRule[] => [
  { match, fault, times: count },
];
const always = (fault: Fault, match: Match = onLayer): FaultRule[] => [{ match, fault }];

describe("a fault-injecting proxy in front of the registry (through rkt fetch)", () => {
  it("connection reset: once mid-body resumes; at every first byte fails cleanly", async () => {
    await underFault("reset once", times({ kind: "reset", afterBytes: 300_000 }, 1), true, 15_000);
    // The reset drops what was still in flight; the resume asks only for what did not arrive.
    const got = proxy.log.filter(onLayer);
    expect(got).toHaveLength(2);
    expect(got[0]!.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(got[1]!.range ?? "")?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(300_000);
    await underFault(
      "reset always",
      always({ kind: "reset", afterBytes: 0 }),
      false,
      30_000,
      /the connection was reset/,
    );
    // Before a manifest's headers: retried like any idempotent request.
    await underFault(
      "reset on the manifest once",
      times({ kind: "reset", afterBytes: 0 }, 1, onManifest),
      true,
      15_000,
    );
  });

  it("truncation (clean close short of Content-Length): once resumes; always fails cleanly", async () => {
    await underFault("truncate once", times({ kind: "truncate", afterBytes: 500_000 }, 1), true, 15_000);
    const cut = { kind: "truncate", afterBytes: 0 } as const;
    await underFault("truncate always", always(cut), false, 30_000, /closed the connection in the middle/);
  });

  it("a wrong byte: the digest check refuses it and nothing of it is kept", async () => {
    await underFault("flip", always({ kind: "flip", atByte: 123_456 }), false, 15_000, /digest/i);
  });

  it("a wrong Content-Length, shorter or longer, never yields a wrong blob", async () => {
    // A declared length that is not the descriptor's is refused before the body is read (and
    // a shorter one's response is complete as declared): not retried, not resumed.
    const short = { kind: "length", delta: -1000 } as const;
    await underFault("length -1000 once", times(short, 1), false, 15_000, /size mismatch/);
    const long = { kind: "length", delta: 1000 } as const;
    await underFault("length +1000 once", times(long, 1), false, 15_000, /size mismatch/);
  });

  it("5xx then success: retried; always 5xx fails with the registry's status", async () => {
    const e503 = {
      kind: "status",
      status: 503,
      body: '{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}',
    } as const;
    await underFault("503 twice", times(e503, 2), true, 15_000);
    await underFault(
      "500 on the manifest always",
      always({ kind: "status", status: 500 }, onManifest),
      false,
      60_000,
      /500/,
    );
  });

  it("429 storms with Retry-After: waited out; an endless storm or a long Retry-After gives up", async () => {
    const tooMany = (after: string) =>
      ({
        kind: "status",
        status: 429,
        headers: { "retry-after": after },
        body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
      }) as const;
    const t0 = performance.now();
    await underFault("429 ×3, Retry-After 1", times(tooMany("1"), 3), true, 20_000);
    expect(performance.now() - t0).toBeGreaterThan(2_500); // Retry-After was honoured
    await underFault("429 storm, Retry-After 1", always(tooMany("1")), false, 30_000, /429|too many/i);
    await underFault("429, Retry-After 3600", always(tooMany("3600")), false, 10_000, /429|too many/i);
  });
});

describe("stalls (library: a 500 ms stall timeout)", () => {
  async function libraryPull(name: string, rules: Parameters<FaultProxy["setRules"]>[0], expectOk: boolean) {
    const dir = join(tmp, `store-${n++}`);
    const store = await LocalStore.open(dir);
    const client = new RegistryClient(proxy.host, {
      insecure: { http: true },
      stallTimeoutMs: 500,
      retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 500, maxElapsedMs: 10_000 },
    });
    proxy.setRules(rules);
    const t0 = performance.now();
    let error = "";
    try {
      const r = await pullImage(store, parseDockerReference(`${proxy.host}/faults/app:v1`), {
        client,
        insecure: { http: true },
      });
      expect(r.id).toBe(img.descriptor.digest);
    } catch (e) {
      error = (e as Error).message;
    } finally {
      proxy.setRules([]);
      await client.close();
      store.close();
    }
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(15_000);
    if (expectOk) {
      expect(error).toBe("");
      await fsckOk(dir);
    } else {
      expect(error).toMatch(/stall/);
      expect(error.split("\n")).toHaveLength(1);
      await nothingVisible(dir);
    }
    outcomes.push({ name, ok: error === "", ms, line: error });
  }

  it("a stall once is cut by the stall timeout and resumed; an endless stall fails in bounded time", async () => {
    await libraryPull("stall once", times({ kind: "stall", afterBytes: 200_000 }, 1), true);
    await libraryPull("stall always", always({ kind: "stall", afterBytes: 0 }), false);
  });

  it("prints the figure line", () => {
    const failed = outcomes.filter((o) => !o.ok);
    figure("faults", {
      cases: outcomes.length,
      recovered: outcomes.filter((o) => o.ok).length,
      "failed cleanly (exit 254, one line, nothing visible)": failed.length,
      slowest: `${(Math.max(...outcomes.map((o) => o.ms)) / 1000).toFixed(1)} s`,
      hangs: 0,
    });
    for (const o of failed) console.log(`  ${o.name}: ${o.line.replace(/sha256:[0-9a-f]{64}/g, "sha256:…")}`);
    expect(outcomes.length).toBeGreaterThanOrEqual(14);
  });
});
