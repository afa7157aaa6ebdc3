// pullImage with a policy.json verifier against the real docker-registry: signatures from an
// https lookaside (the testkit HTTPS server on loopback, trusted through its test CA), from the
// registry signatures extension (which the distribution registry lacks, so a small proxy in
// front of it adds the extension), and for images reached through an index.
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isRktError, parseDockerReference } from "@rkt/oci";
import { LocalStore, listImages } from "@rkt/store";
import {
  createSimpleSignature,
  formatRegistrySignature,
  lookasideSignatureUrl,
  parsePolicyOrThrow,
  type Policy,
} from "@rkt/trust";
import {
  pushLayout,
  randomLayer,
  startAppcServer,
  useRegistry,
  writeOciLayout,
  writeOciLayoutIndex,
  type AppcServer,
  type BuiltImage,
  type BuiltIndex,
} from "@rkt/testkit";
import { policyVerifier, type PolicyVerifierOptions } from "../src/docker-policy.js";
import { pullImage } from "../src/pull.js";
import { parseRegistriesConf } from "../src/registries-conf.js";

const reg = useRegistry({ mode: "plain" });
const mirror = useRegistry({ mode: "plain" });
let tmp: string;
let key: { priv: string; pub: string };
let app: BuiltImage;
let impostor: BuiltImage;
let multi: BuiltIndex;
let https: AppcServer;
let caPem: string;
let proxy: Server;
let proxyHost: string;
// Signatures the proxy serves through the extension, by manifest digest.
const extension = new Map<string, Uint8Array[]>();

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-docker-policy-"));
  const k = await openpgp.generateKey({
    type: "ecc",
    curve: "curve25519Legacy",
    userIDs: [{ name: "Policy Test", email: "policy@example.com" }],
    format: "armored",
  });
  key = { priv: k.privateKey, pub: k.publicKey };
  app = await writeOciLayout(join(tmp, "app"), { layers: [randomLayer(50_000, { seed: "policy-app" })] });
  await pushLayout(join(tmp, "app"), "sig/app:v1", reg());
  multi = await writeOciLayoutIndex(join(tmp, "multi"), [
    { layers: [randomLayer(20_000, { seed: "amd64" })], architecture: "amd64" },
    { layers: [randomLayer(20_000, { seed: "arm64" })], architecture: "arm64" },
  ]);
  await pushLayout(join(tmp, "multi"), "sig/multi:v1", reg());
  // The mirror serves an impostor under the same name.
  impostor = await writeOciLayout(join(tmp, "impostor"), {
    layers: [randomLayer(30_000, { seed: "impostor" })],
  });
  await pushLayout(join(tmp, "impostor"), "sig/app:v1", mirror());
  https = await startAppcServer();
  caPem = await readFile(https.caCert!, "utf8");
  // The extension in front of the real registry: `/v2/` announces it, its path answers from
  // `extension`, everything else is relayed.
  const upstream = new URL(reg().url);
  proxy = createServer((req, res) => {
    const m = /^\/extensions\/v2\/(.+)\/signatures\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
    if (m !== null) {
      const sigs = extension.get(m[2]!) ?? [];
      const body = JSON.stringify({
        signatures: sigs.map(
          (s) => (JSON.parse(formatRegistrySignature(m[2]!, s)) as { signatures: unknown[] }).signatures[0],
        ),
      });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
      return;
    }
    const out = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (up) => {
        const headers = { ...up.headers };
        if (req.url === "/v2/") headers["x-registry-supports-signatures"] = "1";
        res.writeHead(up.statusCode ?? 502, headers);
        up.pipe(res);
      },
    );
    req.pipe(out);
  });
  await new Promise<void>((ok) => proxy.listen(0, "127.0.0.1", ok));
  proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await https?.close();
  await new Promise((ok) => proxy?.close(ok));
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
const roots = new Map<LocalStore, string>();
async function newStore(): Promise<LocalStore> {
  const root = join(tmp, `store-${n++}`);
  const s = await LocalStore.open(root);
  roots.set(s, root);
  return s;
}

function signedByUs(scope: string): Policy {
  return parsePolicyOrThrow(
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          [scope]: [
            { type: "signedBy", keyType: "GPGKeys", keyData: Buffer.from(key.pub).toString("base64") },
          ],
        },
      },
    }),
    "policy.json",
  );
}

const sign = (dockerReference: string, manifestDigest: string): Promise<Uint8Array> =>
  createSimpleSignature({ dockerReference, manifestDigest, privateKeyArmored: key.priv });

async function pullWith(
  store: LocalStore,
  ref: string,
  o: Omit<PolicyVerifierOptions, "policySource">,
  arch?: string,
) {
  const info: string[] = [];
  const r = await pullImage(store, parseDockerReference(ref), {
    insecure: { http: true },
    platform: arch === undefined ? undefined : { os: "linux", architecture: arch },
    verify: policyVerifier({ policySource: "policy.json", onInfo: (l) => info.push(l), ...o }),
  });
  return { r, info };
}

async function expectNothingStored(store: LocalStore): Promise<void> {
  expect(listImages(store)).toEqual([]);
  const blobs = await readdir(join(roots.get(store)!, "cas", "blobs", "sha256")).catch(() => []);
  expect(blobs).toEqual([]);
}

describe("pullImage with a policy verifier", () => {
  it("reads signatures from an https lookaside (signature-1, -2, … until a 404)", async () => {
    const ref = `${reg().host}/sig/app:v1`;
    const base = `${https.origin}/sigs`;
    const registriesD = { docker: { [`${reg().host}/sig`]: { lookaside: base } } };
    const at = (i: number): string =>
      new URL(lookasideSignatureUrl(base, "sig/app", app.descriptor.digest, i)).pathname;
    // A signature for another tag first: the second one is accepted.
    https.route(at(1), { body: await sign(`${reg().host}/sig/app:v0`, app.descriptor.digest) });
    https.route(at(2), { body: await sign(ref, app.descriptor.digest) });
    const store = await newStore();
    try {
      const { r, info } = await pullWith(store, ref, {
        policy: signedByUs(reg().host),
        registriesD,
        http: { caPem },
      });
      expect(r.id).toBe(app.descriptor.digest);
      expect(info).toEqual([
        expect.stringMatching(new RegExp(`^signature verified: ${ref}@${app.descriptor.digest} by key `)),
      ]);
      expect(https.requests.map((q) => `${q.path} ${q.status}`)).toEqual([
        `${at(1)} 200`,
        `${at(2)} 200`,
        `${at(3)} 404`,
      ]);
    } finally {
      store.close();
    }
    // Without the CA the lookaside is unreachable: refused, nothing stored.
    const bare = await newStore();
    try {
      const e = await pullWith(bare, ref, { policy: signedByUs(reg().host), registriesD }).catch(
        (x: unknown) => x,
      );
      expect(isRktError(e)).toBe(true);
      expect((e as Error).message).toContain(`${https.origin}/sigs/sig/app@sha256=`);
      await expectNothingStored(bare);
    } finally {
      bare.close();
    }
  });

  it("reads signatures from the registry signatures extension", async () => {
    const ref = `${proxyHost}/sig/app:v1`;
    const store = await newStore();
    try {
      const refused = await pullWith(store, ref, { policy: signedByUs(proxyHost) }).catch((x: unknown) => x);
      expect(isRktError(refused, ErrorCode.SignatureInvalid)).toBe(true);
      expect((refused as Error).message).toBe(
        `docker://${ref}: rejected by policy.json: A signature was required, but no signature exists`,
      );
      await expectNothingStored(store);
      extension.set(app.descriptor.digest, [await sign(ref, app.descriptor.digest)]);
      const { r, info } = await pullWith(store, ref, { policy: signedByUs(proxyHost) });
      expect(r.id).toBe(app.descriptor.digest);
      expect(info).toHaveLength(1);
    } finally {
      extension.clear();
      store.close();
    }
  });

  it("accepts a signature over the index or over the chosen platform manifest, nothing else", async () => {
    const ref = `${reg().host}/sig/multi:v1`;
    const arm = multi.images[1]!.descriptor.digest;
    const amd = multi.images[0]!.descriptor.digest;
    const dir = join(tmp, "lookaside-multi");
    const base = `file://${dir}`;
    const { writeLookasideSignature } = await import("@rkt/trust");
    const o = { policy: signedByUs(reg().host), registriesD: { docker: {} }, defaultLookaside: base };
    // Signed for the amd64 manifest only: arm64 is refused, amd64 admitted.
    await writeLookasideSignature(base, "sig/multi", amd, await sign(ref, amd));
    const s1 = await newStore();
    try {
      await expect(pullWith(s1, ref, o, "arm64")).rejects.toThrow(
        /A signature was required, but no signature exists/,
      );
      await expectNothingStored(s1);
      expect((await pullWith(s1, ref, o, "amd64")).r.id).toBe(amd);
    } finally {
      s1.close();
    }
    // Signed for the index (as skopeo signs a multi-arch copy): every platform is admitted.
    await writeLookasideSignature(
      base,
      "sig/multi",
      multi.descriptor.digest,
      await sign(ref, multi.descriptor.digest),
    );
    const s2 = await newStore();
    try {
      expect((await pullWith(s2, ref, o, "arm64")).r.id).toBe(arm);
    } finally {
      s2.close();
    }
  });

  it("a mirror serving an image the policy refuses hands over to the origin; none of its blobs is stored", async () => {
    const ref = `${reg().host}/sig/app:v1`;
    const dir = join(tmp, "lookaside-mirror");
    const base = `file://${dir}`;
    const { writeLookasideSignature } = await import("@rkt/trust");
    await writeLookasideSignature(
      base,
      "sig/app",
      app.descriptor.digest,
      await sign(ref, app.descriptor.digest),
    );
    const registriesConf = await parseRegistriesConf(
      `[[registry]]\nprefix = "${reg().host}/sig"\ninsecure = true\n[[registry.mirror]]\nlocation = "${mirror().host}/sig"\ninsecure = true\n`,
      "registries.conf",
    );
    const store = await newStore();
    try {
      const failed: string[] = [];
      const r = await pullImage(store, parseDockerReference(ref), {
        registriesConf,
        onSourceFailed: (src, e) => failed.push(`${src.registry} ${e.code}`),
        verify: policyVerifier({
          policy: signedByUs(reg().host),
          policySource: "policy.json",
          defaultLookaside: base,
        }),
      });
      expect(failed).toEqual([`${mirror().host} RKT_SIGNATURE_INVALID`]);
      expect(r.id).toBe(app.descriptor.digest);
      const blobs = await readdir(join(roots.get(store)!, "cas", "blobs", "sha256"));
      for (const l of impostor.layers) expect(blobs).not.toContain(l.digest.slice("sha256:".length));
      expect(blobs).not.toContain(impostor.descriptor.digest.slice("sha256:".length));
    } finally {
      store.close();
    }
  });
});
