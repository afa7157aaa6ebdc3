// The registry "signatures extension" served by the OpenShift registry (containers/image
// docker/docker_image_src.go getSignaturesFromAPIExtension): `X-Registry-Supports-Signatures: 1`
// on the /v2/ ping, then GET/PUT /extensions/v2/<repo>/signatures/<digest>. Pure helpers; the
// HTTP is @rkt/fetch's.
import { randomBytes } from "node:crypto";
import { ErrorCode, RktError, parseDigest, parseJsonStrict } from "@rkt/oci";

/** The path of an image's signatures on a registry that supports the extension. Pure. */
export function registrySignaturesPath(repository: string, digest: string): string {
  return `/extensions/v2/${repository}/signatures/${parseDigest(digest)}`;
}

/**
 * The signature blobs of a GET response body, in order. Entries that are not `schemaVersion: 2`,
 * `type: "atomic"` are skipped (containers/image does the same); a body that is not the expected
 * JSON, or an entry whose `content` is not base64, is refused with RKT_REGISTRY naming `source`.
 * Pure.
 */
export function parseRegistrySignatures(body: Uint8Array | string, source: string): Uint8Array[] {
  const r = parseJsonStrict(body);
  if (!r.ok)
    throw new RktError(ErrorCode.Registry, `${source}: ${r.issues[0]!.path}: ${r.issues[0]!.message}`);
  const v = r.value as { signatures?: unknown };
  if (typeof v !== "object" || v === null || !Array.isArray(v.signatures)) {
    throw new RktError(ErrorCode.Registry, `${source}: $.signatures: must be an array`);
  }
  const out: Uint8Array[] = [];
  v.signatures.forEach((s: unknown, i) => {
    const e = s as { schemaVersion?: unknown; type?: unknown; content?: unknown };
    if (typeof e !== "object" || e === null) {
      throw new RktError(ErrorCode.Registry, `${source}: $.signatures[${i}]: must be an object`);
    }
    if (e.schemaVersion !== 2 || e.type !== "atomic") return;
    if (
      typeof e.content !== "string" ||
      !/^[A-Za-z0-9+/]*={0,2}$/.test(e.content) ||
      e.content.length % 4 !== 0
    ) {
      throw new RktError(ErrorCode.Registry, `${source}: $.signatures[${i}].content: must be base64`);
    }
    out.push(Buffer.from(e.content, "base64"));
  });
  return out;
}

/**
 * The PUT body adding one signature: `{"signatures":[{"schemaVersion":2,"type":"atomic",
 * "name":"<digest>@<32 hex>","content":"<base64>"}]}`. The name's suffix is random unless given
 * (containers uses a random one so that uploads never collide).
 */
export function formatRegistrySignature(digest: string, signature: Uint8Array, unique?: string): string {
  const d = parseDigest(digest);
  const suffix = unique ?? randomBytes(16).toString("hex");
  return JSON.stringify({
    signatures: [
      {
        schemaVersion: 2,
        type: "atomic",
        name: `${d}@${suffix}`,
        content: Buffer.from(signature).toString("base64"),
      },
    ],
  });
}
