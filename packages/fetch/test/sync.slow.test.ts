// syncImages into a real registry, counted from the registries' own request logs: a first sync
// asks the destination for each tag once, uploads each distinct blob once and mounts the shared
// base; a re-sync of unchanged tags is one HEAD per side per tag and nothing else; and an image
// waiting for a blob another image is sending gives its place to the next (a slow origin, held
// by a small proxy, shows the third image moving while the base layer is still on its way).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostPlatform } from "@rkt/oci";
import {
  pushLayout,
  randomLayer,
  startRegistry,
  writeOciLayout,
  type BuiltImage,
  type Registry,
} from "@rkt/testkit";
import { RegistryClient } from "../src/registry/client.js";
import { connectionsPerHost } from "../src/registry/http.js";
import type { SourceRegistry, SyncConfig } from "../src/sync/config.js";
import { planSync, registryTarget, syncImages, type SyncResult } from "../src/sync/sync.js";

const names = ["a0", "a1", "a2", "a3", "a4", "a5"];
let tmp: string;
let origin: Registry;
const built = new Map<string, BuiltImage>();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-sync-requests-"));
  origin = await startRegistry({ mode: "plain" });
  const base = randomLayer(4 << 20, { seed: "base", compression: "none" });
  for (const n of names) {
    const dir = join(tmp, `layout-${n}`);
    const own = randomLayer(64 << 10, { seed: n, compression: "none", dir: n });
    built.set(n, await writeOciLayout(dir, { layers: [base, own] }, { ref: "x" }));
    await pushLayout(dir, `sync/${n}:v1`, origin);
  }
}, 180_000);

afterAll(async () => {
  await origin?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

interface Logged {
  readonly method: string;
  readonly uri: string;
  readonly status: number;
  readonly remote: string;
}

// distribution logs one "response completed" line per request at level info.
function requests(log: string): Logged[] {
  const out: Logged[] = [];
  for (const line of log.split("\n")) {
    if (!line.includes('msg="response completed')) continue;
    const field = (k: string): string =>
      new RegExp(`${k.replace(/\./g, "\\.")}=("([^"]*)"|(\\S+))`)
        .exec(line)
        ?.slice(2)
        .find((x) => x) ?? "";
    if (field("http.request.useragent") !== "rkt") continue;
    out.push({
      method: field("http.request.method"),
      uri: field("http.request.uri"),
      status: Number(field("http.response.status")),
      remote: field("http.request.remoteaddr"),
    });
  }
  return out;
}

const count = (rs: readonly Logged[], method: string, re: RegExp, status?: number): number =>
  rs.filter((r) => r.method === method && re.test(r.uri) && (status === undefined || r.status === status))
    .length;

function configFor(host: string, tags: readonly string[]): SyncConfig {
  const source: SourceRegistry = {
    host,
    repositories: tags.map((n) => ({ repository: `sync/${n}`, refs: ["v1"] })),
    tlsVerify: false,
  };
  return { registries: [source] };
}

async function sync(
  config: SyncConfig,
  dest: Registry,
  o: { parallel?: number } = {},
): Promise<SyncResult[]> {
  const clients: RegistryClient[] = [];
  const client = (registry: string): RegistryClient => {
    const c = new RegistryClient(registry, { insecure: { http: true } });
    clients.push(c);
    return c;
  };
  const sources = new Map(config.registries.map((r) => [r.host, r]));
  const bySource = new Map<string, RegistryClient>();
  const sourceClient = (_: unknown, registry: string): RegistryClient => {
    let c = bySource.get(registry);
    if (c === undefined) bySource.set(registry, (c = client(registry)));
    return c;
  };
  try {
    const items = await planSync(config, (s) => sourceClient(s, s.host));
    const target = registryTarget(client(dest.host), dest.host, "");
    return await syncImages(items, target, sources, {
      client: sourceClient,
      parallel: o.parallel,
      platform: hostPlatform(),
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

describe("syncImages, counted from the registries' logs", () => {
  it("first sync: one manifest HEAD per tag, each blob uploaded once, the base mounted; re-sync: one HEAD per side per tag", async () => {
    const dest = await startRegistry({ mode: "plain" });
    try {
      const config = configFor(origin.host, names);
      const first = await sync(config, dest);
      expect(first.map((r) => r.status)).toEqual(names.map(() => "copied"));
      expect(first.map((r) => r.digest)).toEqual(names.map((n) => built.get(n)!.descriptor.digest));
      const d1 = requests(dest.logs());
      // The comparison asked for each tag; the copy did not ask again.
      expect(count(d1, "HEAD", /\/manifests\/v1$/)).toBe(names.length);
      expect(count(d1, "PUT", /\/manifests\/v1$/, 201)).toBe(names.length);
      // Config and own layer of each image, and the base once: each uploaded once.
      expect(count(d1, "PUT", /\/blobs\/uploads\/.*digest=/, 201)).toBe(2 * names.length + 1);
      expect(count(d1, "POST", /\/blobs\/uploads\/\?mount=/, 201)).toBe(names.length - 1);
      // HEADs reuse their connections: no more than the two pools (node:http, undici) hold.
      expect(new Set(d1.map((r) => r.remote)).size).toBeLessThanOrEqual(2 * connectionsPerHost);

      const o0 = requests(origin.logs()).length;
      const again = await sync(config, dest);
      expect(again.map((r) => [r.status, r.bytes])).toEqual(names.map(() => ["unchanged", 0]));
      const d2 = requests(dest.logs()).slice(d1.length);
      const o2 = requests(origin.logs()).slice(o0);
      for (const side of [d2, o2]) {
        expect(side).toHaveLength(names.length);
        expect(side.every((r) => r.method === "HEAD" && /\/manifests\/v1$/.test(r.uri))).toBe(true);
        expect(new Set(side.map((r) => r.uri)).size).toBe(names.length);
      }
    } finally {
      await dest.stop();
    }
  }, 120_000);

  it("an image waiting for the base layer another image sends gives its place: the third image moves meanwhile", async () => {
    const three = names.slice(0, 3);
    const base = built.get(three[0]!)!.layers[0]!.digest;
    const own = new Set<string>(three.map((n) => built.get(n)!.layers[1]!.digest));
    const seen = new Set<string>();
    let release: (() => void) | undefined;
    const allOwn = new Promise<void>((r) => (release = r));
    let heldTimedOut = false;
    const up = new URL(origin.url);
    // Holds the base layer's body until every image's own layer was asked for (at most 20 s):
    // with only two images moving at once, the third asks only if a waiting one stepped aside.
    const proxy: Server = createServer((req, res) => {
      const url = req.url ?? "";
      const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url)?.[1];
      if (req.method === "GET" && blob !== undefined && own.has(blob)) {
        seen.add(blob);
        if (seen.size === own.size) release?.();
      }
      const go = (): void => {
        const out = httpRequest(
          { host: up.hostname, port: up.port, path: url, method: req.method, headers: req.headers },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        req.pipe(out);
      };
      if (req.method === "GET" && blob === base) {
        const t = setTimeout(() => {
          heldTimedOut = true;
          release?.();
        }, 20_000);
        void allOwn.then(() => {
          clearTimeout(t);
          go();
        });
      } else go();
    });
    await new Promise<void>((ok) => proxy.listen(0, "127.0.0.1", ok));
    const dest = await startRegistry({ mode: "plain" });
    try {
      const host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const rs = await sync(configFor(host, three), dest, { parallel: 2 });
      expect(rs.map((r) => r.status)).toEqual(three.map(() => "copied"));
      expect(heldTimedOut).toBe(false);
      expect(seen.size).toBe(3);
      // Still sent once, and mounted into the others.
      const d = requests(dest.logs());
      expect(count(d, "POST", /\/blobs\/uploads\/\?mount=/, 201)).toBe(2);
    } finally {
      await dest.stop();
      await new Promise((ok) => proxy.close(ok));
    }
  }, 120_000);
});
