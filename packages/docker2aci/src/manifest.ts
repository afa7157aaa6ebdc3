// Docker/OCI image config + name → appc image manifests, by docker2aci's rules
// (lib/internal/internal.go GenerateManifestV22, GenerateACI22LowerLayer, convertPorts,
// convertVolumesToMPs, parseDockerUser; lib/docker2aci.go mergeManifests, stripLayerID). Pure.
import { posix } from "node:path";
import { parseImageManifestOrThrow, sanitizeACIdentifier, sanitizeACName } from "@rkt/appc";
import type { ImageManifest } from "@rkt/appc";
import { ErrorCode, RktError, type ContainerConfig, type ImageConfig } from "@rkt/oci";
import type { ImageNameInput } from "./input.js";
import { toAppcOsArch } from "./os-arch.js";

/** The appc version written into converted manifests (the spec rules this package follows). */
export const convertedAcVersion = "0.8.11";

/** The `appc.io/docker/*` annotation names docker2aci writes. */
export const DockerAnnotation = {
  OriginalName: "appc.io/docker/originalname",
  RegistryUrl: "appc.io/docker/registryurl",
  Repository: "appc.io/docker/repository",
  ImageId: "appc.io/docker/imageid",
  ManifestHash: "appc.io/docker/manifesthash",
  Entrypoint: "appc.io/docker/entrypoint",
  Cmd: "appc.io/docker/cmd",
} as const;

/** A manifest as written (JSON object, key order as appc marshals it). */
export interface ManifestJson {
  acKind: "ImageManifest";
  acVersion: string;
  name: string;
  labels?: { name: string; value: string }[];
  app?: AppJson;
  annotations?: { name: string; value: string }[];
  dependencies?: { imageName: string; imageID?: string; labels?: { name: string; value: string }[] }[];
  pathWhitelist?: string[];
}

/** The `app` section as written. */
export interface AppJson {
  exec?: string[];
  user: string;
  group: string;
  workingDirectory?: string;
  environment?: { name: string; value: string }[];
  mountPoints?: { name: string; path: string; readOnly: boolean }[];
  ports?: { name: string; protocol: string; port: number; count: number; socketActivated: boolean }[];
  userLabels?: Record<string, string>;
}

function bad(message: string): RktError {
  return new RktError(ErrorCode.InvalidManifest, `image config: ${message}`);
}

/** `User` → appc user/group: "" → 0/0, `u` → u/u, `u:g` → u/g (further `:` parts ignored). */
export function parseDockerUser(user: string | undefined): { user: string; group: string } {
  if (user === undefined || user === "") return { user: "0", group: "0" };
  const [u = "", g] = user.split(":");
  if (u === "") throw bad(`User ${JSON.stringify(user)} has no user part`);
  return { user: u, group: g === undefined || g === "" ? u : g };
}

/**
 * `Env` → appc environment: split at the first `=`; entries without `=` are dropped (docker2aci);
 * a repeated name keeps its first position and takes the last value.
 */
export function convertEnv(env: readonly string[] | undefined): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  const at = new Map<string, number>();
  for (const e of env ?? []) {
    const eq = e.indexOf("=");
    if (eq < 0) continue;
    const name = e.slice(0, eq);
    const value = e.slice(eq + 1);
    if (!/^[A-Za-z_][A-Za-z_0-9.-]*$/.test(name)) {
      throw bad(`Env ${JSON.stringify(e)}: appc environment names match [A-Za-z_][A-Za-z_0-9.-]*`);
    }
    const i = at.get(name);
    if (i === undefined) {
      at.set(name, out.length);
      out.push({ name, value });
    } else out[i] = { name, value };
  }
  return out;
}

/** `ExposedPorts` keys (`port[/proto]`, tcp by default) → appc ports named `<port>-<proto>`, sorted by name. */
export function convertPorts(exposed: Readonly<Record<string, object>> | undefined): AppJson["ports"] {
  const out: NonNullable<AppJson["ports"]> = [];
  for (const key of Object.keys(exposed ?? {})) {
    const slash = key.indexOf("/");
    const portText = slash < 0 ? key : key.slice(0, slash);
    const protocol = slash < 0 ? "tcp" : key.slice(slash + 1);
    if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw bad(`error parsing port ${JSON.stringify(portText)}: not a port number (1-65535)`);
    }
    if (protocol === "") throw bad(`port ${JSON.stringify(key)} has an empty protocol`);
    out.push({
      name: sanitizeACName(key),
      protocol,
      port: Number(portText),
      count: 1,
      socketActivated: false,
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `Volumes` → mount points named `volume-<path>` (collisions get `-1`, `-2`, …), sorted by name. */
export function convertVolumes(
  volumes: Readonly<Record<string, object>> | undefined,
): AppJson["mountPoints"] {
  const out: NonNullable<AppJson["mountPoints"]> = [];
  const used = new Set<string>();
  // Sorted paths, so the collision suffixes do not depend on key order.
  for (const path of Object.keys(volumes ?? {}).sort()) {
    const base = sanitizeACName(posix.join("volume", path));
    let name: string = base;
    for (let i = 1; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    out.push({ name, path, readOnly: false });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The app section from a container config (docker2aci writes one only when the config has `config`). */
export function convertApp(c: ContainerConfig): AppJson {
  const exec = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const app: AppJson = { ...(exec.length > 0 ? { exec } : {}), ...parseDockerUser(c.User) };
  if (c.WorkingDir !== undefined && c.WorkingDir !== "") {
    if (!c.WorkingDir.startsWith("/")) {
      throw bad(`WorkingDir ${JSON.stringify(c.WorkingDir)} is not absolute (appc needs an absolute path)`);
    }
    app.workingDirectory = c.WorkingDir;
  }
  const environment = convertEnv(c.Env);
  if (environment.length > 0) app.environment = environment;
  const mountPoints = convertVolumes(c.Volumes);
  if (mountPoints !== undefined && mountPoints.length > 0) app.mountPoints = mountPoints;
  const ports = convertPorts(c.ExposedPorts);
  if (ports !== undefined && ports.length > 0) app.ports = ports;
  if (c.Labels !== undefined && Object.keys(c.Labels).length > 0) app.userLabels = { ...c.Labels };
  return app;
}

/** The appc os/arch labels of an image config, or none when appc has no value for it. */
export function osArchLabels(config: Pick<ImageConfig, "os" | "architecture" | "variant">): {
  name: string;
  value: string;
}[] {
  const oa = toAppcOsArch(config.os, config.architecture, config.variant);
  return oa === undefined
    ? []
    : [
        { name: "arch", value: oa.arch },
        { name: "os", value: oa.os },
      ];
}

function joinName(name: ImageNameInput, suffix: string): string {
  const registry = name.registry ?? "";
  return sanitizeACIdentifier(`${registry === "" ? "" : `${registry}/`}${name.repository}${suffix}`);
}

/** The ACI name of a lower layer: `<registry>/<repository>-<digest with ":"→"-">`, sanitised. */
export function lowerLayerName(name: ImageNameInput, layerDigest: string): string {
  return joinName(name, `-${layerDigest.replace(":", "-")}`);
}

/** The ACI name of the top layer: `<registry>/<repository>-<digest>` sanitised (":" becomes "_"). */
export function topLayerName(name: ImageNameInput, layerDigest: string): string {
  return joinName(name, `-${layerDigest}`);
}

/** The squashed ACI name: the top layer's name without its last `-…` part (stripLayerID). */
export function squashedName(name: ImageNameInput): string {
  return joinName(name, "");
}

/** What {@link topManifest} needs besides the config. */
export interface TopManifestInput {
  readonly name: ImageNameInput;
  readonly config: ImageConfig;
  readonly topLayerDigest: string;
  readonly manifestHash: string;
}

function rfc3339(s: string): boolean {
  return (
    /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/.test(s) &&
    !Number.isNaN(Date.parse(s))
  );
}

/**
 * The annotations of the top layer (and of the squashed image), in docker2aci's order: `author`,
 * `created` (as in the config), `appc.io/docker/originalname`, `registryurl`, `repository`,
 * `imageid` (the top layer digest), `manifesthash`, `entrypoint`, `cmd` (JSON arrays). Empty
 * values are not written; a `created` that is not RFC 3339 is dropped (appc would refuse it).
 */
export function dockerAnnotations(t: TopManifestInput): { name: string; value: string }[] {
  const c = t.config.config;
  const pairs: [string, string | undefined][] = [
    ["author", t.config.author],
    ["created", t.config.created !== undefined && rfc3339(t.config.created) ? t.config.created : undefined],
    [DockerAnnotation.OriginalName, t.name.originalName],
    [DockerAnnotation.RegistryUrl, t.name.registry],
    [DockerAnnotation.Repository, t.name.repository],
    [DockerAnnotation.ImageId, t.topLayerDigest],
    [DockerAnnotation.ManifestHash, t.manifestHash],
    [DockerAnnotation.Entrypoint, c?.Entrypoint?.length ? JSON.stringify(c.Entrypoint) : undefined],
    [DockerAnnotation.Cmd, c?.Cmd?.length ? JSON.stringify(c.Cmd) : undefined],
  ];
  return pairs.flatMap(([name, value]) => (value === undefined || value === "" ? [] : [{ name, value }]));
}

/** Labels of the top layer and the squashed image: os/arch (appc values) and `version` = the tag. */
export function topLabels(t: Pick<TopManifestInput, "name" | "config">): { name: string; value: string }[] {
  const labels = osArchLabels(t.config);
  if (t.name.tag !== undefined && t.name.tag !== "") labels.push({ name: "version", value: t.name.tag });
  return labels.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The manifest of the squashed ACI: name, labels, app, annotations; no dependencies, no whitelist. */
export function squashedManifest(t: TopManifestInput): ManifestJson {
  const m: ManifestJson = {
    acKind: "ImageManifest",
    acVersion: convertedAcVersion,
    name: squashedName(t.name),
    labels: topLabels(t),
  };
  if (t.config.config !== undefined) m.app = convertApp(t.config.config);
  m.annotations = dockerAnnotations(t);
  return m;
}

/** A lower layer's manifest: its name and os/arch labels, and the cumulative path whitelist. */
export function lowerLayerManifest(
  name: ImageNameInput,
  config: ImageConfig,
  layerDigest: string,
  pathWhitelist: readonly string[],
): ManifestJson {
  return {
    acKind: "ImageManifest",
    acVersion: convertedAcVersion,
    name: lowerLayerName(name, layerDigest),
    labels: osArchLabels(config),
    ...(pathWhitelist.length > 0 ? { pathWhitelist: [...pathWhitelist] } : {}),
  };
}

/** The top layer's manifest: the squashed fields plus dependencies on every lower layer, base first. */
export function topLayerManifest(
  t: TopManifestInput,
  lower: readonly { manifest: ManifestJson; imageId: string }[],
  pathWhitelist: readonly string[],
): ManifestJson {
  const m = squashedManifest(t);
  const out: ManifestJson = { ...m, name: topLayerName(t.name, t.topLayerDigest) };
  if (lower.length > 0) {
    out.dependencies = lower.map((l) => ({
      imageName: l.manifest.name,
      imageID: l.imageId,
      ...(l.manifest.labels !== undefined && l.manifest.labels.length > 0
        ? { labels: l.manifest.labels }
        : {}),
    }));
  }
  if (pathWhitelist.length > 0) out.pathWhitelist = [...pathWhitelist];
  return out;
}

/** Serialises and validates a manifest (RKT_INVALID_MANIFEST with appc's reason). */
export function encodeManifest(m: ManifestJson): { bytes: Uint8Array; manifest: ImageManifest } {
  const bytes = new TextEncoder().encode(JSON.stringify(m));
  return { bytes, manifest: parseImageManifestOrThrow(bytes, `converted manifest of ${m.name}`).value };
}
