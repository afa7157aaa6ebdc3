// `rkt image sync` under faults: a registry that answers one request with 429 and Retry-After
// (a small proxy in front of the real registry; the distribution registry never throttles)
// pauses every worker's requests to that host, not only the one that was refused; and an
// origin (the real docker-registry) stopped mid-sync: the images it could not serve fail,
// exit 254, and once it is back at the same address a rerun sends only what was not committed.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, randomLayer, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { runRkt, type RktRun } from "./helpers.js";

let tmp: string;
let origin: Registry;
let dest: Registry;
const names = ["i0", "i1", "i2", "i3", "i4", "i5"];
const layerBytes = 6 << 20;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-sync-faults-"));
  [origin, dest] = await Promise.all([
    startRegistry({ mode: "plain", storageDir: join(tmp, "origin-storage") }),
    startRegistry({ mode: "plain" }),
  ]);
  for (const x of names) {
    const dir = join(tmp, `layout-${x}`);
    await writeOciLayout(
      dir,
      { layers: [randomLayer(layerBytes, { seed: x, compression: "none" })] },
      { ref: "x" },
    );
    await pushLayout(dir, `${x}:v1`, origin);
  }
}, 180_000);

afterAll(async () => {
  await origin?.stop();
  await dest?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function config(name: string, host: string): string {
  const file = join(tmp, name);
  writeFileSync(
    file,
    [`${host}:`, "  images:", ...names.map((x) => `    ${x}: ["v1"]`), "  tls-verify: false", ""].join("\n"),
  );
  return file;
}

function rkt(args: string[], stdout?: PassThrough): Promise<RktRun> {
  return runRkt(["--dir", join(tmp, "store"), "--insecure-options=http", "image", "sync", ...args], {
    cwd: tmp,
    ...(stdout === undefined ? {} : { stdout }),
  });
}

interface Result {
  source: string;
  status: string;
  bytes?: number;
  error?: { code: string; message: string };
}

describe("rkt image sync under faults", () => {
  it("one 429 with Retry-After pauses every worker's requests to that host, then the sync completes", async () => {
    const up = new URL(origin.url);
    const arrivals: number[] = [];
    let refusedAt: number | undefined;
    const proxy: Server = createServer((req, res) => {
      const now = Date.now();
      arrivals.push(now);
      if (refusedAt === undefined && req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "")) {
        refusedAt = now;
        res.writeHead(429, { "retry-after": "1", "content-type": "application/json" });
        res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return;
      }
      const out = httpRequest(
        { host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(out);
    });
    await new Promise<void>((ok) => proxy.listen(0, "127.0.0.1", ok));
    const host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const r = await rkt([
        "--config",
        config("throttled.yaml", host),
        "--parallel=4",
        "--format=json",
        "--dest-tls-verify=false",
        `docker://${dest.host}/throttled`,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const rs = JSON.parse(r.stdout) as Result[];
      expect(rs.map((x) => x.status)).toEqual(names.map(() => "copied"));
      expect(refusedAt).toBeDefined();
      // Requests already on their way when the 429 went out may arrive just after it (late on a
      // loaded machine); then nothing until Retry-After has passed, though four workers had work
      // for that host.
      const during = arrivals.filter((t) => t > refusedAt! + 250 && t < refusedAt! + 950);
      expect(during).toEqual([]);
      expect(arrivals.filter((t) => t >= refusedAt! + 950).length).toBeGreaterThan(names.length);
    } finally {
      await new Promise((ok) => proxy.close(ok));
    }
  }, 120_000);

  it("an origin that goes down mid-sync: those images fail (exit 254); a rerun once it is back sends only the rest", async () => {
    const file = config("down.yaml", origin.host);
    const args = ["--config", file, "--parallel=2", "--format=json", "--dest-tls-verify=false"];
    const target = `docker://${dest.host}/down`;
    let text = "";
    let stopped: Promise<void> | undefined;
    // The text lines come as images finish; the origin is stopped after the first.
    const lines = new PassThrough();
    lines.on("data", (c: Buffer) => {
      text += c.toString();
      if (stopped === undefined && text.includes("copied ")) stopped = origin.stop();
    });
    const first = await rkt([...args.filter((a) => a !== "--format=json"), target], lines);
    await stopped;
    expect(first.code).toBe(254);
    expect(first.stderr).toMatch(/sync: \d of 6 images failed to sync: /);
    const copiedFirst = text.split("\n").filter((l) => l.startsWith("copied ")).length;
    const failedFirst = text.split("\n").filter((l) => l.startsWith("failed ")).length;
    expect(copiedFirst).toBeGreaterThanOrEqual(1);
    expect(failedFirst).toBeGreaterThanOrEqual(1);
    expect(copiedFirst + failedFirst).toBe(6);
    origin = await startRegistry({
      mode: "plain",
      storageDir: join(tmp, "origin-storage"),
      port: Number(origin.host.split(":")[1]),
    });
    const again = await rkt([...args, target]);
    expect(again.code, again.stderr).toBe(0);
    const rs = JSON.parse(again.stdout) as Result[];
    expect(rs.filter((x) => x.status === "unchanged")).toHaveLength(copiedFirst);
    for (const x of rs.filter((y) => y.status === "unchanged")) expect(x.bytes).toBe(0);
    const sent = rs.filter((x) => x.status === "copied");
    expect(sent).toHaveLength(failedFirst);
    // Only the failed images' blobs move (a layer each, plus its small config).
    const bytes = sent.reduce((n, x) => n + (x.bytes ?? 0), 0);
    expect(bytes).toBeLessThanOrEqual(failedFirst * (layerBytes + (64 << 10)));
    const third = await rkt([...args, target]);
    expect((JSON.parse(third.stdout) as Result[]).map((x) => x.status)).toEqual(names.map(() => "unchanged"));
  }, 180_000);
});
