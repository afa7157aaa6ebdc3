// registries.conf mirrors with two real docker-registry instances (an origin and a mirror): the
// mirror serves when it has the image (the origin is never asked), a dead or empty mirror hands
// over to the origin, pull-from-mirror filters, and a blocked registry is refused before any
// request. The library path (pullImage) and the built binary ($CONTAINERS_REGISTRIES_CONF).
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, parseDockerReference } from "@rkt/oci";
import { LocalStore, fsck, listImages } from "@rkt/store";
import { pullImage } from "../src/pull.js";
import { parseRegistriesConf, pullSources } from "../src/registries-conf.js";
import { staticCredentials } from "../src/registry/credentials.js";
import { pushLayout, randomLayer, useRegistry, writeOciLayout, type BuiltImage } from "@rkt/testkit";
import { withStoreIn } from "./store-helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const origin = useRegistry({ mode: "plain" });
const mirror = useRegistry({ mode: "plain" });
const privateMirror = useRegistry({ mode: "basic", tls: true });

let tmp: string;
let img: BuiltImage;
let deadPort: number;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-pull-mirrors-"));
  const dir = join(tmp, "layout");
  img = await writeOciLayout(dir, { layers: [randomLayer(50_000, { seed: "mirrors" })] });
  await pushLayout(dir, "app/hello:1", origin());
  await pushLayout(dir, "mirror/app/hello:1", mirror());
  await pushLayout(dir, "app/only-origin:1", origin());
  await pushLayout(dir, "app/hello:1", privateMirror());
  // A port nothing listens on: bind one, note it, close it.
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  deadPort = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// Requests a registry logged for a repository (distribution logs each request's URI).
function asked(reg: { logs: () => string }, repository: string): number {
  return reg
    .logs()
    .split("\n")
    .filter((l) => l.includes(`/v2/${repository}/`)).length;
}

function withStore<T>(fn: (s: LocalStore) => Promise<T>): Promise<T> {
  return withStoreIn(tmp, fn);
}

function conf(mirrors: string, extra = ""): string {
  return `
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "${origin().host}/app"
insecure = true
${extra}
${mirrors}
`;
}

describe("registries.conf mirrors", () => {
  it("plans mirrors in order, then the origin; pull-from-mirror filters by tag or digest", async () => {
    const c = await parseRegistriesConf(
      conf(`
[[registry.mirror]]
location = "m1.example/mirror"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m2.example:5000"
insecure = true
`),
      "registries.conf",
    );
    const byTag = pullSources(c, parseDockerReference(`${origin().host}/app/x:1`));
    expect(byTag.map((s) => `${s.registry}/${s.repository}`)).toEqual([
      "m2.example:5000/x",
      `${origin().host}/app/x`,
    ]);
    const byDigest = pullSources(c, parseDockerReference(`${origin().host}/app/x@${img.descriptor.digest}`));
    expect(byDigest.map((s) => s.registry)).toEqual(["m1.example", "m2.example:5000", origin().host]);
    expect(pullSources(c, parseDockerReference(`${origin().host}/other/x:1`))).toHaveLength(1);
    await expect(parseRegistriesConf("[[registry]]\nprefix = 1", "r.conf")).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
    });
  });

  it("pulls from the mirror when it has the image: the origin is never asked", async () => {
    const c = await parseRegistriesConf(
      conf(`[[registry.mirror]]\nlocation = "${mirror().host}/mirror/app"\ninsecure = true`),
      "registries.conf",
    );
    await withStore(async (s) => {
      const before = asked(origin(), "app/hello");
      const r = await pullImage(s, parseDockerReference(`${origin().host}/app/hello:1`), {
        registriesConf: c,
      });
      expect(r).toMatchObject({
        id: img.descriptor.digest,
        source: "pulled",
        name: `${origin().host}/app/hello`,
      });
      expect(asked(mirror(), "mirror/app/hello")).toBeGreaterThan(0);
      expect(asked(origin(), "app/hello")).toBe(before);
    });
  });

  it("falls back to the origin when a mirror is down or lacks the image", async () => {
    const c = await parseRegistriesConf(
      conf(
        `[[registry.mirror]]\nlocation = "127.0.0.1:${deadPort}"\ninsecure = true\n` +
          `[[registry.mirror]]\nlocation = "${mirror().host}/mirror/app"\ninsecure = true`,
      ),
      "registries.conf",
    );
    await withStore(async (s) => {
      const failed: string[] = [];
      const r = await pullImage(s, parseDockerReference(`${origin().host}/app/only-origin:1`), {
        registriesConf: c,
        onSourceFailed: (src) => failed.push(src.registry),
      });
      expect(r.id).toBe(img.descriptor.digest);
      expect(failed).toEqual([`127.0.0.1:${deadPort}`, mirror().host]);
      expect(asked(origin(), "app/only-origin")).toBeGreaterThan(0);
      expect((await fsck(s)).clean).toBe(true);
    });
  });

  it("asks each source with its own host's credentials", async () => {
    const c = await parseRegistriesConf(
      conf(`[[registry.mirror]]\nlocation = "${privateMirror().host}/app"`),
      "registries.conf",
    );
    const p = privateMirror();
    const ref = parseDockerReference(`${origin().host}/app/hello:1`);
    await withStore(async (s) => {
      // The mirror's credentials: it serves the image.
      const r = await pullImage(s, ref, {
        registriesConf: c,
        caPem: p.caPem,
        credentials: staticCredentials({ [p.host]: { username: p.username!, password: p.password! } }),
      });
      expect(r.id).toBe(img.descriptor.digest);
    });
    await withStore(async (s) => {
      // Credentials for the origin only: the mirror gets none (401) and the origin serves.
      const failed: string[] = [];
      const before = asked(origin(), "app/hello");
      const r = await pullImage(s, ref, {
        registriesConf: c,
        caPem: p.caPem,
        credentials: staticCredentials({ [origin().host]: { username: p.username!, password: p.password! } }),
        onSourceFailed: (src, e) => failed.push(`${src.registry} ${e.code}`),
      });
      expect(r.id).toBe(img.descriptor.digest);
      expect(failed).toEqual([`${p.host} RKT_UNAUTHORIZED`]);
      expect(asked(origin(), "app/hello")).toBeGreaterThan(before);
    });
  });

  it("refuses a blocked registry before any request; the CLI reads $CONTAINERS_REGISTRIES_CONF", async () => {
    const file = join(tmp, "blocked.conf");
    await writeFile(file, conf("", "blocked = true"));
    const before = asked(origin(), "app/hello");
    const dir = await mkdtemp(join(tmp, "store-"));
    const r = spawnSync(
      process.execPath,
      [bin, "--dir", dir, "--insecure-options=image,http", "fetch", `docker://${origin().host}/app/hello:1`],
      { encoding: "utf8", env: { ...process.env, CONTAINERS_REGISTRIES_CONF: file } },
    );
    expect(r.status).toBe(254);
    // The last line (a warning about --insecure-options=image may come before it).
    expect(r.stderr.split("\n").slice(-2)[0]).toBe(
      `fetch: registry ${origin().host}/app is blocked by ${file}; refusing to pull ${origin().host}/app/hello`,
    );
    expect(asked(origin(), "app/hello")).toBe(before);
    const s = await LocalStore.open(dir);
    try {
      expect(listImages(s)).toEqual([]);
    } finally {
      s.close();
    }
    // The same file with a mirror instead: the binary pulls through it.
    await writeFile(
      file,
      conf(`[[registry.mirror]]\nlocation = "${mirror().host}/mirror/app"\ninsecure = true`),
    );
    const ok = spawnSync(
      process.execPath,
      [bin, "--dir", dir, "--insecure-options=image,http", "fetch", `docker://${origin().host}/app/hello:1`],
      { encoding: "utf8", env: { ...process.env, CONTAINERS_REGISTRIES_CONF: file } },
    );
    expect(ok.stdout).toBe(`${img.descriptor.digest}\n`);
    expect(asked(origin(), "app/hello")).toBe(before);
  });
});
