// `serveStore`: a store filled from a real docker-registry, served read-only; skopeo reads it over
// HTTP and HTTPS, fetchImage pulls through a registries.conf mirror entry naming it while the
// origin is stopped, and raw requests probe the API's edges (Range, HEAD, tags, errors,
// traversal, writes).
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest, type Digest } from "@rkt/oci";
import { LocalStore, imageContent, readBlobLimited } from "@rkt/store";
import { pushLayout, randomLayer, startRegistry, writeOciLayout, type Registry } from "@rkt/testkit";
import { fetchImage, serveStore, type StoreServer } from "../src/index.js";

// skopeo must not block the event loop: the server answering it lives in this process.
const exec = promisify(execFile);

let tmp: string;
let origin: Registry;
let store: LocalStore;
let server: StoreServer;
let hello: Digest;
let other: Digest;
let helloLayer: Digest;
let otherLayer: Digest;

const quiet = {
  env: {},
  insecure: { http: true, image: true },
  configDirs: { system: "/nonexistent", local: "/nonexistent" },
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-serve-"));
  origin = await startRegistry({ mode: "plain" });
  await writeOciLayout(join(tmp, "hello"), { layers: [randomLayer(300_000, { seed: "serve-hello" })] });
  await writeOciLayout(join(tmp, "hello2"), { layers: [randomLayer(30_000, { seed: "serve-hello2" })] });
  await writeOciLayout(join(tmp, "other"), { layers: [randomLayer(20_000, { seed: "serve-other" })] });
  await pushLayout(join(tmp, "hello"), "app/hello:stable", origin);
  await pushLayout(join(tmp, "hello"), "app/hello:v1", origin);
  await pushLayout(join(tmp, "hello2"), "app/hello:v2", origin);
  await pushLayout(join(tmp, "other"), "app/other:v1", origin);
  store = await LocalStore.open(join(tmp, "store"));
  // `stable` then `v1` name one image: the store records it under its last tag.
  await fetchImage(store, `docker://${origin.host}/app/hello:stable`, quiet);
  hello = parseDigest((await fetchImage(store, `docker://${origin.host}/app/hello:v1`, quiet)).id);
  await fetchImage(store, `docker://${origin.host}/app/hello:v2`, quiet);
  other = parseDigest((await fetchImage(store, `docker://${origin.host}/app/other:v1`, quiet)).id);
  helloLayer = imageContent(store, hello).digests[2]!;
  otherLayer = imageContent(store, other).digests[2]!;
  server = await serveStore(store, { listen: "127.0.0.1:0" });
}, 120_000);

afterAll(async () => {
  await server?.close();
  store?.close();
  await origin?.stop();
  await rm(tmp, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

// node:http sends the path exactly as given (fetch() would normalise `..` away).
function raw(method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const [host, port] = server.address.split(":");
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function errorCode(r: Reply): string | undefined {
  return (JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]?.code;
}

describe("serveStore", () => {
  it("answers /v2/ and manifests by tag (short and full name) and digest, with the stored bytes", async () => {
    const base = await raw("GET", "/v2/");
    expect(base.status).toBe(200);
    expect(base.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    expect(JSON.parse(base.body.toString())).toEqual({});
    const stored = Buffer.from(await readBlobLimited(store, hello, 1 << 20));
    for (const path of [
      "/v2/app/hello/manifests/v1",
      `/v2/${origin.host}/app/hello/manifests/v1`,
      `/v2/app/hello/manifests/${hello}`,
    ]) {
      const r = await raw("GET", path);
      expect(r.status, path).toBe(200);
      expect(r.body.equals(stored)).toBe(true);
      expect(r.headers["docker-content-digest"]).toBe(hello);
      expect(r.headers["content-type"]).toBe("application/vnd.oci.image.manifest.v1+json");
      const h = await raw("HEAD", path);
      expect(h.status).toBe(200);
      expect(h.body.length).toBe(0);
      expect(h.headers["content-length"]).toBe(String(stored.length));
      expect(h.headers["docker-content-digest"]).toBe(hello);
    }
  });

  it("streams blobs whole and by Range (206 slices, 416), HEAD with Accept-Ranges", async () => {
    const blob = Buffer.from(await readFile(store.blobFile(helloLayer)));
    const full = await raw("GET", `/v2/app/hello/blobs/${helloLayer}`);
    expect(full.status).toBe(200);
    expect(`sha256:${createHash("sha256").update(full.body).digest("hex")}`).toBe(helloLayer);
    const head = await raw("HEAD", `/v2/app/hello/blobs/${helloLayer}`);
    expect(head).toMatchObject({ status: 200, body: Buffer.alloc(0) });
    expect(head.headers["accept-ranges"]).toBe("bytes");
    expect(head.headers["content-length"]).toBe(String(blob.length));
    const cases: [string, number, number][] = [
      ["bytes=1000-1999", 1000, 1999],
      ["bytes=250000-", 250000, blob.length - 1],
      ["bytes=-500", blob.length - 500, blob.length - 1],
      [`bytes=10-${blob.length * 10}`, 10, blob.length - 1],
    ];
    for (const [range, a, b] of cases) {
      const r = await raw("GET", `/v2/app/hello/blobs/${helloLayer}`, { Range: range });
      expect(r.status, range).toBe(206);
      expect(r.headers["content-range"]).toBe(`bytes ${a}-${b}/${blob.length}`);
      expect(r.body.equals(blob.subarray(a, b + 1)), range).toBe(true);
    }
    for (const range of [`bytes=${blob.length}-`, "bytes=500-0", `bytes=${"9".repeat(4000)}-`]) {
      const r = await raw("GET", `/v2/app/hello/blobs/${helloLayer}`, { Range: range });
      expect(r.status).toBe(416);
      expect(r.headers["content-range"]).toBe(`bytes */${blob.length}`);
    }
    // Multi-range is answered with the whole blob (documented).
    const multi = await raw("GET", `/v2/app/hello/blobs/${helloLayer}`, { Range: "bytes=0-1,5-6" });
    expect(multi.status).toBe(200);
    expect(multi.body.length).toBe(blob.length);
  });

  it("lists tags with n/last pagination, and the catalog", async () => {
    const all = await raw("GET", "/v2/app/hello/tags/list");
    // Every ref is listed, a second tag of one image (stable) included.
    expect(JSON.parse(all.body.toString())).toEqual({ name: "app/hello", tags: ["stable", "v1", "v2"] });
    const first = await raw("GET", "/v2/app/hello/tags/list?n=1");
    expect(JSON.parse(first.body.toString())).toMatchObject({ tags: ["stable"] });
    expect(first.headers["link"]).toBe('</v2/app/hello/tags/list?n=1&last=stable>; rel="next"');
    const second = await raw("GET", "/v2/app/hello/tags/list?n=2&last=stable");
    expect(JSON.parse(second.body.toString())).toMatchObject({ tags: ["v1", "v2"] });
    expect(second.headers["link"]).toBeUndefined();
    expect((await raw("HEAD", "/v2/app/hello/manifests/stable")).headers["docker-content-digest"]).toBe(
      hello,
    );
    const cat = await raw("GET", "/v2/_catalog");
    expect(JSON.parse(cat.body.toString())).toEqual({ repositories: ["app/hello", "app/other"] });
  });

  it("404s in the registry's format: unknown name, tag, digest, and another repository's blob", async () => {
    const cases: [string, string][] = [
      ["/v2/nothere/manifests/v1", "NAME_UNKNOWN"],
      ["/v2/nothere/tags/list", "NAME_UNKNOWN"],
      ["/v2/app/hello/manifests/v9", "MANIFEST_UNKNOWN"],
      [`/v2/app/hello/manifests/${other}`, "MANIFEST_UNKNOWN"],
      [`/v2/app/hello/manifests/${helloLayer}`, "MANIFEST_UNKNOWN"],
      [`/v2/app/hello/blobs/sha256:${"0".repeat(64)}`, "BLOB_UNKNOWN"],
      [`/v2/app/hello/blobs/${otherLayer}`, "BLOB_UNKNOWN"],
      [`/v2/app/other/blobs/${helloLayer}`, "BLOB_UNKNOWN"],
    ];
    for (const [path, code] of cases) {
      const r = await raw("GET", path);
      expect(r.status, path).toBe(404);
      expect(r.headers["content-type"]).toMatch(/^application\/json/);
      expect(errorCode(r), path).toBe(code);
    }
    // The blob itself is there: under its own repository it is served.
    expect((await raw("HEAD", `/v2/app/other/blobs/${otherLayer}`)).status).toBe(200);
  });

  it("refuses traversal attempts with 4xx and every write method with 405 UNSUPPORTED", async () => {
    for (const path of [
      "/v2/../../etc/passwd",
      "/v2/app/hello/../other/blobs/" + otherLayer,
      "/v2/%2e%2e/%2e%2e/etc/manifests/v1",
      "/v2/app/hello/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd",
      `/v2/app/hello/blobs/sha256:${"A".repeat(64)}`,
      "/v2/app/hello/blobs/..",
      "/../../etc/passwd",
    ]) {
      const r = await raw("GET", path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      expect(r.body.toString()).not.toContain("root:");
    }
    for (const method of ["PUT", "POST", "DELETE", "PATCH"]) {
      const r = await raw(
        method,
        method === "POST" ? "/v2/app/hello/blobs/uploads/" : "/v2/app/hello/manifests/v1",
      );
      expect(r.status, method).toBe(405);
      expect(errorCode(r)).toBe("UNSUPPORTED");
    }
    expect((await raw("GET", "/v2/app/hello/manifests/v1")).status).toBe(200);
  });

  it("serves skopeo: inspect --raw and copy give the stored digests", async () => {
    const stored = Buffer.from(await readBlobLimited(store, hello, 1 << 20));
    const { stdout } = await exec(
      "skopeo",
      ["inspect", "--raw", "--tls-verify=false", `docker://${server.address}/app/hello:v1`],
      { encoding: "buffer" },
    );
    expect(Buffer.from(stdout).equals(stored)).toBe(true);
    const out = join(tmp, "skopeo-copy");
    await exec("skopeo", [
      "copy",
      "--quiet",
      "--preserve-digests",
      "--src-tls-verify=false",
      `docker://${server.address}/app/hello:v1`,
      `oci:${out}:v1`,
    ]);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests[0]?.digest).toBe(hello);
  });

  it("is a registries.conf mirror: fetchImage pulls through it with the origin stopped", async () => {
    const conf = join(tmp, "registries.conf");
    await writeFile(
      conf,
      `[[registry]]\nprefix = "${origin.host}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${server.address}"\ninsecure = true\n`,
    );
    await origin.stop();
    const neighbour = await LocalStore.open(join(tmp, "neighbour"));
    try {
      const failed: string[] = [];
      const r = await fetchImage(neighbour, `docker://${origin.host}/app/hello:v1`, {
        ...quiet,
        env: { CONTAINERS_REGISTRIES_CONF: conf },
        onSourceFailed: (s, e) => failed.push(`${s.registry}: ${e.message}`),
      });
      expect(failed).toEqual([]);
      expect(r).toMatchObject({ id: hello, name: `${origin.host}/app/hello` });
      expect(imageContent(neighbour, hello).digests).toEqual(imageContent(store, hello).digests);
    } finally {
      neighbour.close();
    }
  });

  it("serves HTTPS with --tls-cert/--tls-key: skopeo with the certificate as CA", async () => {
    const pki = join(tmp, "pki");
    await exec("mkdir", ["-p", pki]);
    await exec("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(tmp, "server.key"),
      "-out",
      join(pki, "ca.crt"),
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    const tls = await serveStore(store, {
      listen: "127.0.0.1:0",
      tls: { cert: await readFile(join(pki, "ca.crt")), key: await readFile(join(tmp, "server.key")) },
    });
    try {
      expect(tls.url.startsWith("https://")).toBe(true);
      const { stdout } = await exec("skopeo", [
        "inspect",
        "--raw",
        `--cert-dir=${pki}`,
        `docker://${tls.address}/app/hello:v1`,
      ]);
      expect(JSON.parse(stdout)).toMatchObject({ schemaVersion: 2 });
    } finally {
      await tls.close();
    }
  });
});
