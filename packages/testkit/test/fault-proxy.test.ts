// The fault proxy against a small upstream of ours (the faults are the subject here), and the
// seeded generator chaos runs replay with.
import { createHash } from "node:crypto";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chaosSeed, seededRandom, startFaultProxy, type FaultProxy } from "@rkt/testkit";

const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
const path = `/v2/r/blobs/sha256:${createHash("sha256").update(body).digest("hex")}`;
let upstream: Server;
let proxy: FaultProxy;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const from = m === null ? 0 : Number(m[1]);
    res.writeHead(m === null ? 200 : 206, { "content-length": String(body.length - from) });
    res.end(body.subarray(from));
  });
  await new Promise<void>((ok) => upstream.listen(0, "127.0.0.1", ok));
  proxy = await startFaultProxy(`127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await proxy.close();
  await new Promise((ok) => upstream.close(ok));
});

/** GETs `path` through the proxy: status, the declared length, the bytes received, how it ended. */
function get(range?: string): Promise<{ status: number; declared: number; got: Buffer; ended: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const req = request(
      {
        host: "127.0.0.1",
        port: Number(proxy.host.split(":")[1]),
        path,
        agent: false,
        headers: range ? { range } : {},
      },
      (res) => {
        const done = (ended: string): void =>
          resolve({
            status: res.statusCode ?? 0,
            declared: Number(res.headers["content-length"]),
            got: Buffer.concat(chunks),
            ended,
          });
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done("end"));
        res.on("error", (e) => done((e as { code?: string }).code ?? e.message));
        res.on("aborted", () => done("aborted"));
      },
    );
    req.on("error", (e) =>
      resolve({
        status: 0,
        declared: 0,
        got: Buffer.concat(chunks),
        ended: (e as { code?: string }).code ?? e.message,
      }),
    );
    req.setTimeout(1000, () => req.destroy(new Error("timeout")));
    req.end();
  });
}

const any = (): boolean => true;

describe("startFaultProxy", () => {
  it("forwards untouched without rules, Range included, and counts the blob bytes", async () => {
    proxy.setRules([]);
    proxy.resetLog();
    const r = await get();
    expect(r).toMatchObject({ status: 200, declared: body.length, ended: "end" });
    expect(r.got.equals(body)).toBe(true);
    const tail = await get("bytes=150000-");
    expect(tail.status).toBe(206);
    expect(tail.got.equals(body.subarray(150_000))).toBe(true);
    expect(proxy.blobBytes()).toBe(body.length + 50_000);
    expect(proxy.log.map((e) => e.range)).toEqual([undefined, "bytes=150000-"]);
  });

  it("flip changes exactly one byte; times limits a rule to that many requests", async () => {
    proxy.setRules([{ match: any, fault: { kind: "flip", atByte: 70_000 }, times: 1 }]);
    const r = await get();
    const diff = [...r.got].flatMap((b, i) => (b !== body[i] ? [i] : []));
    expect(diff).toEqual([70_000]);
    expect((await get()).got.equals(body)).toBe(true);
  });

  it("reset, truncate and stall cut the body; length lies about it; status answers instead", async () => {
    proxy.setRules([{ match: any, fault: { kind: "truncate", afterBytes: 1000 } }]);
    const cut = await get();
    expect(cut.got.length).toBe(1000);
    expect(cut.ended).not.toBe("end");
    proxy.setRules([{ match: any, fault: { kind: "reset", afterBytes: 0 } }]);
    expect((await get()).ended).toMatch(/ECONNRESET|aborted/);
    proxy.setRules([{ match: any, fault: { kind: "stall", afterBytes: 5000 } }]);
    const stalled = await get();
    expect(stalled.got.length).toBe(5000);
    expect(stalled.ended).toMatch(/timeout|aborted|ECONNRESET/);
    proxy.setRules([{ match: any, fault: { kind: "length", delta: -10 } }]);
    const short = await get();
    expect(short).toMatchObject({ declared: body.length - 10, ended: "end" });
    expect(short.got.equals(body.subarray(0, body.length - 10))).toBe(true);
    proxy.setRules([{ match: any, fault: { kind: "status", status: 429, headers: { "retry-after": "2" } } }]);
    expect((await get()).status).toBe(429);
    proxy.setRules([]);
  });
});

describe("seededRandom", () => {
  it("replays the same sequence from the same seed, another from another", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(chaosSeed({ RKT_CHAOS_SEED: "1234" })).toBe(1234);
  });
});
