// HTTP_PROXY / HTTPS_PROXY / NO_PROXY against the real registry on loopback, through a forward
// proxy of the test's own that logs every tunnel and request: a TLS registry with Basic
// credentials through CONNECT (the realistic case), a plain-http one through absolute-URI
// requests, and NO_PROXY sending them direct.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type RegistryClientOptions } from "../src/registry/client.js";
import { staticCredentials } from "../src/registry/credentials.js";
import { startRegistry, type Registry } from "@rkt/testkit";
import { makeImage, type TestImage } from "./registry-harness.js";
import { pullAndCheck, pushImage, startProxy, type TestProxy } from "./net-helpers.js";

let tls: Registry;
let plain: Registry;
let proxy: TestProxy;
let certs: string;
const img: TestImage = makeImage({ os: "linux", architecture: "amd64" }, 200_000);

// The TLS registry is trusted through a certs.d root, so that the tunnel carries those settings too.
function tlsOptions(env: Record<string, string>): RegistryClientOptions {
  return {
    env,
    certsDirs: [certs],
    credentials: staticCredentials({
      [tls.host]: { username: tls.username ?? "", password: tls.password ?? "" },
    }),
    retry: { maxAttempts: 1 },
  };
}

function plainOptions(env: Record<string, string>): RegistryClientOptions {
  return { env, insecure: { http: true }, retry: { maxAttempts: 1 } };
}

const clients: RegistryClient[] = [];
function client(reg: Registry, o: RegistryClientOptions): RegistryClient {
  const c = new RegistryClient(reg.host, o);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [tls, plain, proxy] = await Promise.all([
    startRegistry({ mode: "basic", tls: true }),
    startRegistry({ mode: "plain" }),
    startProxy(),
  ]);
  certs = await mkdtemp(join(tmpdir(), "rkt-proxy-certs-"));
  await mkdir(join(certs, tls.host));
  await writeFile(join(certs, tls.host, "ca.crt"), tls.caPem ?? "");
  await pushImage(client(tls, tlsOptions({})), "proxy/img", "v1", img);
  await pushImage(client(plain, plainOptions({})), "proxy/img", "v1", img);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  proxy.log.length = 0;
  proxy.refuseConnect = undefined;
  proxy.requireAuth = undefined;
});
afterAll(async () => {
  await Promise.all([tls?.stop(), plain?.stop(), proxy?.close()]);
  if (certs !== undefined) await rm(certs, { recursive: true, force: true });
});

describe("registry traffic through HTTP(S)_PROXY", () => {
  it("HTTPS_PROXY: a TLS registry with credentials is pulled through a CONNECT tunnel", async () => {
    await pullAndCheck(client(tls, tlsOptions({ HTTPS_PROXY: proxy.url })), "proxy/img", "v1", img);
    // Pings, HEADs, manifests and blobs all go through it (node:http would have gone direct).
    expect(proxy.log.length).toBeGreaterThan(0);
    expect(new Set(proxy.log)).toEqual(new Set([`CONNECT ${tls.host}`]));
  });

  it("lowercase https_proxy wins over HTTPS_PROXY, as in curl and undici", async () => {
    const env = { https_proxy: proxy.url, HTTPS_PROXY: "http://127.0.0.1:9" };
    await pullAndCheck(client(tls, tlsOptions(env)), "proxy/img", "v1", img);
    expect(proxy.log).toContain(`CONNECT ${tls.host}`);
  });

  it("HTTP_PROXY: a plain-http registry is pulled with absolute-URI requests", async () => {
    await pullAndCheck(client(plain, plainOptions({ HTTP_PROXY: proxy.url })), "proxy/img", "v1", img);
    const gets = proxy.log.filter((l) => !l.startsWith("CONNECT "));
    expect(gets).toContain(`GET http://${plain.host}/v2/`);
    expect(gets).toContain(`HEAD http://${plain.host}/v2/proxy/img/manifests/v1`);
    expect(gets).toContain(`GET http://${plain.host}/v2/proxy/img/blobs/${img.layer.digest}`);
    // The https probe of an insecure-http registry goes to the same proxy (HTTP_PROXY serves
    // https too when HTTPS_PROXY is unset); it fails and the client falls back to http.
    for (const l of proxy.log)
      expect(l).toMatch(new RegExp(`^(CONNECT ${plain.host}|[A-Z]+ http://${plain.host}/)`));
  });

  it("NO_PROXY naming the host, or host:port, sends it direct", async () => {
    const proxies = { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url };
    for (const [reg, options] of [
      [tls, tlsOptions],
      [plain, plainOptions],
    ] as const) {
      for (const noProxy of ["127.0.0.1", reg.host, "example.com, 127.0.0.1", "*"]) {
        await pullAndCheck(client(reg, options({ ...proxies, NO_PROXY: noProxy })), "proxy/img", "v1", img);
      }
      await pullAndCheck(client(reg, options({ ...proxies, no_proxy: reg.host })), "proxy/img", "v1", img);
    }
    expect(proxy.log).toEqual([]);
  });

  it("NO_PROXY for another port of the host still proxies", async () => {
    const env = { HTTPS_PROXY: proxy.url, NO_PROXY: "127.0.0.1:1" };
    await pullAndCheck(client(tls, tlsOptions(env)), "proxy/img", "v1", img);
    expect(proxy.log).toContain(`CONNECT ${tls.host}`);
  });

  it("reads process.env when no env is given", async () => {
    const saved = { HTTPS_PROXY: process.env["HTTPS_PROXY"], https_proxy: process.env["https_proxy"] };
    process.env["HTTPS_PROXY"] = proxy.url;
    delete process.env["https_proxy"];
    try {
      const { env: _unused, ...o } = tlsOptions({});
      await pullAndCheck(client(tls, o), "proxy/img", "v1", img);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(proxy.log).toContain(`CONNECT ${tls.host}`);
  });

  it("a proxy refusing the tunnel fails with one clear line", async () => {
    proxy.refuseConnect = 403;
    const c = client(tls, tlsOptions({ HTTPS_PROXY: proxy.url }));
    await expect(c.ping()).rejects.toMatchObject({
      code: "RKT_REGISTRY",
      message: `ping ${tls.host}: the proxy answered HTTP 403 (check HTTP(S)_PROXY, the credentials in its URL, or NO_PROXY)`,
    });
  });

  it("proxy credentials in the URL are sent to the proxy (CONNECT and absolute-URI), else 407", async () => {
    proxy.requireAuth = `Basic ${Buffer.from("pu:p@ss").toString("base64")}`;
    const withAuth = proxy.url.replace("http://", "http://pu:p%40ss@");
    await pullAndCheck(client(tls, tlsOptions({ HTTPS_PROXY: withAuth })), "proxy/img", "v1", img);
    await pullAndCheck(client(plain, plainOptions({ HTTP_PROXY: withAuth })), "proxy/img", "v1", img);
    expect(proxy.log).toContain(`CONNECT ${tls.host}`);
    expect(proxy.log).toContain(`GET http://${plain.host}/v2/`);
    for (const c of [
      client(tls, tlsOptions({ HTTPS_PROXY: proxy.url })),
      client(plain, plainOptions({ HTTP_PROXY: proxy.url })),
    ]) {
      await expect(c.resolve("proxy/img", "v1")).rejects.toMatchObject({
        code: "RKT_REGISTRY",
        message: expect.stringContaining("the proxy answered HTTP 407 (check HTTP(S)_PROXY"),
      });
    }
  });

  it("a malformed proxy variable is refused before any request", async () => {
    await expect(
      client(tls, tlsOptions({ HTTPS_PROXY: "ftp://127.0.0.1:2121" })).ping(),
    ).rejects.toMatchObject({
      code: "RKT_INVALID_ARGUMENT",
      message: 'HTTPS_PROXY "ftp://127.0.0.1:2121/" is not an http, https or socks5 proxy URL',
    });
    expect(proxy.log).toEqual([]);
  });
});
