// appc fetches over a real HTTPS server on loopback (a throwaway CA the client trusts through
// NODE_EXTRA_CA_CERTS, never by disabling checks), with ACIs signed by real GnuPG keys, a real
// keystore and a real store. Every refusal leaves nothing stored.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { writeAci } from "@rkt/appc";
import { readAppcAuth } from "../src/appc/auth-files.js";
import { fetchAppcImage, type FetchAppcOptions } from "../src/appc/fetch-image.js";
import { ErrorCode, RktError } from "@rkt/oci";
import { LocalStore, fsck, getRemote, listImages } from "@rkt/store";
import { gnupgHome, startAppcServer, type AppcServer, type GnupgHome } from "@rkt/testkit";
import { KeyStore } from "@rkt/trust";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let tmp: string;
let gnupg: GnupgHome;
let server: AppcServer;
const host = { os: "linux", arch: "amd64" };

const sign = (bytes: Buffer, uid = "appc@example.com"): Buffer => gnupg.sign(uid, bytes);

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-appc-fetch-"));
  gnupg = gnupgHome(join(tmp, "gnupg"));
  gnupg.generateKey("Appc Signer <appc@example.com>");
  gnupg.generateKey("Other Signer <other@example.com>");
  server = await startAppcServer();
});
afterAll(async () => {
  await server.close();
  gnupg.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface AciSpec {
  name: string;
  labels?: Record<string, string>;
  deps?: { imageName: string; labels?: Record<string, string> }[];
  /** Size of a random file in the rootfs (makes the ACI big and incompressible). */
  payload?: number;
}

async function buildAci(s: AciSpec): Promise<Buffer> {
  const labels = Object.entries(s.labels ?? { version: "1.0", ...host }).map(([name, value]) => ({
    name,
    value,
  }));
  const manifest = {
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name: s.name,
    labels,
    ...(s.deps === undefined
      ? {}
      : {
          dependencies: s.deps.map((d) => ({
            imageName: d.imageName,
            ...(d.labels === undefined
              ? {}
              : { labels: Object.entries(d.labels).map(([name, value]) => ({ name, value })) }),
          })),
        }),
  };
  const entries = [{ header: { name: "hello.txt", type: "file" as const }, body: `hello from ${s.name}\n` }];
  if (s.payload !== undefined) {
    entries.push({
      header: { name: "payload.bin", type: "file" as const },
      body: randomBytes(s.payload).toString("latin1"),
    });
  }
  return buffer(writeAci(JSON.stringify(manifest), entries));
}

let n = 0;
interface Case {
  store: LocalStore;
  keystore: KeyStore;
  info: string[];
  warnings: string[];
  /** A path prefix unique to this case on the shared server. */
  base: string;
  opts(extra?: Partial<FetchAppcOptions>): FetchAppcOptions;
}

async function setup(trust: { uid?: string; prefix: string } | null): Promise<Case> {
  const dir = join(tmp, `case-${n++}`);
  const keystore = new KeyStore({ systemConfigDir: join(dir, "sys"), localConfigDir: join(dir, "local") });
  if (trust !== null) {
    const key = gnupg.exportKey(trust.uid ?? "appc@example.com");
    await keystore.addKey(key, trust.prefix === "" ? { root: true } : { prefix: trust.prefix });
  }
  const store = await LocalStore.open(join(dir, "store"));
  const c: Case = {
    store,
    keystore,
    info: [],
    warnings: [],
    base: `/c${n}`,
    opts: (extra = {}) => ({
      keystore,
      env: { NODE_EXTRA_CA_CERTS: server.caCert },
      discoveryPort: server.port,
      host,
      onInfo: (m) => c.info.push(m),
      onWarning: (m) => c.warnings.push(m),
      ...extra,
    }),
  };
  return c;
}

/** Serves `aci` at `<base>/<file>` and its signature beside it (unless `sig` is null). */
function publish(path: string, aci: Buffer, sig: Buffer | null, extra: { maxAge?: number } = {}): void {
  server.route(path, { body: aci, ...extra });
  if (sig !== null) server.route(`${path.slice(0, -4)}.aci.asc`, { body: sig });
}

function requestsFor(path: string) {
  return server.requests.filter((r) => r.path === path);
}

async function refusal(p: Promise<unknown>): Promise<RktError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RktError);
  return e as RktError;
}

async function expectNothingStored(c: Case): Promise<void> {
  expect(listImages(c.store)).toEqual([]);
  const report = await fsck(c.store);
  expect(report.problems).toEqual([]);
  expect(report.blobsChecked).toBe(0);
  expect(report.garbage).toEqual([]);
}

const sha512Id = (b: Buffer): string =>
  `sha512-${execFileSync("sha512sum", { input: b }).toString().slice(0, 64)}`;

describe("fetchAppcImage by URL", () => {
  it("downloads the signature first, verifies, stores, records ETag and max-age; an unchanged ETag downloads nothing", async () => {
    const c = await setup({ prefix: "example.com/hello" });
    const aci = await buildAci({ name: "example.com/hello" });
    const path = `${c.base}/hello.aci`;
    publish(path, aci, sign(aci));
    const url = `${server.origin}${path}`;
    const first = server.requests.length;
    const r = await fetchAppcImage(c.store, { url }, c.opts());
    expect(r).toMatchObject({ id: sha512Id(aci), name: "example.com/hello", source: "downloaded", url });
    expect(r.bytesDownloaded).toBe(aci.length);
    expect(server.requests.slice(first).map((q) => q.path)).toEqual([`${c.base}/hello.aci.asc`, path]);
    expect(c.info).toEqual(["signature verified:\n  Appc Signer <appc@example.com>"]);
    const remote = getRemote(c.store, url);
    expect(remote?.etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(remote?.maxAge).toBe(0);
    expect(remote?.imageId).toBe(r.id);
    expect(remote?.sigUrl).toBe(`${server.origin}${c.base}/hello.aci.asc`);
    await new Promise((resolve) => setTimeout(resolve, 5));

    const again = await fetchAppcImage(c.store, { url }, c.opts());
    expect(again).toMatchObject({ id: r.id, source: "unchanged", bytesDownloaded: 0 });
    const last = requestsFor(path).at(-1)!;
    expect(last.headers["if-none-match"]).toBe(remote?.etag);
    expect(last).toMatchObject({ status: 304, bytes: 0 });
    expect(getRemote(c.store, url)?.downloadTime).toBeGreaterThan(remote!.downloadTime);
    expect(listImages(c.store).map((i) => i.id)).toEqual([r.id]);
    expect((await fsck(c.store)).problems).toEqual([]);
    c.store.close();
  });

  it("a fresh max-age asks no server; --pull-policy=new|never use the store's remote", async () => {
    const c = await setup({ prefix: "example.com" });
    const aci = await buildAci({ name: "example.com/cached" });
    const path = `${c.base}/cached.aci`;
    publish(path, aci, sign(aci), { maxAge: 3600 });
    const url = `${server.origin}${path}`;
    const never = await refusal(fetchAppcImage(c.store, { url }, c.opts({ policy: "never" })));
    expect(never.code).toBe(ErrorCode.NotFound);
    expect(never.message).toBe(
      `unable to fetch image from URL "${url}": either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled`,
    );
    const r = await fetchAppcImage(c.store, { url }, c.opts());
    expect(getRemote(c.store, url)?.maxAge).toBe(3600);
    const before = server.requests.length;
    for (const policy of ["update", "new", "never"] as const) {
      const s = await fetchAppcImage(c.store, { url }, c.opts({ policy }));
      expect(s).toMatchObject({ id: r.id, source: "store" });
    }
    expect(server.requests.length).toBe(before);
    expect(c.info).toContain(`image for ${url} isn't expired, not fetching.`);
    c.store.close();
  });

  it("unsigned and wrongly signed ACIs are refused with rkt's messages; nothing is stored", async () => {
    const c = await setup({ prefix: "example.com/app" });
    const aci = await buildAci({ name: "example.com/app" });
    publish(`${c.base}/unsigned.aci`, aci, null);
    const unsigned = await refusal(
      fetchAppcImage(c.store, { url: `${server.origin}${c.base}/unsigned.aci` }, c.opts()),
    );
    expect(unsigned.message).toBe(
      `error downloading the signature file: ${server.origin}${c.base}/unsigned.aci.asc: bad HTTP status code: 404`,
    );
    expect(requestsFor(`${c.base}/unsigned.aci`)).toEqual([]);
    publish(`${c.base}/other.aci`, aci, sign(aci, "other@example.com"));
    const other = await refusal(
      fetchAppcImage(c.store, { url: `${server.origin}${c.base}/other.aci` }, c.opts()),
    );
    expect(other.code).toBe(ErrorCode.KeyUntrusted);
    expect(other.message).toBe(
      'image "example.com/app" verification failed: openpgp: signature made by unknown entity',
    );
    expect(c.info).toEqual([
      "If you expected the signing key to change, try running:",
      '    rkt trust --prefix "example.com/app"',
    ]);
    const tampered = Buffer.from(aci);
    publish(
      `${c.base}/tampered.aci`,
      await buildAci({ name: "example.com/app", payload: 10 }),
      sign(tampered),
    );
    const bad = await refusal(
      fetchAppcImage(c.store, { url: `${server.origin}${c.base}/tampered.aci` }, c.opts()),
    );
    expect(bad.code).toBe(ErrorCode.SignatureInvalid);
    expect(bad.message).toMatch(/^image "example.com\/app" verification failed: openpgp: invalid signature/);
    await expectNothingStored(c);
    c.store.close();
  });

  it("--insecure-options=image: no signature asked, a warning", async () => {
    const c = await setup(null);
    const aci = await buildAci({ name: "example.com/insecure" });
    publish(`${c.base}/i.aci`, aci, null);
    const r = await fetchAppcImage(
      c.store,
      { url: `${server.origin}${c.base}/i.aci` },
      c.opts({ keystore: null }),
    );
    expect(r.id).toBe(sha512Id(aci));
    expect(c.warnings).toEqual(["warning: image signature verification has been disabled"]);
    expect(requestsFor(`${c.base}/i.aci.asc`)).toEqual([]);
    c.store.close();
  });

  it("the 202 defer protocol: the ACI first, then the signature; a second 202 fails", async () => {
    const c = await setup({ prefix: "example.com" });
    const aci = await buildAci({ name: "example.com/deferred" });
    server.route(`${c.base}/d.aci`, { body: aci });
    server.route(`${c.base}/d.aci.asc`, { body: sign(aci), deferUntil: `${c.base}/d.aci` });
    const first = server.requests.length;
    const r = await fetchAppcImage(c.store, { url: `${server.origin}${c.base}/d.aci` }, c.opts());
    expect(r.id).toBe(sha512Id(aci));
    expect(c.warnings).toEqual(["server requested deferring the signature download"]);
    expect(server.requests.slice(first).map((q) => `${q.status} ${q.path}`)).toEqual([
      `202 ${c.base}/d.aci.asc`,
      `200 ${c.base}/d.aci`,
      `200 ${c.base}/d.aci.asc`,
    ]);

    const d = await setup({ prefix: "example.com" });
    server.route(`${d.base}/never.aci`, { body: aci });
    server.route(`${d.base}/never.aci.asc`, { body: sign(aci), deferUntil: "/nothing" });
    const e = await refusal(
      fetchAppcImage(d.store, { url: `${server.origin}${d.base}/never.aci` }, d.opts()),
    );
    expect(e.message).toBe("error downloading the signature file: server asked to defer the download again");
    await expectNothingStored(d);
    c.store.close();
    d.store.close();
  });

  it("an interrupted download resumes with Range and If-Range; only the rest is sent", async () => {
    const c = await setup({ prefix: "example.com" });
    const aci = await buildAci({ name: "example.com/big", payload: 4 << 20 });
    const path = `${c.base}/big.aci`;
    server.route(path, { body: aci, truncateOnce: 2 << 20 });
    server.route(`${c.base}/big.aci.asc`, { body: sign(aci) });
    const url = `${server.origin}${path}`;
    const e = await refusal(fetchAppcImage(c.store, { url }, c.opts()));
    expect(e.code).toBe(ErrorCode.Io);
    expect(listImages(c.store)).toEqual([]);
    const r = await fetchAppcImage(c.store, { url }, c.opts());
    expect(r.id).toBe(sha512Id(aci));
    const [cut, rest] = requestsFor(path);
    expect(cut).toMatchObject({ status: 200, bytes: 2 << 20 });
    const kept = Number(/^bytes=(\d+)-$/.exec(String(rest?.headers["range"]))?.[1]);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(2 << 20);
    expect(rest?.headers["if-range"]).toBe(getRemote(c.store, url)?.etag);
    expect(rest).toMatchObject({ status: 206, bytes: aci.length - kept });
    expect(r.bytesDownloaded).toBe(aci.length - kept);
    const report = await fsck(c.store);
    expect(report.problems).toEqual([]);
    expect(report.garbage).toEqual([]);
    c.store.close();
  });

  it("a server without ranges sends the whole ACI again after a cut; the result is still right", async () => {
    const c = await setup(null);
    const aci = await buildAci({ name: "example.com/norange", payload: 2 << 20 });
    const path = `${c.base}/norange.aci`;
    server.route(path, { body: aci, truncateOnce: 1 << 20, ranges: false });
    const url = `${server.origin}${path}`;
    await refusal(fetchAppcImage(c.store, { url }, c.opts({ keystore: null })));
    const r = await fetchAppcImage(c.store, { url }, c.opts({ keystore: null }));
    expect(r).toMatchObject({ id: sha512Id(aci), bytesDownloaded: aci.length });
    expect(requestsFor(path).map((q) => `${q.status} ${q.bytes}`)).toEqual([
      `200 ${1 << 20}`,
      `200 ${aci.length}`,
    ]);
    expect((await fsck(c.store)).garbage).toEqual([]);
    c.store.close();
  });

  it("a redirect from https to http is refused without --insecure-options=http", async () => {
    const c = await setup(null);
    const plain = await startAppcServer({ tls: false });
    try {
      const aci = await buildAci({ name: "example.com/downgrade" });
      plain.route("/d.aci", { body: aci });
      server.route(`${c.base}/d.aci`, { redirect: `${plain.origin}/d.aci` });
      const url = `${server.origin}${c.base}/d.aci`;
      const e = await refusal(fetchAppcImage(c.store, { url }, c.opts({ keystore: null })));
      expect(e.message).toBe(
        `${url}: redirected to ${plain.origin}/d.aci: plain http needs --insecure-options=http`,
      );
      expect(plain.requests).toEqual([]);
      const r = await fetchAppcImage(c.store, { url }, c.opts({ keystore: null, insecure: { http: true } }));
      expect(r.id).toBe(sha512Id(aci));
    } finally {
      await plain.close();
      c.store.close();
    }
  });

  it("render: the ACI is verified, stored and extracted while it downloads (a resumed download too)", async () => {
    const c = await setup({ prefix: "example.com" });
    const aci = await buildAci({ name: "example.com/rendered", payload: 4 << 20 });
    const path = `${c.base}/rendered.aci`;
    server.route(path, { body: aci, truncateOnce: 2 << 20 });
    server.route(`${c.base}/rendered.aci.asc`, { body: sign(aci) });
    const url = `${server.origin}${path}`;
    await refusal(fetchAppcImage(c.store, { url }, { ...c.opts(), render: true }));
    expect(listImages(c.store)).toEqual([]);
    const r = await fetchAppcImage(c.store, { url }, { ...c.opts(), render: true });
    expect(r.id).toBe(sha512Id(aci));
    const { getSnapshot, verifyStoredImage } = await import("@rkt/store");
    expect((await getSnapshot(c.store.paths.layers, r.id))?.info.hashFrom).toBe("stream");
    expect((await verifyStoredImage(c.store, r.id)).status).toBe("ok");
    expect((await fsck(c.store)).problems).toEqual([]);
  });

  it("a stalled download fails after the stall timeout and is resumed by the next run", async () => {
    const c = await setup(null);
    const aci = await buildAci({ name: "example.com/stalled", payload: 4 << 20 });
    const path = `${c.base}/stalled.aci`;
    // Writes go to the ingest in 1 MiB batches: a stall after 2.5 MiB leaves at least 1 MiB kept.
    server.route(path, { body: aci, stallOnce: 5 << 19 });
    const url = `${server.origin}${path}`;
    const e = await refusal(
      fetchAppcImage(c.store, { url }, c.opts({ keystore: null, stallTimeoutMs: 300 })),
    );
    expect(e.code).toBe(ErrorCode.Io);
    expect(e.message).toMatch(/stalled/);
    const r = await fetchAppcImage(c.store, { url }, c.opts({ keystore: null }));
    expect(r.id).toBe(sha512Id(aci));
    expect(requestsFor(path).map((q) => q.status)).toEqual([200, 206]);
    c.store.close();
  });

  it("TLS is verified: without the test CA the error names the way out; --insecure-options=tls accepts it", async () => {
    const c = await setup(null);
    const aci = await buildAci({ name: "example.com/tls" });
    publish(`${c.base}/tls.aci`, aci, null);
    const url = `${server.origin}${c.base}/tls.aci`;
    const o = c.opts({ keystore: null, env: {} });
    const e = await refusal(fetchAppcImage(c.store, { url }, o));
    expect(e.code).toBe(ErrorCode.Io);
    expect(e.message).toMatch(/insecure-options=tls/);
    expect(requestsFor(`${c.base}/tls.aci`)).toEqual([]);
    const r = await fetchAppcImage(c.store, { url }, { ...o, insecure: { tls: true } });
    expect(r.id).toBe(sha512Id(aci));
    c.store.close();
  });

  it("two fetches of one URL at once download it once: the second waits and gets a 304", async () => {
    const c = await setup({ prefix: "example.com" });
    const aci = await buildAci({ name: "example.com/concurrent", payload: 1 << 20 });
    const path = `${c.base}/concurrent.aci`;
    publish(path, aci, sign(aci));
    const url = `${server.origin}${path}`;
    const [a, b] = await Promise.all([
      fetchAppcImage(c.store, { url }, c.opts()),
      fetchAppcImage(c.store, { url }, c.opts()),
    ]);
    expect(a.id).toBe(sha512Id(aci));
    expect(b.id).toBe(a.id);
    expect([a.source, b.source].sort()).toEqual(["downloaded", "unchanged"]);
    expect(requestsFor(path).map((q) => q.status)).toEqual([200, 304]);
    expect((await fsck(c.store)).garbage).toEqual([]);
    c.store.close();
  });

  it("follows at most 10 redirects", async () => {
    const c = await setup(null);
    const aci = await buildAci({ name: "example.com/redirected" });
    server.route(`${c.base}/final.aci`, { body: aci });
    for (let i = 0; i < 11; i++) {
      server.route(`${c.base}/r${i}.aci`, {
        redirect: i === 10 ? `${c.base}/final.aci` : `${c.base}/r${i + 1}.aci`,
      });
    }
    const ok = await fetchAppcImage(
      c.store,
      { url: `${server.origin}${c.base}/r1.aci` },
      c.opts({ keystore: null }),
    );
    expect(ok.id).toBe(sha512Id(aci));
    const e = await refusal(
      fetchAppcImage(c.store, { url: `${server.origin}${c.base}/r0.aci` }, c.opts({ keystore: null })),
    );
    expect(e.message).toBe(`${server.origin}${c.base}/r0.aci: too many redirects`);
    c.store.close();
  });

  it("auth.d headers go only to their host, only over https", async () => {
    const c = await setup(null);
    const other = await startAppcServer({ pkiFrom: server });
    const plain = await startAppcServer({ tls: false });
    try {
      const cfg = join(tmp, `auth-${n}`);
      mkdirSync(join(cfg, "auth.d"), { recursive: true });
      const h = (s: AppcServer) => new URL(s.origin).host;
      writeFileSync(
        join(cfg, "auth.d", "test.json"),
        JSON.stringify({
          rktKind: "auth",
          rktVersion: "v1",
          domains: [h(server), h(plain)],
          type: "basic",
          credentials: { user: "bar", password: "baz" },
        }),
      );
      writeFileSync(join(cfg, "auth.d", "ignored.txt"), "not json");
      const auth = await readAppcAuth([cfg]);
      const basic = `Basic ${Buffer.from("bar:baz").toString("base64")}`;
      const aci = await buildAci({ name: "example.com/secret" });
      server.route(`${c.base}/secret.aci`, { body: aci, authorization: basic });
      const r = await fetchAppcImage(
        c.store,
        { url: `${server.origin}${c.base}/secret.aci` },
        c.opts({ keystore: null, auth }),
      );
      expect(r.id).toBe(sha512Id(aci));
      const denied = await refusal(
        fetchAppcImage(c.store, { url: `${server.origin}${c.base}/secret.aci` }, c.opts({ keystore: null })),
      );
      expect(denied.message).toBe(`${server.origin}${c.base}/secret.aci: bad HTTP status code: 401`);
      // oauth: a bearer token.
      const oauthDir = join(tmp, `oauth-${n}`);
      mkdirSync(join(oauthDir, "auth.d"), { recursive: true });
      writeFileSync(
        join(oauthDir, "auth.d", "o.json"),
        JSON.stringify({
          rktKind: "auth",
          rktVersion: "v1",
          domains: [h(server)],
          type: "oauth",
          credentials: { token: "sometoken" },
        }),
      );
      server.route(`${c.base}/token.aci`, { body: aci, authorization: "Bearer sometoken" });
      const t = await fetchAppcImage(
        c.store,
        { url: `${server.origin}${c.base}/token.aci` },
        c.opts({ keystore: null, auth: await readAppcAuth([cfg, oauthDir]) }),
      );
      expect(t.id).toBe(r.id);
      // A redirect to another host carries no credentials; neither does plain http to a configured host.
      other.route("/elsewhere.aci", { body: aci });
      server.route(`${c.base}/moved.aci`, { redirect: `${other.origin}/elsewhere.aci` });
      plain.route("/plain.aci", { body: aci });
      for (const url of [`${server.origin}${c.base}/moved.aci`, `${plain.origin}/plain.aci`]) {
        await fetchAppcImage(c.store, { url }, c.opts({ keystore: null, auth, policy: "update" }));
      }
      expect(requestsFor(`${c.base}/moved.aci`)[0]?.headers["authorization"]).toBe(basic);
      expect(other.requests.map((q) => q.headers["authorization"])).toEqual([undefined]);
      expect(plain.requests.map((q) => q.headers["authorization"])).toEqual([undefined]);
    } finally {
      await other.close();
      await plain.close();
      c.store.close();
    }
  });
});

describe("fetchAppcImage by name (discovery)", () => {
  it("discovers on a shorter prefix, expands {name} {version} {os} {arch} {ext}, checks labels", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const name = `127.0.0.1${c.base}/sub/app`;
    const aci = await buildAci({ name, labels: { version: "v1", ...host } });
    server.discovery(c.base, `127.0.0.1${c.base}`, [
      `${server.origin}/images/{name}-{version}-{os}-{arch}.{ext}`,
    ]);
    const path = `/images/${name}-v1-linux-amd64.aci`;
    publish(path, aci, sign(aci));
    const r = await fetchAppcImage(c.store, { app: `${name}:v1` }, c.opts());
    expect(r).toMatchObject({
      id: sha512Id(aci),
      name,
      source: "downloaded",
      url: `${server.origin}${path}`,
    });
    expect(
      server.requests
        .filter((q) => q.path.endsWith("?ac-discovery=1") && q.path.startsWith(c.base))
        .map((q) => `${q.status} ${q.path}`),
    ).toEqual([
      `404 ${c.base}/sub/app?ac-discovery=1`,
      `404 ${c.base}/sub?ac-discovery=1`,
      `200 ${c.base}?ac-discovery=1`,
    ]);
    // --pull-policy=new finds it by name and labels without asking anyone.
    const before = server.requests.length;
    expect(await fetchAppcImage(c.store, { app: `${name}:v1` }, c.opts({ policy: "new" }))).toMatchObject({
      id: r.id,
      source: "store",
    });
    expect(server.requests.length).toBe(before);
    const never = await refusal(fetchAppcImage(c.store, { app: `${name}:v2` }, c.opts({ policy: "never" })));
    expect(never.message).toBe(
      `unable to fetch image from image name "${name}:v2": either image was not found in the store or store was disabled and fetching from remote yielded nothing or it was disabled`,
    );
    c.store.close();
  });

  it("tries every endpoint in order: the second is used when the first 404s", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const name = `127.0.0.1${c.base}/app`;
    const aci = await buildAci({ name, labels: { version: "1.0", ...host } });
    server.discovery(`${c.base}/app`, name, [
      `${server.origin}/missing/{name}.{ext}`,
      `${server.origin}/mirror/{name}.{ext}`,
    ]);
    publish(`/mirror/${name}.aci`, aci, sign(aci));
    const r = await fetchAppcImage(c.store, { app: name }, c.opts());
    expect(r.url).toBe(`${server.origin}/mirror/${name}.aci`);
    expect(requestsFor(`/missing/${name}.aci.asc`).map((q) => q.status)).toEqual([404]);
    c.store.close();
  });

  it("discovery over plain http only with --insecure-options=http", async () => {
    const plain = await startAppcServer({ tls: false });
    const c = await setup(null);
    try {
      const name = "127.0.0.1/plain/app";
      const aci = await buildAci({ name, labels: { version: "1.0", ...host } });
      plain.discovery("/plain/app", name, [`${plain.origin}/{name}.{ext}`]);
      plain.route(`/${name}.aci`, { body: aci });
      const o = c.opts({ keystore: null, discoveryPort: plain.port });
      const e = await refusal(fetchAppcImage(c.store, { app: name }, o));
      expect(e.code).toBe(ErrorCode.NotFound);
      expect(e.message).toMatch(/^discovery failed for "127\.0\.0\.1\/plain\/app": https:\/\/127\.0\.0\.1:/);
      expect(plain.requests).toEqual([]);
      const r = await fetchAppcImage(c.store, { app: name }, { ...o, insecure: { http: true } });
      expect(r.id).toBe(sha512Id(aci));
    } finally {
      await plain.close();
      c.store.close();
    }
  });

  it("a manifest whose name or labels differ from the request is refused; nothing is stored", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const name = `127.0.0.1${c.base}/app`;
    server.discovery(`${c.base}/app`, name, [`${server.origin}${c.base}/{name}-{version}.{ext}`]);
    const v1 = await buildAci({ name, labels: { version: "1.2.0", ...host } });
    publish(`${c.base}/${name}-2.0.aci`, v1, sign(v1));
    const e = await refusal(fetchAppcImage(c.store, { app: `${name}:2.0` }, c.opts()));
    expect(e.code).toBe(ErrorCode.InvalidManifest);
    expect(e.message).toBe(
      'requested value for label "version": "2.0" differs from fetched aci label value: "1.2.0"',
    );
    const other = await buildAci({ name: "127.0.0.1/someone/else", labels: { version: "3.0", ...host } });
    publish(`${c.base}/${name}-3.0.aci`, other, sign(other));
    const f = await refusal(fetchAppcImage(c.store, { app: `${name}:3.0` }, c.opts()));
    expect(f.message).toBe(
      `error when reading the app name: "${name}" expected but "127.0.0.1/someone/else" found`,
    );
    publish(`${c.base}/${name}-1.2.0.aci`, v1, sign(v1));
    const g = await refusal(fetchAppcImage(c.store, { app: `${name}:1.2.0,flavor=x` }, c.opts()));
    expect(g.message).toBe('requested label "flavor" not provided by the image manifest');
    await expectNothingStored(c);
    c.store.close();
  });

  it("a name fetch signed by an untrusted key fails before the ACI is downloaded (rkt's checkIdentity)", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const name = `127.0.0.1${c.base}/app`;
    server.discovery(`${c.base}/app`, name, [`${server.origin}${c.base}/{name}.{ext}`]);
    const aci = await buildAci({ name, labels: { version: "1.0", ...host } });
    publish(`${c.base}/${name}.aci`, aci, sign(aci, "other@example.com"));
    const e = await refusal(fetchAppcImage(c.store, { app: name }, c.opts()));
    expect(e.code).toBe(ErrorCode.KeyUntrusted);
    expect(e.message).toBe(`image "${name}" verification failed: openpgp: signature made by unknown entity`);
    expect(c.info).toEqual([
      "If you expected the signing key to change, try running:",
      `    rkt trust --prefix "${name}"`,
    ]);
    expect(requestsFor(`${c.base}/${name}.aci`)).toEqual([]);
    await expectNothingStored(c);
    c.store.close();
  });

  it("one URL for every version: the stored 1.0 does not answer a request for 2.0, even on a 304", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const name = `127.0.0.1${c.base}/app`;
    server.discovery(`${c.base}/app`, name, [`${server.origin}${c.base}/{name}.{ext}`]);
    const v1 = await buildAci({ name, labels: { version: "1.0", ...host } });
    publish(`${c.base}/${name}.aci`, v1, sign(v1));
    const r = await fetchAppcImage(c.store, { app: `${name}:1.0` }, c.opts());
    const e = await refusal(fetchAppcImage(c.store, { app: `${name}:2.0` }, c.opts()));
    expect(e.message).toBe(
      'requested value for label "version": "2.0" differs from fetched aci label value: "1.0"',
    );
    expect(requestsFor(`${c.base}/${name}.aci`).map((q) => q.status)).toEqual([200, 304]);
    const n = await refusal(fetchAppcImage(c.store, { app: `${name}:2.0` }, c.opts({ policy: "new" })));
    expect(n.message).toBe(e.message);
    expect(listImages(c.store).map((i) => i.id)).toEqual([r.id]);
    c.store.close();
  });

  it("dependencies are fetched breadth-first, each once, through discovery", async () => {
    const c = await setup({ prefix: "127.0.0.1" });
    const p = `127.0.0.1${c.base}`;
    server.discovery(c.base, p, [`${server.origin}${c.base}/{name}.{ext}`]);
    const mk = async (x: string, deps: string[]) => {
      const aci = await buildAci({
        name: `${p}/${x}`,
        labels: { version: "1.0", ...host },
        deps: deps.map((d) => ({ imageName: `${p}/${d}`, labels: { version: "1.0" } })),
      });
      publish(`${c.base}/${p}/${x}.aci`, aci, sign(aci));
    };
    await mk("a", ["b", "c"]);
    await mk("b", ["d"]);
    await mk("c", ["d", "b"]);
    await mk("d", []);
    // Templates without {version}: every name maps to one URL.
    for (const x of ["a", "b", "c", "d"])
      server.discovery(`${c.base}/${x}`, p, [`${server.origin}${c.base}/{name}.{ext}`]);
    const r = await fetchAppcImage(c.store, { app: `${p}/a` }, c.opts());
    expect(r.dependencies.map((d) => d.name)).toEqual([`${p}/b`, `${p}/c`, `${p}/d`]);
    for (const x of ["a", "b", "c", "d"]) expect(requestsFor(`${c.base}/${p}/${x}.aci`)).toHaveLength(1);
    expect(listImages(c.store)).toHaveLength(4);
    // A dependency that cannot be fetched fails the fetch, naming it and its dependent.
    await mk("e", ["missing"]);
    const e = await refusal(fetchAppcImage(c.store, { app: `${p}/e` }, c.opts()));
    expect(e.message).toMatch(
      new RegExp(
        `^dependency ${p}/missing,version=1\\.0,os=linux,arch=amd64 of ${p}/e: error downloading the signature file: `,
      ),
    );
    c.store.close();
  });
});
