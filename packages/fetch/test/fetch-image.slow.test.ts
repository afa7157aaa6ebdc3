// The library front door: fetchImage does what `rkt fetch` does, for a Node caller with no CLI:
// a real registry pull admitted by a policy.json, local layouts and archives under the policy's
// transports, and the refusals with their codes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@rkt/oci";
import { getImage, listImages } from "@rkt/store";
import { pushLayout, startRegistry, writeDockerArchive, writeOciLayout, type Registry } from "@rkt/testkit";
import { fetchImage, verificationDisabledWarning, type FetchProgress } from "../src/index.js";
import { withStoreIn } from "./store-helpers.js";

let tmp: string;
let reg: Registry;
let layoutDigest: string;
const accept = () => ({ default: [{ type: "insecureAcceptAnything" }] });

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-fetch-image-"));
  reg = await startRegistry({ mode: "plain" });
  const built = await writeOciLayout(
    join(tmp, "layout"),
    {
      layers: [[{ path: "hello.txt", type: "file", content: "hello\n" }]],
    },
    { ref: "v1" },
  );
  layoutDigest = built.descriptor.digest;
  await pushLayout(join(tmp, "layout"), "app:v1", reg);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function policy(name: string, doc: unknown): string {
  const p = join(tmp, name);
  writeFileSync(p, JSON.stringify(doc));
  return p;
}

describe("fetchImage", () => {
  it("pulls docker:// under a policy.json with progress, and a second new-policy fetch asks nothing", async () => {
    const own = await startRegistry({ mode: "plain" });
    await pushLayout(join(tmp, "layout"), "app:v1", own);
    await withStoreIn(tmp, async (s) => {
      const events: FetchProgress[] = [];
      const o = {
        configDirs: { system: join(tmp, "none"), local: join(tmp, "none") },
        env: {},
        insecure: { http: true },
        signaturePolicy: policy("accept.json", accept()),
        onProgress: (p: FetchProgress) => events.push(p),
      };
      const r = await fetchImage(s, `docker://${own.host}/app:v1`, o);
      expect(r).toMatchObject({ id: layoutDigest, kind: "oci", name: `${own.host}/app`, bytesReused: 0 });
      expect(r.digests).toHaveLength(3);
      expect(events.some((e) => e.kind === "blob" && e.bytes === e.total)).toBe(true);
      await own.stop();
      // Pull policy `new` (the library's default): the stored image answers, the registry is not asked.
      expect((await fetchImage(s, `docker://${own.host}/app:v1`, o)).id).toBe(r.id);
    });
  });

  it("a policy that rejects: RKT_SIGNATURE_INVALID before anything is stored", async () => {
    await withStoreIn(tmp, async (s) => {
      const o = {
        env: {},
        insecure: { http: true },
        signaturePolicy: policy("reject.json", { default: [{ type: "reject" }] }),
      };
      for (const ref of [`docker://${reg.host}/app:v1`, `oci:${join(tmp, "layout")}:v1`]) {
        const e = await fetchImage(s, ref, o).catch((x: unknown) => x);
        expect(e).toMatchObject({ code: ErrorCode.SignatureInvalid });
        expect((e as Error).message.startsWith(ref)).toBe(true);
      }
      expect(listImages(s)).toEqual([]);
    });
  });

  it("imports oci: and docker-archive: relative to cwd; insecure image skips the policy with a warning", async () => {
    await withStoreIn(tmp, async (s) => {
      const warnings: string[] = [];
      const archive = join(tmp, "app.tar");
      await writeDockerArchive(
        archive,
        { layers: [[{ path: "a.txt", type: "file", content: "a\n" }]] },
        { repoTags: ["example.com/app:2"] },
      );
      const o = { cwd: tmp, env: {}, insecure: { image: true }, onWarning: (m: string) => warnings.push(m) };
      const a = await fetchImage(s, "oci:layout:v1", o);
      expect(a.id).toBe(layoutDigest);
      const b = await fetchImage(s, "docker-archive:app.tar", o);
      expect(b).toMatchObject({ kind: "oci", name: "example.com/app" });
      expect(getImage(s, b.id).labels["version"]).toBe("2");
      expect(
        await fetchImage(s, `docker://${reg.host}/app:v1`, { ...o, insecure: { image: true, http: true } }),
      ).toMatchObject({
        id: layoutDigest,
      });
      expect(warnings).toEqual([verificationDisabledWarning]);
    });
  });

  it("refuses --signature for a non-ACI and an unparsable reference, with codes", async () => {
    await withStoreIn(tmp, async (s) => {
      await expect(
        fetchImage(s, "oci:layout:v1", { cwd: tmp, signature: "x.asc", insecure: { image: true } }),
      ).rejects.toMatchObject({
        code: ErrorCode.InvalidArgument,
      });
      await expect(fetchImage(s, "docker://a/b@sha256:zz", {})).rejects.toMatchObject({
        code: ErrorCode.InvalidReference,
      });
    });
  });
});
