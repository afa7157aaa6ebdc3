// The on-disk layout of a store root (`--dir`); see the package README.
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Absolute paths of one store. Everything lives under `<dir>/cas`. */
export interface StorePaths {
  readonly root: string;
  readonly cas: string;
  readonly blobs: string;
  readonly ingest: string;
  readonly layers: string;
  readonly trees: string;
  readonly tmp: string;
  readonly db: string;
}

export function storePaths(dir: string): StorePaths {
  const cas = join(dir, "cas");
  return {
    root: dir,
    cas,
    blobs: join(cas, "blobs"),
    ingest: join(cas, "ingest"),
    layers: join(cas, "layers"),
    trees: join(cas, "trees"),
    tmp: join(cas, "tmp"),
    db: join(cas, "index.db"),
  };
}

/** `blobs/<alg>/<hex>` for a digest `alg:hex`. */
export function blobPath(p: StorePaths, digest: string): string {
  const colon = digest.indexOf(":");
  return join(p.blobs, digest.slice(0, colon), digest.slice(colon + 1));
}

/** The ingest directory of a ref: named by the sha256 of the ref, so any string is a safe ref (containerd). */
export function ingestDir(p: StorePaths, ref: string): string {
  return join(p.ingest, createHash("sha256").update(ref).digest("hex"));
}
