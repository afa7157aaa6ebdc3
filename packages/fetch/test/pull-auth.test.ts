// pullImage against a registry behind TLS (test CA) and basic auth (htpasswd): credentials and the
// CA reach the client, `update` stays one HEAD, and each refusal names its reason.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isRktError, parseDockerReference } from "@rkt/oci";
import { LocalStore, listImages } from "@rkt/store";
import { pushLayout, randomLayer, useRegistry, writeOciLayout, type BuiltImage } from "@rkt/testkit";
import { pullImage, type PullImageOptions } from "../src/pull.js";
import { staticCredentials } from "../src/registry/credentials.js";

const reg = useRegistry({ mode: "basic", tls: true });
let tmp: string;
let img: BuiltImage;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-pull-auth-"));
  const dir = join(tmp, "layout");
  img = await writeOciLayout(dir, { layers: [randomLayer(80_000, { seed: "auth" })] });
  await pushLayout(dir, "priv/app:v1", reg());
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
async function attempt(o: PullImageOptions) {
  const store = await LocalStore.open(join(tmp, `store-${n++}`));
  try {
    const ref = parseDockerReference(`${reg().host}/priv/app:v1`);
    const r = await pullImage(store, ref, o).catch((e: unknown) => e);
    return { r, images: listImages(store).length, again: () => pullImage(store, ref, o) };
  } finally {
    store.close();
  }
}

function creds() {
  return staticCredentials({ [reg().host]: { username: reg().username!, password: reg().password! } });
}

describe("pullImage with TLS and basic auth", () => {
  it("pulls with the CA and credentials; update then costs one HEAD", async () => {
    const store = await LocalStore.open(join(tmp, `store-${n++}`));
    try {
      const ref = parseDockerReference(`${reg().host}/priv/app:v1`);
      const o = { caPem: reg().caPem, credentials: creds() };
      const r = await pullImage(store, ref, o);
      expect(r.id).toBe(img.descriptor.digest);
      const w = await pullImage(store, ref, o);
      expect(w).toMatchObject({ source: "unchanged", bytesDownloaded: 0 });
    } finally {
      store.close();
    }
  });

  it("without credentials: RKT_UNAUTHORIZED naming the image, nothing stored", async () => {
    const { r, images } = await attempt({ caPem: reg().caPem });
    expect(isRktError(r, ErrorCode.Unauthorized)).toBe(true);
    expect((r as Error).message).toContain(`${reg().host}/priv/app:v1`);
    expect(images).toBe(0);
  });

  it("without the CA the TLS error says which insecure option would help; insecure tls pulls", async () => {
    const { r, images } = await attempt({ credentials: creds() });
    expect(isRktError(r)).toBe(true);
    expect((r as Error).message).toMatch(/insecure-options=tls/);
    expect(images).toBe(0);
    const ok = await attempt({ credentials: creds(), insecure: { tls: true } });
    expect(ok.r).toMatchObject({ id: img.descriptor.digest, source: "pulled" });
  });
});
