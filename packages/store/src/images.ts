// Image rows: identity, resolution with rkt's rules and messages (rkt.md §4.3, §4.5), listing,
// removal, last-used, manifests. Reads only the index unless a function says otherwise.
import { buffer } from "node:stream/consumers";
import { ErrorCode, RktError, parseDigest, parseDockerReference, type Digest } from "@rkt/oci";
import type { LocalStore } from "./local-store.js";
import { indexDb } from "./internal/index-db.js";

/** The two kinds of image the store holds. */
export type ImageKind = "aci" | "oci";

/** One image as the index records it. Times are milliseconds since the epoch. */
export interface ImageRecord {
  /** `sha512-<64 hex>` (ACI) or `sha256:<64 hex>` (OCI manifest digest). */
  readonly id: string;
  readonly kind: ImageKind;
  /** ACI name, or the repository name an OCI image was imported under ("" if none). */
  readonly name: string;
  /** ACI labels (version, os, arch, …); for OCI images the tag as `version`, when known. */
  readonly labels: Readonly<Record<string, string>>;
  /** ACI: `sha512:<128 hex>` of the archive blob; OCI: the manifest digest (= id). */
  readonly manifestDigest: string;
  readonly configDigest?: string | undefined;
  /** Stored bytes: the ACI archive, or manifest + config + layers. */
  readonly size: number;
  /** Sum of the sizes of this image's rendered trees (each tree tracked on its own). */
  readonly treeSize: number;
  readonly importTime: number;
  readonly lastUsed: number;
  readonly latest: boolean;
}

// An image row as better-sqlite3's `raw()` returns it, in `imageColumns` order, then the tree size.
// Arrays, not the objects `all()` builds: naming each column of each row is what made listing
// 10,000 images cost ~55 ms of queries instead of ~27 ms.
type ImageRow = [
  id: string,
  kind: ImageKind,
  name: string,
  labels: string,
  manifestDigest: string,
  configDigest: string | null,
  size: number,
  importTime: number,
  lastUsed: number,
  latest: number,
  treeSize: number | null,
];

function toRecord(r: ImageRow): ImageRecord {
  const [id, kind, name, labels, manifestDigest, configDigest, size, importTime, lastUsed, latest, treeSize] =
    r;
  return {
    id,
    kind,
    name,
    labels: JSON.parse(labels) as Record<string, string>,
    manifestDigest,
    configDigest: configDigest ?? undefined,
    size,
    treeSize: treeSize ?? 0,
    importTime,
    lastUsed,
    latest: latest !== 0,
  };
}

const imageColumns =
  "i.id, i.kind, i.name, i.labels, i.manifest_digest, i.config_digest, i.size, i.import_time, i.last_used, i.latest";

/** The record of image `id` (a full ID). RKT_NOT_FOUND when absent. */
export function getImage(store: LocalStore, id: string): ImageRecord {
  const row = indexDb(store)
    .prepare(
      `SELECT ${imageColumns}, (SELECT SUM(size) FROM trees t WHERE t.image_id = i.id) AS tree_size FROM images i WHERE i.id = ?`,
    )
    .raw()
    .get(id) as ImageRow | undefined;
  if (row === undefined) throw new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`);
  return toRecord(row);
}

/** The ACI image ID for the sha512 digest of an uncompressed archive: `sha512-` + first 64 hex. */
export function aciImageId(digest: string): string {
  return `sha512-${digest.slice(digest.indexOf(":") + 1, digest.indexOf(":") + 65)}`;
}

// rkt classifies syntactically: exactly one '-' and type sha512 means an image ID (rkt.md §1.4).
const aciKeyRe = /^sha512-[^-]*$/;
const ociKeyRe = /^sha256:[0-9a-f]*$/;

/** True when `arg` is an image ID or ID prefix (not a name), with rkt's syntactic rule. Pure. */
export function isImageIdSyntax(arg: string): boolean {
  return aciKeyRe.test(arg) || ociKeyRe.test(arg);
}

/**
 * Resolves a full image ID or a unique prefix of one to the full ID (rkt `ResolveKey`): ACI keys
 * `sha512-` + at least 2 hex (a 128-hex key is cut to the 64 hex IDs keep); OCI keys `sha256:` +
 * at least 2 hex. RKT_INVALID_ARGUMENT `image ID too short` / `wrong key prefix`, RKT_NOT_FOUND
 * `no image IDs found`, RKT_AMBIGUOUS `ambiguous image ID: "<k>"`.
 */
export function resolveImageKey(store: LocalStore, key: string): string {
  let k = key;
  if (k.startsWith("sha512-")) {
    if (k.length > 71) k = k.slice(0, 71);
  } else if (!k.startsWith("sha256:")) {
    throw new RktError(ErrorCode.InvalidArgument, "wrong key prefix");
  }
  if (k.length < 9) throw new RktError(ErrorCode.InvalidArgument, "image ID too short");
  if (!/^[0-9a-f]+$/.test(k.slice(7))) throw new RktError(ErrorCode.NotFound, "no image IDs found");
  // Hex sorts below '~', so [k, k + '~') is exactly the IDs starting with k, using the primary key.
  const rows = indexDb(store)
    .prepare("SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2")
    .all(k, `${k}~`) as {
    id: string;
  }[];
  if (rows.length === 0) throw new RktError(ErrorCode.NotFound, "no image IDs found");
  if (rows.length > 1) throw new RktError(ErrorCode.Ambiguous, `ambiguous image ID: ${JSON.stringify(k)}`);
  return rows[0]!.id;
}

/** An image name with labels, as in `example.com/app:1.0,os=linux` (appc app string). */
export interface ImageNameQuery {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Parses an appc app string: `name[:version][,label=value…]`. The `:version` shorthand becomes
 * the `version` label. RKT_INVALID_ARGUMENT on a label without `=`. Pure.
 */
export function parseImageName(arg: string): ImageNameQuery {
  const [head = "", ...rest] = arg.split(",");
  const labels: Record<string, string> = {};
  let name = head;
  const colon = head.lastIndexOf(":");
  if (colon > head.lastIndexOf("/") && colon > 0) {
    labels["version"] = head.slice(colon + 1);
    name = head.slice(0, colon);
  }
  for (const part of rest) {
    const eq = part.indexOf("=");
    if (eq <= 0)
      throw new RktError(
        ErrorCode.InvalidArgument,
        `invalid image name ${JSON.stringify(arg)}: label ${JSON.stringify(part)} is not name=value`,
      );
    labels[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return { name, labels };
}

function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** A name and tag of an image (one row of the refs table: an image may have several). */
export interface ImageRef {
  readonly name: string;
  readonly tag: string;
  readonly imageId: string;
}

/** Every name and tag recorded in the store, by name then tag. */
export function listRefs(store: LocalStore): ImageRef[] {
  const rows = indexDb(store).prepare("SELECT name, tag, image_id FROM refs ORDER BY name, tag").all() as {
    name: string;
    tag: string;
    image_id: string;
  }[];
  return rows.map((r) => ({ name: r.name, tag: r.tag, imageId: r.image_id }));
}

function refImage(store: LocalStore, name: string, tag: string): string | undefined {
  const ref = indexDb(store)
    .prepare("SELECT image_id FROM refs WHERE name = ? AND tag = ?")
    .get(name, tag) as { image_id: string } | undefined;
  return ref?.image_id;
}

function storedTags(store: LocalStore, name: string): string[] {
  const rows = indexDb(store).prepare("SELECT tag FROM refs WHERE name = ? ORDER BY tag").all(name) as {
    tag: string;
  }[];
  return rows.map((r) => r.tag);
}

/**
 * The name docker would look `name` up as (`hello` -> `docker.io/library/hello`, `user/app` ->
 * `docker.io/user/app`), when that differs from `name`; undefined otherwise or when it is no
 * docker reference. Names that look like ACI IDs (`sha512-…`) are ACI names. Pure.
 */
export function dockerNormalizedName(name: string): string | undefined {
  if (name.startsWith("sha512-")) return undefined;
  try {
    const r = parseDockerReference(name);
    const full = `${r.registry}/${r.repository}`;
    return full === name ? undefined : full;
  } catch {
    return undefined;
  }
}

/**
 * Finds the image for a name and labels (rkt `GetACI`): every requested label must match; without
 * a requested version, images flagged `latest` come first; then the newest import. OCI images
 * are also found by their ref (`name` + tag in `version`, default tag `latest`), and by docker's
 * normalised name (`hello:v1` is `docker.io/library/hello:v1`). RKT_NOT_FOUND: for a name stored
 * with other tags, or a docker short name, `no image "<name:tag>" in the local store (…)`; else
 * rkt's `cannot find aci satisfying name: "<n>" and labels: "<labels>" in the local store`.
 */
export function findImageByName(store: LocalStore, q: ImageNameQuery): string {
  const tag = q.labels["version"] ?? "latest";
  const versionOnly = Object.keys(q.labels).every((k) => k === "version");
  if (versionOnly) {
    const id = refImage(store, q.name, tag);
    if (id !== undefined) return id;
  }
  const rows = indexDb(store)
    .prepare("SELECT id, labels, latest, import_time FROM images WHERE name = ?")
    .all(q.name) as { id: string; labels: string; latest: number; import_time: number }[];
  const wanted = Object.entries(q.labels);
  const matches = rows.filter((r) => {
    const have = JSON.parse(r.labels) as Record<string, string>;
    return wanted.every(([k, v]) => have[k] === v);
  });
  const preferLatest = q.labels["version"] === undefined;
  matches.sort((a, b) => {
    if (preferLatest && a.latest !== b.latest) return b.latest - a.latest;
    return b.import_time - a.import_time;
  });
  const best = matches[0];
  if (best !== undefined) return best.id;
  const docker = versionOnly ? dockerNormalizedName(q.name) : undefined;
  if (docker !== undefined) {
    const id = refImage(store, docker, tag);
    if (id !== undefined) return id;
  }
  if (versionOnly) {
    // An OCI/Docker image name: say so in its words, with the tags that are there.
    for (const name of docker === undefined ? [q.name] : [q.name, docker]) {
      const tags = storedTags(store, name);
      if (tags.length > 0) {
        throw new RktError(
          ErrorCode.NotFound,
          `no image ${JSON.stringify(`${q.name}:${tag}`)} in the local store (${name} has tag${tags.length === 1 ? "" : "s"} ${tags.join(", ")})`,
        );
      }
    }
    if (docker !== undefined) {
      throw new RktError(
        ErrorCode.NotFound,
        `no image ${JSON.stringify(`${q.name}:${tag}`)} in the local store (looked for ${docker}:${tag} and for an ACI named ${JSON.stringify(q.name)})`,
      );
    }
  }
  throw new RktError(
    ErrorCode.NotFound,
    `cannot find aci satisfying name: ${JSON.stringify(q.name)} and labels: ${JSON.stringify(formatLabels(q.labels))} in the local store`,
  );
}

/**
 * Resolves what a user typed (an ID, a unique ID prefix, or a name with labels) to a full image
 * ID, with rkt's classification and errors ({@link resolveImageKey}, {@link findImageByName}).
 */
export function resolveImage(store: LocalStore, arg: string): string {
  if (isImageIdSyntax(arg)) return resolveImageKey(store, arg);
  return findImageByName(store, parseImageName(arg));
}

/** Fields `listImages` can sort by (rkt's accepted `--sort` values). */
export type ImageSortField = "name" | "importtime" | "lastused" | "size";

/** Options of {@link listImages}. */
export interface ListImagesOptions {
  /** Default `importtime` (rkt). */
  sort?: ImageSortField | readonly ImageSortField[] | undefined;
  /** Default `asc`. */
  order?: "asc" | "desc" | undefined;
}

const sortColumns: Record<ImageSortField, string> = {
  name: "i.name",
  importtime: "i.import_time",
  lastused: "i.last_used",
  size: "(i.size + COALESCE(t.tree_size, 0))",
};

/** Every image, sorted; reads only the index (no blob is opened). */
export function listImages(store: LocalStore, o: ListImagesOptions = {}): ImageRecord[] {
  const fields =
    o.sort === undefined ? ["importtime" as const] : typeof o.sort === "string" ? [o.sort] : o.sort;
  const dir = o.order === "desc" ? "DESC" : "ASC";
  for (const f of fields) {
    if (!(f in sortColumns))
      throw new RktError(ErrorCode.InvalidArgument, `unknown sort field ${JSON.stringify(f)}`);
  }
  const orderBy = [...fields.map((f) => `${sortColumns[f]} ${dir}`), `i.id ${dir}`].join(", ");
  const rows = indexDb(store)
    .prepare(
      `SELECT ${imageColumns}, t.tree_size FROM images i
       LEFT JOIN (SELECT image_id, SUM(size) AS tree_size FROM trees GROUP BY image_id) t ON t.image_id = i.id
       ORDER BY ${orderBy}`,
    )
    .raw()
    .all() as ImageRow[];
  return rows.map(toRecord);
}

/** Records that image `id` was used now (rkt updates last-used on render, export, extract, run). */
export function touchImage(store: LocalStore, id: string, now = Date.now()): void {
  const r = indexDb(store).prepare("UPDATE images SET last_used = ? WHERE id = ?").run(now, id);
  if (r.changes === 0) throw new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`);
}

/** The blobs of image `id`, manifest first, then config, then layers in order, and its stored size. */
export function imageContent(store: LocalStore, id: string): { digests: Digest[]; size: number } {
  const rows = indexDb(store)
    .prepare(
      "SELECT digest FROM image_blobs WHERE image_id = ? ORDER BY CASE role WHEN 'manifest' THEN 0 WHEN 'config' THEN 1 ELSE 2 END, position",
    )
    .all(id) as { digest: Digest }[];
  const size = (
    indexDb(store).prepare("SELECT size FROM images WHERE id = ?").get(id) as { size: number } | undefined
  )?.size;
  return { digests: rows.map((r) => r.digest), size: size ?? 0 };
}

/** The result of removing one image. */
export interface RemoveResult {
  readonly id: string;
  readonly removed: boolean;
  /** Why it was not removed (RKT_NOT_FOUND, RKT_UNAVAILABLE when a pod or lease holds it). */
  readonly error?: RktError | undefined;
  /** Bytes of blobs and trees given back to the file system. */
  readonly freedBytes: number;
}

/**
 * Removes images (full IDs) with their refs, remotes and rendered trees (unlike rkt, #2890), then
 * the blobs no other image needs. An image referenced by a live lease or GC root (a pod) is not
 * removed. Rows go first, in one transaction, then files: a crash leaves orphans for GC, never a
 * row naming a missing file. One result per distinct ID, in order.
 */
export async function removeImages(store: LocalStore, ids: readonly string[]): Promise<RemoveResult[]> {
  const unique = [...new Set(ids)];
  const live = store.leaseChecker();
  const leasedBy = indexDb(store).prepare(
    "SELECT lease_id FROM lease_refs WHERE (kind = 'image' AND ref = ?) OR (kind = 'tree' AND ref IN (SELECT id FROM trees WHERE image_id = ?))",
  );
  const exists = indexDb(store).prepare("SELECT 1 FROM images WHERE id = ?");
  const blobsOf = indexDb(store).prepare("SELECT DISTINCT digest FROM image_blobs WHERE image_id = ?");
  const treesOf = indexDb(store).prepare("SELECT id, size FROM trees WHERE image_id = ?");
  const delImage = indexDb(store).prepare("DELETE FROM images WHERE id = ?");
  const delBlob = indexDb(store).prepare(
    "DELETE FROM blobs WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE digest = ?)",
  );
  const delLayer = indexDb(store).prepare("DELETE FROM layers WHERE digest = ?");
  const results = new Map<string, { removed: boolean; error?: RktError; freed: number }>();
  const candidates = new Set<string>();
  const treeDirs: { id: string; size: number }[] = [];
  const run = indexDb(store).transaction((batch: readonly string[]) => {
    const blobsTouched = new Set<string>();
    for (const id of batch) {
      if (exists.get(id) === undefined) {
        results.set(id, {
          removed: false,
          error: new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`),
          freed: 0,
        });
        continue;
      }
      const holders = (leasedBy.all(id, id) as { lease_id: string }[]).filter((h) => live(h.lease_id));
      if (holders.length > 0) {
        results.set(id, {
          removed: false,
          error: new RktError(ErrorCode.Unavailable, `image ${id} is in use by ${holders[0]!.lease_id}`),
          freed: 0,
        });
        continue;
      }
      for (const b of blobsOf.all(id) as { digest: string }[]) blobsTouched.add(b.digest);
      const trees = treesOf.all(id) as { id: string; size: number }[];
      treeDirs.push(...trees);
      delImage.run(id);
      results.set(id, { removed: true, freed: trees.reduce((n, t) => n + t.size, 0) });
    }
    for (const d of blobsTouched) {
      if (delBlob.run(d, d).changes > 0) {
        delLayer.run(d);
        candidates.add(d);
      }
    }
  });
  // Files go after each batch's rows: on a full disk the space the first batch frees is there
  // for the next batch's log writes (free-space.ts).
  let sweptBytes = 0;
  for (let i = 0; i < unique.length; i += 100) {
    run.immediate(unique.slice(i, i + 100));
    for (const t of treeDirs.splice(0)) await store.removeTreeDir(t.id);
    sweptBytes += store.sweepBlobs(candidates).bytes;
    candidates.clear();
  }
  // Attribute freed blob bytes to the images in order; exact per-image accounting is not needed.
  const first = unique.find((id) => results.get(id)?.removed === true);
  if (first !== undefined) results.get(first)!.freed += sweptBytes;
  return unique.map((id) => {
    const r = results.get(id)!;
    return { id, removed: r.removed, error: r.error, freedBytes: r.freed };
  });
}

const manifestCap = 16 << 20;

/**
 * The manifest of image `id`: for an ACI the image manifest bytes as found in the archive; for an
 * OCI image the exact manifest bytes its ID is the digest of. RKT_NOT_FOUND when absent.
 */
export async function catManifest(store: LocalStore, id: string): Promise<Uint8Array> {
  const row = indexDb(store)
    .prepare("SELECT kind, manifest, manifest_digest FROM images WHERE id = ?")
    .get(id) as { kind: ImageKind; manifest: Buffer | null; manifest_digest: string } | undefined;
  if (row === undefined) throw new RktError(ErrorCode.NotFound, `cannot find image with key: ${id}`);
  if (row.kind === "aci") {
    if (row.manifest === null) throw new RktError(ErrorCode.Internal, `image ${id}: no manifest recorded`);
    return row.manifest;
  }
  const d = parseDigest(row.manifest_digest);
  const info = await store.info(d);
  if (info.size > manifestCap)
    throw new RktError(ErrorCode.TooLarge, `image ${id}: manifest is ${info.size} bytes`);
  return buffer(await store.open(d));
}
