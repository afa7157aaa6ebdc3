// Preparing a pod (`rkt prepare`, the first half of `rkt run`): a pod directory with the appc pod
// manifest, each app's image manifest and tree ID, every image rendered into the tree store, and a
// GC root (`pod-<uuid>`) that keeps those images and trees until the pod is garbage.
import { randomUUID } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  parseImageManifestOrThrow,
  parsePodManifestOrThrow,
  type App,
  type PodManifest,
  type Volume,
} from "@rkt/appc";
import { ErrorCode, RktError, parseImageConfigOrThrow, parseManifestOrThrow } from "@rkt/oci";
import {
  catManifest,
  getImage,
  overlaySupported,
  readBlobLimited,
  renderStoredImage,
  tryLock,
  type LocalStore,
  type Tree,
} from "@rkt/store";
import {
  appFromAci,
  appFromOciConfig,
  appNameFor,
  applyOverrides,
  type AppOverrides,
  type OciProcessConfig,
} from "./app-spec.js";
import { requireHostSource } from "./mounts.js";
import { parsePasswd } from "./passwd.js";
import { PodDir, podLockKey, podPath, podsRoot } from "./pod-dirs.js";
import { podLeaseId, podFiles, imageAnnotation } from "./pod-files.js";
import type { Stage1Kind } from "./stage1/index.js";
import { readTreeFile } from "./tree-file.js";

/** One app of a pod to prepare. */
export interface AppRequest {
  /** Full store image ID. */
  readonly image: string;
  /** `--name`; default from the image name. */
  readonly name?: string | undefined;
  readonly overrides?: AppOverrides | undefined;
  /** `--mount volume=NAME,target=PATH` of this app. */
  readonly mounts?: readonly { volume: string; path: string }[] | undefined;
}

/** Options of {@link preparePod}. */
export interface PrepareOptions {
  /** `--volume`s of the pod. */
  readonly volumes?: readonly Volume[] | undefined;
  /** `--mount`s for every app (given before the first image). */
  readonly mounts?: readonly { volume: string; path: string }[] | undefined;
  readonly stage1: Stage1Kind;
  /** Overlay mounts over the tree store (default: when root with overlayfs); false: flattened copies. */
  readonly overlay?: boolean | undefined;
  /** Informational lines (implicit volumes). */
  readonly log?: ((line: string) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

const metaCap = 4 << 20;

/**
 * Prepares a pod of `apps` and returns its UUID; it is then in `prepared`. Nothing is left behind
 * on failure (no directory, no GC root).
 */
export async function preparePod(
  store: LocalStore,
  dataDir: string,
  apps: readonly AppRequest[],
  o: PrepareOptions,
): Promise<string> {
  if (apps.length === 0) throw new RktError(ErrorCode.InvalidArgument, "a pod needs at least one image");
  const uuid = randomUUID();
  const lock = tryLock(store, podLockKey(uuid));
  if ("heldBy" in lock)
    throw new RktError(ErrorCode.Internal, `pod ${uuid}: lock held by process ${lock.heldBy}`);
  const embryo = podPath(dataDir, PodDir.Embryo, uuid);
  const preparing = podPath(dataDir, PodDir.Prepare, uuid);
  let lease: string | undefined;
  try {
    for (const d of [PodDir.Embryo, PodDir.Prepare, PodDir.Prepared])
      await mkdir(join(podsRoot(dataDir), d), { recursive: true, mode: 0o750 });
    await mkdir(embryo, { mode: 0o750 });
    await rename(embryo, preparing);
    // The GC root comes after the directory: a root without a directory is an orphan GC may delete.
    lease = store.createLease({ id: podLeaseId(uuid), process: false, labels: { pod: uuid } });
    const overlay = o.overlay ?? (await overlaySupported());
    const manifest = await buildPod(store, preparing, apps, o, lease);
    await writeFile(join(preparing, podFiles.manifest), JSON.stringify(manifest), { mode: 0o640 });
    await writeFile(join(preparing, podFiles.stage1), o.stage1, { mode: 0o640 });
    if (overlay) await writeFile(join(preparing, podFiles.overlayPrepared), "", { mode: 0o640 });
    await rename(preparing, podPath(dataDir, PodDir.Prepared, uuid));
    return uuid;
  } catch (e) {
    await rm(embryo, { recursive: true, force: true }).catch(() => undefined);
    await rm(preparing, { recursive: true, force: true }).catch(() => undefined);
    if (lease !== undefined) store.deleteLease(lease);
    throw e;
  } finally {
    lock.release();
  }
}

async function buildPod(
  store: LocalStore,
  dir: string,
  apps: readonly AppRequest[],
  o: PrepareOptions,
  lease: string,
): Promise<PodManifest> {
  const volumes = [...(o.volumes ?? [])];
  for (const v of volumes)
    if (v.kind === "host" && v.source !== undefined) await requireHostSource(v.name, v.source);
  const taken = new Set<string>();
  const runtimeApps = [];
  for (const req of apps) {
    const img = getImage(store, req.image);
    const name = req.name ?? appNameFor(img.name || img.id, taken);
    if (taken.has(name))
      throw new RktError(ErrorCode.InvalidArgument, `two apps are named ${JSON.stringify(name)}`);
    taken.add(name);
    const what = `app ${JSON.stringify(name)} (image ${img.name || img.id})`;
    store.leaseAdd(lease, "image", img.id);
    let tree: Tree | undefined;
    await renderStoredImage(store, img.id, {
      signal: o.signal,
      use: (t) => {
        store.leaseAdd(lease, "tree", t.id);
        tree = t;
        return Promise.resolve();
      },
    });
    const raw = await catManifest(store, img.id);
    let app: App;
    if (img.kind === "aci") {
      app = applyOverrides(
        appFromAci(parseImageManifestOrThrow(raw).value.app, what),
        "aci",
        req.overrides ?? {},
        what,
      );
    } else {
      const m = parseManifestOrThrow(raw, undefined, `manifest ${img.id}`).value;
      const cfg = parseImageConfigOrThrow(
        await readBlobLimited(store, m.config.digest, metaCap),
        `config ${m.config.digest}`,
      ).value as { config?: OciProcessConfig };
      app = applyOverrides(
        appFromOciConfig(cfg.config),
        "oci",
        req.overrides ?? {},
        what,
        cfg.config?.Entrypoint ?? [],
      );
      if (app.group === "") app = { ...app, group: String(await primaryGid(tree!, app.user, what)) };
    }
    const appDir = join(dir, podFiles.appsinfo, name);
    await mkdir(appDir, { recursive: true, mode: 0o750 });
    await writeFile(join(appDir, "manifest"), raw, { mode: 0o640 });
    await writeFile(join(appDir, "treeStoreID"), tree!.id, { mode: 0o640 });
    const mounts = [...(o.mounts ?? []), ...(req.mounts ?? [])];
    for (const mp of app.mountPoints ?? []) {
      if (mounts.some((m) => m.path === mp.path || m.volume === mp.name)) continue;
      if (!volumes.some((v) => v.name === mp.name)) {
        o.log?.(
          `warning: no volume specified for mount point ${JSON.stringify(mp.name)} of ${what}, implicitly creating an "empty" volume`,
        );
        volumes.push({ name: mp.name, kind: "empty" });
      }
      mounts.push({ volume: mp.name, path: mp.path });
    }
    for (const m of mounts) {
      if (!volumes.some((v) => v.name === m.volume))
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${what}: --mount names volume ${JSON.stringify(m.volume)}, which no --volume defines`,
        );
    }
    runtimeApps.push({
      name,
      image:
        img.kind === "aci"
          ? {
              name: img.name,
              id: img.id,
              labels: Object.entries(img.labels).map(([n, value]) => ({ name: n, value })),
            }
          : {},
      app,
      mounts,
      annotations: imageAnnotation(img.id, img.kind, img.name),
    });
  }
  const manifest = {
    acVersion: "0.8.11",
    acKind: "PodManifest",
    apps: runtimeApps,
    volumes,
    annotations: [],
  };
  // Validated as any reader of the pod will: a bad --volume or name fails here, not at run.
  parsePodManifestOrThrow(JSON.stringify(manifest), "pod manifest");
  return manifest as unknown as PodManifest;
}

/** The primary group of `user` in the tree's /etc/passwd (0 for a uid it does not list). */
async function primaryGid(tree: Tree, user: string, what: string): Promise<number> {
  const passwd = parsePasswd((await readTreeFile(tree, "/etc/passwd")) ?? "");
  const entry = /^[0-9]+$/.test(user)
    ? passwd.find((p) => p.uid === Number(user))
    : passwd.find((p) => p.name === user);
  if (entry === undefined && !/^[0-9]+$/.test(user))
    throw new RktError(
      ErrorCode.NotFound,
      `${what}: user ${JSON.stringify(user)} is not in the image's /etc/passwd`,
    );
  return entry?.gid ?? 0;
}
