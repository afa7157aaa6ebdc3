// The store seen as a registry: which stored images a repository name answers with, its tags, and
// which blobs it may hand out. Reads only the store's index, afresh on every call, so images
// fetched or removed while the server runs are seen at once.
import { ErrorCode, isRktError, type Digest } from "@rkt/oci";
import {
  findImageByName,
  getImage,
  imageContent,
  listImages,
  listRefs,
  type ImageRecord,
  type LocalStore,
} from "@rkt/store";

// A stored OCI image is named `REGISTRY/REPOSITORY` (rkt fetch's name). A registries.conf mirror
// entry with `location = "MIRROR"` for `prefix = "ORIGIN"` rewrites `ORIGIN/app` to `MIRROR/app`
// (containers/image, and our pullSources), so `app` must find `ORIGIN/app`. The full form
// `ORIGIN/app` is served too (a mirror location of `MIRROR/ORIGIN`), and a one-component name
// also finds Docker Hub's `docker.io/library/NAME` as `docker pull NAME` would.
function answersTo(stored: string, asked: string): 0 | 1 | 2 | undefined {
  if (stored === asked) return 0;
  const slash = stored.indexOf("/");
  if (slash > 0 && stored.slice(slash + 1) === asked) return 1;
  if (!asked.includes("/") && stored === `docker.io/library/${asked}`) return 2;
  return undefined;
}

/** A read-only registry view of a store. One per server: it remembers what it served by tag. */
export class StoreRepositories {
  private readonly store: LocalStore;
  // Images served by tag under a name whose record carries another name (a ref added by a later
  // fetch of the same manifest under a second name): their blobs belong to that name too.
  private readonly servedByTag = new Map<string, Set<string>>();

  constructor(store: LocalStore) {
    this.store = store;
  }

  private ociImages(): ImageRecord[] {
    return listImages(this.store).filter((i) => i.kind === "oci" && i.name !== "");
  }

  /** Stored names `name` answers to, exact match first, then the newest import. */
  storedNames(name: string): string[] {
    const ranked = new Map<string, { rank: number; time: number }>();
    for (const i of this.ociImages()) {
      const rank = answersTo(i.name, name);
      if (rank === undefined) continue;
      const r = ranked.get(i.name);
      if (r === undefined || i.importTime > r.time) ranked.set(i.name, { rank, time: i.importTime });
    }
    // A name only a ref carries (a second fetch of the same manifest under another name).
    for (const ref of listRefs(this.store)) {
      const rank = answersTo(ref.name, name);
      if (rank !== undefined && !ranked.has(ref.name)) ranked.set(ref.name, { rank, time: 0 });
    }
    return [...ranked.entries()].sort(([, a], [, b]) => a.rank - b.rank || b.time - a.time).map(([n]) => n);
  }

  /** The OCI image `name:tag` resolves to (as `rkt image list` names it), or undefined. */
  byTag(name: string, tag: string): ImageRecord | undefined {
    for (const stored of this.storedNames(name)) {
      const img = this.find(stored, tag);
      if (img === undefined) continue;
      let ids = this.servedByTag.get(name);
      if (ids === undefined) this.servedByTag.set(name, (ids = new Set()));
      ids.add(img.id);
      return img;
    }
    return undefined;
  }

  private find(stored: string, tag: string): ImageRecord | undefined {
    try {
      const img = getImage(
        this.store,
        findImageByName(this.store, { name: stored, labels: { version: tag } }),
      );
      return img.kind === "oci" ? img : undefined;
    } catch (e) {
      if (isRktError(e, ErrorCode.NotFound)) return undefined;
      throw e;
    }
  }

  /**
   * Ids of the images that belong to `name`: recorded or tagged under a name it answers to, or
   * served by tag.
   */
  private imageIds(name: string): Set<string> {
    const ids = new Set(this.servedByTag.get(name));
    for (const i of this.ociImages()) if (answersTo(i.name, name) !== undefined) ids.add(i.id);
    for (const r of listRefs(this.store)) if (answersTo(r.name, name) !== undefined) ids.add(r.imageId);
    return ids;
  }

  /** The image whose manifest digest is `digest`, when it belongs to `name`. */
  byDigest(name: string, digest: Digest): ImageRecord | undefined {
    if (!this.imageIds(name).has(digest)) return undefined;
    try {
      return getImage(this.store, digest);
    } catch (e) {
      if (isRktError(e, ErrorCode.NotFound)) return undefined;
      throw e;
    }
  }

  /**
   * True when `digest` is the manifest, config or a layer of an image of `name`. The server
   * hands out nothing else, so a client cannot read arbitrary store content by guessing digests.
   */
  ownsBlob(name: string, digest: Digest): boolean {
    for (const id of this.imageIds(name)) {
      if (imageContent(this.store, id).digests.includes(digest)) return true;
    }
    return false;
  }

  /**
   * Tags of `name`, sorted; undefined when no stored image answers to it. Every ref (name and
   * tag) of the store under a name it answers to is a candidate, listed when it resolves
   * (`byTag`) to an OCI image.
   */
  tags(name: string): string[] | undefined {
    const names = this.storedNames(name);
    if (names.length === 0) return undefined;
    const candidates = new Set<string>();
    for (const r of listRefs(this.store)) if (answersTo(r.name, name) !== undefined) candidates.add(r.tag);
    return [...candidates].filter((t) => names.some((n) => this.find(n, t) !== undefined)).sort();
  }

  /** Repository names a client can ask for: each stored name without its registry, sorted. */
  catalog(): string[] {
    const out = new Set<string>();
    for (const i of this.ociImages()) {
      const slash = i.name.indexOf("/");
      out.add(slash > 0 ? i.name.slice(slash + 1) : i.name);
    }
    return [...out].sort();
  }
}

/** One page of a sorted list (distribution's `n`/`last`): entries after `last`, at most `n`. */
export function pageOf(
  all: readonly string[],
  o: { n?: number | undefined; last?: string | undefined },
  max: number,
): { items: string[]; more: boolean } {
  const after = o.last === undefined ? all : all.filter((t) => t > o.last!);
  const n = Math.min(o.n ?? max, max);
  return { items: after.slice(0, n), more: after.length > n };
}
