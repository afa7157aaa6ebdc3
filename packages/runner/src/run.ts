// Running a prepared pod (`rkt run-prepared`, the second half of `rkt run`): the pod moves to
// `run`, each app gets its root filesystem (an overlay mount over its tree, upper and work dirs in
// the pod, or a flattened copy), credentials and command are resolved against that root, and the
// stage1 runs the apps. The pod lock is held until they end: a pod in `run` whose lock is free has
// exited. Root filesystems are unmounted at the end; `rkt gc` unmounts what a killed rkt left.
import { chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parsePodManifestOrThrow, type PodManifest, type RuntimeApp } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";
import {
  flattenTree,
  getTree,
  mountTree,
  storeTreePaths,
  touchImage,
  tryLock,
  type LocalStore,
} from "@rkt/store";
import { appEnvironment } from "./app-spec.js";
import { isExecutableInRoot, readInRoot } from "./in-root.js";
import {
  defaultCapabilities,
  type LaunchApp,
  type LaunchMount,
  type LaunchPod,
  type NetMode,
} from "./launch.js";
import { parseGroup, parsePasswd, resolveCredentials } from "./passwd.js";
import { findPod, movePod, PodDir, podLockKey } from "./pod-dirs.js";
import { annotationImageId, annotationImageKind, annotationImageName, podFiles } from "./pod-files.js";
import { requireHostSource, unmountUnder } from "./mounts.js";
import { stage1Of, type AppExit, type LaunchIO, type Stage1Kind } from "./stage1/index.js";

/** Options of {@link runPreparedPod}. */
export interface RunOptions {
  readonly net?: NetMode | undefined;
  readonly hostname?: string | undefined;
  readonly interactive?: boolean | undefined;
  /** `--inherit-env`: the host environment under the apps'. */
  readonly inheritEnv?: Readonly<Record<string, string | undefined>> | undefined;
  readonly io: LaunchIO;
  readonly signal: AbortSignal;
  /** `--debug` lines. */
  readonly log?: ((line: string) => void) | undefined;
  /** Called once the pod is in `run` and its lock is held (before any app starts). */
  readonly onStart?: ((uuid: string) => void) | undefined;
}

/** How a pod ended. */
export interface PodExit {
  readonly uuid: string;
  readonly apps: readonly AppExit[];
  /** rkt's exit status: the first app's that failed, else 0. */
  readonly status: number;
}

/** The pod's recorded stage1 and manifest. */
export async function readPod(
  dir: string,
): Promise<{ manifest: PodManifest; stage1: Stage1Kind; overlay: boolean }> {
  const manifest = parsePodManifestOrThrow(await readFile(join(dir, podFiles.manifest)), `pod ${dir}`).value;
  const stage1 = (await readFile(join(dir, podFiles.stage1), "utf8")).trim() as Stage1Kind;
  const overlay = await readFile(join(dir, podFiles.overlayPrepared)).then(
    () => true,
    () => false,
  );
  return { manifest, stage1, overlay };
}

/** The store image (ID, kind, name) a runtime app runs. */
export function appImage(app: RuntimeApp): { id: string; kind: "aci" | "oci"; name: string } {
  const ann = (n: string) => app.annotations?.find((a) => a.name === n)?.value;
  const id = ann(annotationImageId) ?? app.image.id ?? "";
  return {
    id,
    kind: ann(annotationImageKind) === "oci" ? "oci" : "aci",
    name: ann(annotationImageName) ?? app.image.name ?? id,
  };
}

/** Runs the prepared pod `uuid` (a unique prefix will do) to its end. */
export async function runPreparedPod(
  store: LocalStore,
  dataDir: string,
  uuid: string,
  o: RunOptions,
): Promise<PodExit> {
  let loc = await findPod(dataDir, uuid);
  if (loc.dir !== PodDir.Prepared) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `pod ${loc.uuid} is not prepared (it is in ${loc.dir}); only a prepared pod can run`,
    );
  }
  const lock = tryLock(store, podLockKey(loc.uuid));
  if ("heldBy" in lock)
    throw new RktError(ErrorCode.Unavailable, `pod ${loc.uuid} is in use by process ${lock.heldBy}`);
  const mounted: string[] = [];
  try {
    const pod = await readPod(loc.path);
    const stage1 = stage1Of(pod.stage1);
    const why = await stage1.unavailable();
    if (why !== undefined) throw new RktError(ErrorCode.Unavailable, `stage1 ${pod.stage1}: ${why}`);
    loc = await movePod(dataDir, loc, PodDir.Run);
    await writeFile(join(loc.path, podFiles.started), String(Date.now()));
    o.onStart?.(loc.uuid);
    const apps: LaunchApp[] = [];
    for (const ra of pod.manifest.apps) {
      const rootfs = await appRootfs(store, loc.path, ra, pod.overlay, mounted);
      apps.push(await launchApp(loc.path, ra, rootfs, pod.manifest, o));
    }
    const net = o.net ?? "default";
    const launch: LaunchPod = {
      uuid: loc.uuid,
      dir: loc.path,
      apps,
      net: pod.stage1 === "fly" && net === "default" ? "host" : net,
      hostname: o.hostname ?? `rkt-${loc.uuid}`,
      interactive: o.interactive === true,
    };
    const refusal = stage1.refuses({
      apps: apps.length,
      net: launch.net,
      hostnameSet: o.hostname !== undefined,
      interactive: launch.interactive,
    });
    if (refusal !== undefined)
      throw new RktError(ErrorCode.InvalidArgument, `stage1 ${pod.stage1}: ${refusal}`);
    o.log?.(
      `pod ${loc.uuid}: ${apps.length} app(s), stage1 ${pod.stage1}, net ${launch.net}, ${pod.overlay ? "overlay" : "flattened"} root filesystems`,
    );
    const exits = await stage1.run(launch, o.io, o.signal);
    const statusDir = join(loc.path, podFiles.status);
    await mkdir(statusDir, { recursive: true });
    for (const e of exits) await writeFile(join(statusDir, e.app), String(e.status));
    return { uuid: loc.uuid, apps: exits, status: exits.find((e) => e.status !== 0)?.status ?? 0 };
  } finally {
    await unmountUnder(loc.path).catch((e: unknown) => o.log?.(`pod ${loc.uuid}: ${(e as Error).message}`));
    lock.release();
  }
}

/** Mounts (or copies) the tree of runtime app `ra` at its rootfs in the pod. */
async function appRootfs(
  store: LocalStore,
  dir: string,
  ra: RuntimeApp,
  overlay: boolean,
  mounted: string[],
): Promise<string> {
  const image = appImage(ra);
  const treeId = (await readFile(join(dir, podFiles.appsinfo, ra.name, "treeStoreID"), "utf8")).trim();
  const tree = await getTree(storeTreePaths(store), treeId);
  if (tree === undefined) {
    throw new RktError(
      ErrorCode.NotFound,
      `app ${JSON.stringify(ra.name)}: tree ${treeId} of image ${image.id} is gone from the store (removed behind the pod's back); prepare a new pod`,
    );
  }
  touchImage(store, image.id);
  const rootfs = join(dir, podFiles.stage2, ra.name, "rootfs");
  await mkdir(rootfs, { recursive: true, mode: 0o755 });
  if (overlay) {
    const base = join(dir, podFiles.overlay, treeId);
    await mountTree(tree, rootfs, { upper: join(base, "upper", ra.name), work: join(base, "work", ra.name) });
    mounted.push(rootfs);
  } else {
    await flattenTree(tree, rootfs);
  }
  return rootfs;
}

/** Resolves runtime app `ra` against its mounted root: credentials, command, environment, mounts. */
async function launchApp(
  dir: string,
  ra: RuntimeApp,
  rootfs: string,
  pm: PodManifest,
  o: RunOptions,
): Promise<LaunchApp> {
  const what = `app ${JSON.stringify(ra.name)}`;
  const app = ra.app;
  if (app === undefined)
    throw new RktError(ErrorCode.InvalidManifest, `${what}: the pod manifest has no app section`);
  const passwdText = await readInRoot(rootfs, "/etc/passwd");
  const groupText = await readInRoot(rootfs, "/etc/group");
  const cred = resolveCredentials(
    { user: app.user, group: app.group, supplementaryGids: app.supplementaryGIDs, what },
    passwdText === undefined ? undefined : parsePasswd(passwdText),
    groupText === undefined ? undefined : parseGroup(groupText),
  );
  const env = appEnvironment(app, {
    appName: ra.name,
    kind: appImage(ra).kind,
    home: cred.home,
    inherit: o.inheritEnv,
    interactive: o.interactive,
  });
  const exec = app.exec ?? [];
  await checkExec(rootfs, exec[0] ?? "", env, what);
  const cwd = app.workingDirectory ?? "/";
  return {
    name: ra.name,
    rootfs,
    args: exec,
    env,
    uid: cred.uid,
    userName: cred.userName,
    gid: cred.gid,
    additionalGids: cred.additionalGids,
    cwd,
    mounts: await appMounts(dir, ra, pm),
    capabilities: capabilities(app.isolators),
  };
}

/** RKT_NOT_FOUND unless the command is an executable file in the image (PATH searched for a bare name). */
async function checkExec(rootfs: string, cmd: string, env: readonly string[], what: string): Promise<void> {
  const path = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? "";
  const candidates = cmd.includes("/")
    ? [cmd.startsWith("/") ? cmd : `/${cmd}`]
    : path.split(":").map((d) => `${d}/${cmd}`);
  for (const c of candidates) if (await isExecutableInRoot(rootfs, c)) return;
  throw new RktError(
    ErrorCode.NotFound,
    `${what}: exec ${JSON.stringify(cmd)} is not an executable file in the image`,
  );
}

/** The app's bind mounts: host volumes as they are, empty volumes as directories in the pod. */
async function appMounts(dir: string, ra: RuntimeApp, pm: PodManifest): Promise<LaunchMount[]> {
  const out: LaunchMount[] = [];
  for (const m of ra.mounts ?? []) {
    const v = pm.volumes?.find((x) => x.name === m.volume);
    if (v === undefined)
      throw new RktError(
        ErrorCode.InvalidManifest,
        `app ${JSON.stringify(ra.name)}: no volume ${JSON.stringify(m.volume)}`,
      );
    const mp = ra.app?.mountPoints?.find((p) => p.name === m.volume || p.path === m.path);
    let source = v.source ?? "";
    if (v.kind === "empty") {
      source = join(dir, podFiles.volumes, v.name);
      await mkdir(source, { recursive: true, mode: v.mode !== undefined ? parseInt(v.mode, 8) : 0o755 });
      if (v.uid !== undefined || v.gid !== undefined) await chown(source, v.uid ?? 0, v.gid ?? 0);
    } else {
      await requireHostSource(v.name, source);
    }
    out.push({ source, target: m.path, readOnly: v.readOnly === true || mp?.readOnly === true });
  }
  return out;
}

/** rkt's default set, adjusted by the app's `os/linux/capabilities-{retain,remove}-set` isolators. */
function capabilities(isolators: readonly { name: string; value?: unknown }[] | undefined): string[] {
  let caps = [...defaultCapabilities];
  for (const iso of isolators ?? []) {
    const set = ((iso.value as { set?: unknown } | undefined)?.set ?? []) as string[];
    if (iso.name === "os/linux/capabilities-retain-set") caps = [...set];
    if (iso.name === "os/linux/capabilities-remove-set") caps = caps.filter((c) => !set.includes(c));
  }
  return caps;
}
