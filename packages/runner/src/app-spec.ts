// What each app of a pod runs: the appc `app` section of a pod manifest, derived from an ACI's app
// section or an OCI/Docker image config, then the command line's overrides. Pure.
import type { App } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";

/** The parts of an OCI/Docker image config's `config` object an app needs. */
export interface OciProcessConfig {
  readonly User?: string | undefined;
  readonly Env?: readonly string[] | undefined;
  readonly Entrypoint?: readonly string[] | null | undefined;
  readonly Cmd?: readonly string[] | null | undefined;
  readonly WorkingDir?: string | undefined;
  readonly ExposedPorts?: Readonly<Record<string, unknown>> | undefined;
  readonly Volumes?: Readonly<Record<string, unknown>> | undefined;
}

/** What the user asked for one app (`rkt run IMAGE --exec=… --user=… -- args…`). */
export interface AppOverrides {
  /** `--exec`: replaces the image's command (ACI exec; OCI Entrypoint, dropping Cmd). */
  readonly exec?: string | undefined;
  /** Arguments after `--`: ACI exec[1..]; OCI Cmd. */
  readonly args?: readonly string[] | undefined;
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  readonly workingDir?: string | undefined;
  /** `--set-env` (pod-wide) and `--environment` (this app): later wins, over the image's. */
  readonly env?: readonly (readonly [string, string])[] | undefined;
  readonly supplementaryGids?: readonly number[] | undefined;
}

/** rkt's PATH when the image sets none (stage1 `defaultPath`). */
export const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The app section as an ACI gives it (a copy), before overrides. */
export function appFromAci(app: App | undefined, what: string): App {
  if (app === undefined) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${what}: the image has no app section; give one with --exec`,
    );
  }
  return { ...app, environment: [...app.environment] };
}

/**
 * The app section of an OCI/Docker image config: exec = Entrypoint + Cmd (Docker's rule), env,
 * user and group ("" group: the user's primary group, resolved when the pod runs), working
 * directory, ports as `<port>-<proto>` and volumes as `volume-<path>` mount points (docker2aci's
 * names).
 */
export function appFromOciConfig(c: OciProcessConfig | undefined): App {
  const [user = "", group = ""] = (c?.User ?? "").split(":");
  const environment = (c?.Env ?? []).map((kv) => {
    const eq = kv.indexOf("=");
    return eq < 0 ? { name: kv, value: "" } : { name: kv.slice(0, eq), value: kv.slice(eq + 1) };
  });
  const ports = Object.keys(c?.ExposedPorts ?? {}).flatMap((p) => {
    const [num = "", proto = "tcp"] = p.split("/");
    const port = Number(num);
    return Number.isInteger(port) && port > 0 && port < 65536
      ? [{ name: `${port}-${proto}`, protocol: proto, port, count: 1 }]
      : [];
  });
  const mountPoints = Object.keys(c?.Volumes ?? {}).map((path) => ({
    name: volumeName(path),
    path,
  }));
  return {
    exec: [...(c?.Entrypoint ?? []), ...(c?.Cmd ?? [])],
    user: user === "" ? "0" : user,
    // An OCI image may name only a user: "" asks for that user's primary group, which preparation
    // looks up in the image (appc needs a group in the pod manifest).
    group,
    workingDirectory: c?.WorkingDir !== undefined && c.WorkingDir !== "" ? c.WorkingDir : undefined,
    environment,
    ...(ports.length > 0 ? { ports } : {}),
    ...(mountPoints.length > 0 ? { mountPoints } : {}),
  } as App;
}

/** docker2aci's mount point name for a Docker volume path: `/var/lib/db` → `volume-var-lib-db`. */
export function volumeName(path: string): string {
  const s = path
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return `volume-${s === "" ? "root" : s}`;
}

/**
 * Applies the command line to an app section. ACI: `--exec` replaces exec (args appended), args
 * alone replace exec[1..] (rkt). OCI: `--exec` replaces Entrypoint and drops Cmd, args replace Cmd
 * (Docker). RKT_INVALID_ARGUMENT when nothing is left to run.
 */
export function applyOverrides(
  app: App,
  kind: "aci" | "oci",
  o: AppOverrides,
  what: string,
  ociEntrypoint: readonly string[] = [],
): App {
  let exec = [...(app.exec ?? [])];
  if (o.exec !== undefined) exec = [o.exec, ...(o.args ?? [])];
  else if (o.args !== undefined && o.args.length > 0) {
    exec =
      kind === "aci"
        ? [...exec.slice(0, 1), ...o.args]
        : ociEntrypoint.length > 0
          ? [...ociEntrypoint, ...o.args]
          : [...o.args];
  }
  if (exec.length === 0 || exec[0] === "") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${what}: the image has no command to run; give one with --exec`,
    );
  }
  const env = new Map(app.environment.map((e) => [e.name, e.value]));
  for (const [k, v] of o.env ?? []) env.set(k, v);
  if (o.workingDir !== undefined && !o.workingDir.startsWith("/")) {
    throw new RktError(ErrorCode.InvalidArgument, `${what}: --working-dir must be an absolute path`);
  }
  return {
    ...app,
    exec,
    user: o.user ?? app.user,
    group: o.group ?? (o.user !== undefined && kind === "oci" ? "" : app.group),
    workingDirectory: o.workingDir ?? app.workingDirectory,
    supplementaryGIDs: o.supplementaryGids !== undefined ? [...o.supplementaryGids] : app.supplementaryGIDs,
    environment: [...env].map(([name, value]) => ({ name, value })),
  };
}

/**
 * The environment an app starts with: `--inherit-env`'s host variables, then the app's (image and
 * overrides), PATH defaulted as rkt, HOME from /etc/passwd when unset, and for ACIs rkt's
 * `AC_APP_NAME`. Returned as `K=V` strings. Pure.
 */
export function appEnvironment(
  app: App,
  o: {
    appName: string;
    kind: "aci" | "oci";
    home: string;
    inherit?: Readonly<Record<string, string | undefined>> | undefined;
    interactive?: boolean | undefined;
  },
): string[] {
  const env = new Map<string, string>();
  for (const [k, v] of Object.entries(o.inherit ?? {})) if (v !== undefined) env.set(k, v);
  for (const e of app.environment) env.set(e.name, e.value);
  if (!env.has("PATH")) env.set("PATH", defaultPath);
  if (!env.has("HOME")) env.set("HOME", o.home);
  if (o.interactive === true && !env.has("TERM")) env.set("TERM", "xterm");
  if (o.kind === "aci") env.set("AC_APP_NAME", o.appName);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** A valid, unique appc app name from an image name: its last path component, sanitized. Pure. */
export function appNameFor(imageName: string, taken: ReadonlySet<string>): string {
  const base = (imageName.split(/[:@]/)[0] ?? "").split("/").pop() ?? "";
  const clean =
    base
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "") || "app";
  let name = clean;
  for (let i = 2; taken.has(name); i++) name = `${clean}-${i}`;
  return name;
}
