// Image references as `rkt fetch` accepts them: docker registry references (distribution's
// reference grammar, rkt's `docker:`/`docker://` prefixes), skopeo-style local transports
// (`oci:`, `oci-archive:`, `docker-archive:`), and rkt's appc classification of everything else
// (rkt `DistFromImageString` / `guessAppcOrPath`). Pure: no file system access.
import { parseVerifiableDigest, type Digest } from "./digest.js";
import { ErrorCode, RktError, isRktError } from "./errors.js";

/** The default registry of names without one, as users and docker write it. */
export const dockerHubRegistry = "docker.io";
/** The host that actually serves Docker Hub's registry API. */
export const dockerHubApiHost = "registry-1.docker.io";

/** A registry reference: `docker://[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]`, normalised. */
export interface DockerRef {
  readonly transport: "docker";
  /** `docker.io` for Docker Hub (aliases `index.docker.io`, `registry-1.docker.io` fold into it). */
  readonly registry: string;
  /** Lowercase path, `library/` added for Docker Hub names without a slash. */
  readonly repository: string;
  /** `latest` when neither tag nor digest was given; kept beside a digest when both were. */
  readonly tag?: string | undefined;
  /** When present, what to pull (the tag is then informational). */
  readonly digest?: Digest | undefined;
  /** The input exactly as typed (rkt records `docker://<raw>`). */
  readonly raw: string;
}

/** An OCI image layout directory (`oci:DIR[:REF]`) or tar archive of one (`oci-archive:FILE[:REF]`). */
export interface OciLayoutRef {
  readonly transport: "oci" | "oci-archive";
  readonly path: string;
  /** Matched against `org.opencontainers.image.ref.name` in `index.json`. */
  readonly ref?: string | undefined;
  /** `@N`: the N-th entry of `index.json` `manifests` (0-based). */
  readonly index?: number | undefined;
  readonly raw: string;
}

/** A `docker save` archive: `docker-archive:FILE[:NAME[:TAG] | :@DIGEST | :@N]`. */
export interface DockerArchiveRef {
  readonly transport: "docker-archive";
  readonly path: string;
  /** A `RepoTags` entry to select, normalised like a registry reference. */
  readonly ref?: DockerRef | undefined;
  /** Select the image whose config digest (image ID) this is. */
  readonly digest?: Digest | undefined;
  /** `@N`: the N-th entry of `manifest.json` (0-based). */
  readonly index?: number | undefined;
  readonly raw: string;
}

/** An appc image name (`example.com/app[:version][,label=value...]`); the appc package parses it. */
export interface AppcNameRef {
  readonly transport: "appc-name";
  readonly raw: string;
}

/** A local ACI file; `path` is as given (relative paths are the caller's to resolve). */
export interface FileRef {
  readonly transport: "file";
  readonly path: string;
  readonly raw: string;
}

/** An ACI over http(s); the URL path ends in `.aci`. */
export interface HttpRef {
  readonly transport: "http";
  readonly url: string;
  readonly raw: string;
}

/** Any image argument, discriminated by `transport`. */
export type ImageRef = DockerRef | OciLayoutRef | DockerArchiveRef | AppcNameRef | FileRef | HttpRef;

/** Options of {@link parseImageRef}. */
export interface ParseImageRefOptions {
  /**
   * Whether a scheme-less, relative argument names an existing regular file (rkt stats it). This
   * module does no I/O, so the caller supplies the check; without it such arguments are names.
   */
  isFile?: ((path: string) => boolean) | undefined;
}

const dockerSyntax = "expected [REGISTRY_HOST[:PORT]/]NAME[:TAG][@DIGEST]";

function invalid(raw: string, reason: string, cause?: unknown): never {
  throw new RktError(
    ErrorCode.InvalidReference,
    `invalid image reference ${JSON.stringify(raw)}: ${reason}`,
    {
      cause,
    },
  );
}

// distribution/reference regexp.go
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainRe = new RegExp(
  `^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]+)?$`,
);
const pathComponentRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagRe = /^[\w][\w.-]{0,127}$/;
const maxNameLength = 255;
const hubAliases = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/**
 * Parses a registry reference without a transport prefix, normalised as docker does:
 * `busybox` -> `docker.io/library/busybox:latest`; the first path component is a registry when it
 * contains `.` or `:`, is `localhost`, or has uppercase letters. Throws RKT_INVALID_REFERENCE
 * naming the reason (empty, uppercase repository, bad tag, bad digest, too long). Pure.
 */
export function parseDockerReference(s: string, raw = s): DockerRef {
  if (s === "") invalid(raw, `empty reference; ${dockerSyntax}`);
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = parseVerifiableDigest(d);
    } catch (e) {
      if (!isRktError(e)) throw e;
      invalid(raw, e.message, e);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon !== -1 && !rest.slice(colon + 1).includes("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === "") invalid(raw, `empty tag; ${dockerSyntax}`);
    if (!tagRe.test(tag)) {
      invalid(raw, `invalid tag ${JSON.stringify(tag)}: letters, digits, _ . - (not first), at most 128`);
    }
  }
  if (rest === "") invalid(raw, `empty repository name; ${dockerSyntax}`);
  let registry = dockerHubRegistry;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!domainRe.test(registry)) invalid(raw, `invalid registry host ${JSON.stringify(registry)}`);
    }
  }
  if (hubAliases.has(registry.toLowerCase())) {
    registry = dockerHubRegistry;
    if (!repository.includes("/")) repository = `library/${repository}`;
  }
  if (repository.toLowerCase() !== repository) invalid(raw, "repository name must be lowercase");
  for (const c of repository.split("/")) {
    if (!pathComponentRe.test(c)) {
      invalid(
        raw,
        c === ""
          ? "repository name has an empty path component"
          : `invalid repository path component ${JSON.stringify(c)}: lowercase letters and digits, separated by . _ __ or -`,
      );
    }
  }
  if (registry.length + 1 + repository.length > maxNameLength) {
    invalid(raw, `repository name must not be more than ${maxNameLength} characters`);
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return {
    transport: "docker",
    registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
    raw,
  };
}

/** The host serving a registry's API: Docker Hub's `docker.io` is served by `registry-1.docker.io`. */
export function registryApiHost(registry: string): string {
  return registry === dockerHubRegistry ? dockerHubApiHost : registry;
}

/** `registry/repository[:tag][@digest]`, the fully qualified form docker prints with `--no-trunc`. */
export function formatDockerReference(r: Omit<DockerRef, "transport" | "raw">): string {
  return (
    `${r.registry}/${r.repository}` +
    (r.tag === undefined ? "" : `:${r.tag}`) +
    (r.digest === undefined ? "" : `@${r.digest}`)
  );
}

// annotations.md ref.name: component ("/" component)*; alphanum (separator alphanum)*.
const refNameRe =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

// `@N` selects by position.
function sourceIndex(raw: string, s: string): number | undefined {
  if (!/^@\d+$/.test(s)) return undefined;
  const n = Number(s.slice(1));
  if (!Number.isSafeInteger(n)) invalid(raw, `index ${s} is too large`);
  return n;
}

// containers/image splits `transport:PATH[:REF]` at the first colon after the transport, so the
// path cannot contain ":".
function splitPath(raw: string, rest: string, transport: string): { path: string; ref: string | undefined } {
  const colon = rest.indexOf(":");
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const ref = colon === -1 ? undefined : rest.slice(colon + 1);
  if (path === "") invalid(raw, `${transport}: needs a path`);
  if (ref === "")
    invalid(raw, `empty reference after the path; use ${transport}:PATH or ${transport}:PATH:REF`);
  return { path, ref };
}

function parseOciLayoutRef(raw: string, transport: "oci" | "oci-archive", rest: string): OciLayoutRef {
  const { path, ref } = splitPath(raw, rest, transport);
  if (ref === undefined) return { transport, path, raw };
  const index = sourceIndex(raw, ref);
  if (index !== undefined) return { transport, path, index, raw };
  if (!refNameRe.test(ref)) {
    invalid(raw, `invalid reference name ${JSON.stringify(ref)} (org.opencontainers.image.ref.name grammar)`);
  }
  return { transport, path, ref, raw };
}

function parseDockerArchiveRef(raw: string, rest: string): DockerArchiveRef {
  const { path, ref } = splitPath(raw, rest, "docker-archive");
  if (ref === undefined) return { transport: "docker-archive", path, raw };
  const index = sourceIndex(raw, ref);
  if (index !== undefined) return { transport: "docker-archive", path, index, raw };
  if (ref.startsWith("@")) {
    try {
      return { transport: "docker-archive", path, digest: parseVerifiableDigest(ref.slice(1)), raw };
    } catch (e) {
      if (!isRktError(e)) throw e;
      invalid(raw, e.message, e);
    }
  }
  const named = parseDockerReference(ref, raw);
  if (named.digest !== undefined)
    invalid(raw, "docker-archive selects by NAME:TAG, @DIGEST or @N, not NAME@DIGEST");
  return { transport: "docker-archive", path, ref: named, raw };
}

const schemeRe = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Classifies and parses an image argument as `rkt fetch` does:
 * - `docker://REF` and `docker:REF`: a registry reference ({@link parseDockerReference});
 * - `oci:DIR[:REF|:@N]`, `oci-archive:FILE[:REF|:@N]`, `docker-archive:FILE[:NAME:TAG|:@DIGEST|:@N]`;
 * - `file://…` and `http(s)://…`: accepted only when the path ends in `.aci` (rkt's rule);
 * - no scheme: an absolute path, a path containing `./`, a name ending in `.aci`, or (when
 *   `o.isFile` says so) an existing file is a file; anything else, including names with a colon
 *   or an unknown scheme (`my-app:v1.0`), is an appc name.
 * Throws RKT_INVALID_REFERENCE naming the argument and the reason; never throws anything else. Pure.
 */
export function parseImageRef(s: string, o: ParseImageRefOptions = {}): ImageRef {
  if (s.trim() === "") invalid(s, "empty image argument");
  const scheme = schemeRe.exec(s)?.[1];
  if (scheme === undefined) return guessAppcOrPath(s, o);
  const rest = s.slice(scheme.length + 1);
  switch (scheme.toLowerCase()) {
    case "docker":
      return parseDockerReference(rest.startsWith("//") ? rest.slice(2) : rest, s);
    case "oci":
      return parseOciLayoutRef(s, "oci", rest);
    case "oci-archive":
      return parseOciLayoutRef(s, "oci-archive", rest);
    case "docker-archive":
      return parseDockerArchiveRef(s, rest);
    case "file":
    case "http":
    case "https":
      return parseAciUrl(s, scheme.toLowerCase());
    case "cimd":
      return invalid(s, "cimd: distribution URIs are internal to rkt and not accepted here");
    default:
      return { transport: "appc-name", raw: s };
  }
}

function parseAciUrl(s: string, scheme: string): FileRef | HttpRef {
  let u: URL;
  try {
    u = new URL(s);
  } catch (e) {
    return invalid(s, "not a valid URL", e);
  }
  if (!u.pathname.endsWith(".aci")) invalid(s, "URLs must name an .aci file");
  if (scheme !== "file") {
    if (u.hostname === "") invalid(s, "URL has no host");
    return { transport: "http", url: u.href, raw: s };
  }
  if (u.hostname !== "" && u.hostname !== "localhost") invalid(s, "file URLs must not name a host");
  let path: string;
  try {
    path = decodeURIComponent(u.pathname);
  } catch (e) {
    return invalid(s, "bad percent-encoding in the file URL", e);
  }
  return { transport: "file", path, raw: s };
}

function guessAppcOrPath(s: string, o: ParseImageRefOptions): FileRef | AppcNameRef {
  const file: FileRef = { transport: "file", path: s, raw: s };
  if (s.startsWith("/")) return file;
  if (o.isFile?.(s) === true) return file;
  if (s.includes(":")) return { transport: "appc-name", raw: s };
  if (s.includes("./") || s.endsWith(".aci")) return file;
  return { transport: "appc-name", raw: s };
}

/**
 * Formats a reference so that {@link parseImageRef} reads it back to the same value (up to `raw`):
 * `docker://registry/repository[:tag][@digest]`, `oci:DIR[:REF|:@N]`, …; file and appc references
 * give back what was typed, and http references their normalised URL.
 */
export function formatImageRef(r: ImageRef): string {
  switch (r.transport) {
    case "docker":
      return `docker://${formatDockerReference(r)}`;
    case "oci":
    case "oci-archive":
      return `${r.transport}:${r.path}${r.ref !== undefined ? `:${r.ref}` : r.index !== undefined ? `:@${r.index}` : ""}`;
    case "docker-archive": {
      const sel =
        r.ref !== undefined
          ? `:${formatDockerReference(r.ref)}`
          : r.digest !== undefined
            ? `:@${r.digest}`
            : r.index !== undefined
              ? `:@${r.index}`
              : "";
      return `docker-archive:${r.path}${sel}`;
    }
    case "file":
      return r.raw;
    case "http":
      return r.url;
    case "appc-name":
      return r.raw;
  }
}
