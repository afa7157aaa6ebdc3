// `rkt image sync` carrying simple-signing signatures (GnuPG key) between real registries: from
// a file lookaside to the destination's lookaside named in registries.d, from one registry's
// signatures extension to another's, and into a node's own lookaside for `rkt:` (where a later
// admission finds them after the source withdrew them). The extension is served by a small proxy
// in front of each real registry (the distribution registry does not implement it).
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  gnupgHome,
  pushLayout,
  startRegistry,
  writeOciLayout,
  type GnupgHome,
  type Registry,
} from "@rkt/testkit";
import { createSimpleSignature, formatRegistrySignature, parseRegistrySignatures } from "@rkt/trust";
import { runRkt, type RktRun } from "./helpers.js";

let tmp: string;
let gnupg: GnupgHome;
let origin: Registry;
let dest: Registry;
let digest: string;
let signature: Uint8Array;
const servers: Server[] = [];

/** A proxy in front of `upstream` that announces the signatures extension and keeps its PUTs. */
async function extensionProxy(
  upstream: Registry,
): Promise<{ host: string; sigs: Map<string, Uint8Array[]> }> {
  const sigs = new Map<string, Uint8Array[]>();
  const up = new URL(upstream.url);
  const server = createServer((req, res) => {
    const m = /^\/extensions\/v2\/(.+)\/signatures\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
    if (m !== null) {
      const key = `${m[1]}@${m[2]}`;
      if (req.method === "PUT") {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const added = parseRegistrySignatures(Buffer.concat(chunks), "PUT");
          sigs.set(key, [...(sigs.get(key) ?? []), ...added]);
          res.writeHead(201).end();
        });
        return;
      }
      const body = JSON.stringify({
        signatures: (sigs.get(key) ?? []).map(
          (s) => (JSON.parse(formatRegistrySignature(m[2]!, s)) as { signatures: unknown[] }).signatures[0],
        ),
      });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
      return;
    }
    const out = httpRequest(
      { host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        const headers = { ...r.headers };
        if (req.url === "/v2/") headers["x-registry-supports-signatures"] = "1";
        res.writeHead(r.statusCode ?? 502, headers);
        r.pipe(res);
      },
    );
    req.pipe(out);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  servers.push(server);
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, sigs };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-sync-sigs-"));
  gnupg = gnupgHome(join(tmp, "gnupg"));
  gnupg.generateKey("Alice Releaser <alice@example.com>");
  writeFileSync(join(tmp, "alice.pub"), gnupg.exportKey("alice@example.com"));
  [origin, dest] = await Promise.all([startRegistry({ mode: "plain" }), startRegistry({ mode: "plain" })]);
  const img = await writeOciLayout(
    join(tmp, "layout"),
    { layers: [[{ path: "app.txt", type: "file", content: "app\n" }]] },
    { ref: "x" },
  );
  await pushLayout(join(tmp, "layout"), "app:v1", origin);
  digest = img.descriptor.digest;
  signature = await createSimpleSignature({
    dockerReference: `${origin.host}/app:v1`,
    manifestDigest: digest,
    privateKeyArmored: gnupg.gpg(["--armor", "--export-secret-keys", "alice@example.com"]).toString(),
  });
}, 120_000);

afterAll(async () => {
  for (const s of servers) await new Promise((ok) => s.close(ok));
  await origin?.stop();
  await dest?.stop();
  gnupg?.close();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
// A node: --dir, --local-config (with registries.d/sync.yaml) and --system-config of its own.
function node(registriesD: string): { rkt: (args: string[]) => Promise<RktRun>; etc: string } {
  const d = join(tmp, `node-${n++}`);
  const etc = join(d, "etc");
  mkdirSync(join(etc, "registries.d"), { recursive: true });
  writeFileSync(join(etc, "registries.d", "sync.yaml"), registriesD);
  const globals = ["--dir", join(d, "data"), "--local-config", etc, "--system-config", join(d, "lib")];
  return {
    etc,
    rkt: (args) =>
      runRkt([...globals, "--insecure-options=http", ...args], { cwd: tmp, env: { HOME: join(d, "home") } }),
  };
}

interface Result {
  status: string;
  signatures?: number;
}
const results = (r: RktRun): Result[] => JSON.parse(r.stdout) as Result[];
const sigFile = (base: string, repo: string, i: number) =>
  join(base, repo + `@sha256=${digest.slice(7)}`, `signature-${i}`);

function signedPolicy(etc: string, scope: string, signedIdentity?: Record<string, string>): void {
  const req = [
    {
      type: "signedBy",
      keyType: "GPGKeys",
      keyPath: join(tmp, "alice.pub"),
      ...(signedIdentity === undefined ? {} : { signedIdentity }),
    },
  ];
  writeFileSync(
    join(etc, "policy.json"),
    JSON.stringify({ default: [{ type: "reject" }], transports: { docker: { [scope]: req } } }),
  );
}

describe("rkt image sync carries signatures", () => {
  it("from the source's lookaside to the destination's (registries.d); once", async () => {
    const src = join(tmp, "la-src");
    const dst = join(tmp, "la-dst");
    mkdirSync(join(src, `app@sha256=${digest.slice(7)}`), { recursive: true });
    writeFileSync(sigFile(src, "app", 1), signature);
    const { rkt, etc } = node(
      [
        `docker:`,
        `  ${origin.host}:`,
        `    lookaside: file://${src}`,
        `  ${dest.host}:`,
        `    lookaside: file://${dst}`,
      ].join("\n"),
    );
    const sync = ["image", "sync", "--format=json", "--src-tls-verify=false", "--dest-tls-verify=false"];
    const args = [...sync, "--src", `docker://${origin.host}/app:v1`, `docker://${dest.host}/mirror`];
    const first = await rkt(args);
    expect(first.code, first.stderr).toBe(0);
    expect(results(first)).toMatchObject([{ status: "copied", signatures: 1 }]);
    expect(Buffer.compare(readFileSync(sigFile(dst, "mirror/app", 1)), signature)).toBe(0);
    const again = await rkt(args);
    expect(results(again)).toMatchObject([{ status: "unchanged", signatures: 0 }]);
    expect(readdirSync(join(dst, "mirror", `app@sha256=${digest.slice(7)}`))).toEqual(["signature-1"]);
    // A pull of the mirror admitted by a policy that wants Alice's signature finds it there.
    signedPolicy(etc, `${dest.host}/mirror`, {
      type: "remapIdentity",
      prefix: `${dest.host}/mirror`,
      signedPrefix: origin.host,
    });
    const f = await rkt(["fetch", `docker://${dest.host}/mirror/app:v1`]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toContain(`image: signature verified: ${origin.host}/app:v1@${digest}`);
  });

  it("from one registry's signatures extension to another's; a destination configured for neither gets none", async () => {
    const from = await extensionProxy(origin);
    from.sigs.set(`app@${digest}`, [signature]);
    const to = await extensionProxy(dest);
    const { rkt } = node("docker: {}\n");
    const args = (d: string) => [
      "image",
      "sync",
      "--format=json",
      "--src",
      `docker://${from.host}/app:v1`,
      d,
    ];
    const first = await rkt(args(`docker://${to.host}/ext`));
    expect(first.code, first.stderr).toBe(0);
    expect(results(first)).toMatchObject([{ status: "copied", signatures: 1 }]);
    expect(to.sigs.get(`ext/app@${digest}`)?.map((s) => Buffer.compare(s, signature))).toEqual([0]);
    expect(results(await rkt(args(`docker://${to.host}/ext`)))).toMatchObject([{ signatures: 0 }]);
    expect(to.sigs.get(`ext/app@${digest}`)).toHaveLength(1);
    // The plain registry: no extension, no registries.d entry.
    const plain = await rkt(args(`docker://${dest.host}/plain`));
    expect(results(plain)).toMatchObject([{ status: "copied", signatures: 0 }]);
  });

  it("into a node's own lookaside for rkt:, where a later admission finds them once the source withdrew them", async () => {
    const from = await extensionProxy(origin);
    // Signed for the name this node pulls it by.
    const own = await createSimpleSignature({
      dockerReference: `${from.host}/app:v1`,
      manifestDigest: digest,
      privateKeyArmored: gnupg.gpg(["--armor", "--export-secret-keys", "alice@example.com"]).toString(),
    });
    from.sigs.set(`app@${digest}`, [own]);
    const la = join(tmp, "la-node");
    const { rkt, etc } = node([`default-docker:`, `  lookaside: file://${la}`].join("\n"));
    signedPolicy(etc, from.host);
    const r = await rkt(["image", "sync", "--format=json", "--src", `docker://${from.host}/app:v1`, "rkt:"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(results(r)).toMatchObject([{ status: "copied", signatures: 1 }]);
    expect(Buffer.compare(readFileSync(sigFile(la, "app", 1)), own)).toBe(0);
    from.sigs.clear();
    const again = await rkt(["fetch", "--pull-policy=update", `docker://${from.host}/app:v1`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("image: signature verified:");
    // Without the node's copy the same admission refuses it.
    rmSync(la, { recursive: true });
    const refused = await rkt(["fetch", "--pull-policy=update", `docker://${from.host}/app:v1`]);
    expect(refused.code).toBe(254);
    expect(refused.stderr).toContain("A signature was required, but no signature exists");
  });
});
