// The read-only distribution API as pure functions: a request target becomes a route or a
// registry error, a Range header becomes a byte range. No I/O, so every hostile input (traversal,
// bad digests, absurd ranges) is tested without a server.
import { isRktError, parseVerifiableDigest, type Digest } from "@rkt/oci";

/** The error codes this server answers with (distribution-spec, "Error Codes"). */
export type RegistryErrorCode =
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "MANIFEST_UNKNOWN"
  | "BLOB_UNKNOWN"
  | "DIGEST_INVALID"
  | "PAGINATION_NUMBER_INVALID"
  | "UNSUPPORTED"
  | "UNKNOWN";

/** A response the server gives without touching the store. */
export interface RouteError {
  readonly kind: "error";
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly message: string;
}

/** `n` and `last` of a tags or catalog listing. */
export interface Page {
  readonly n?: number | undefined;
  readonly last?: string | undefined;
}

/** What a request asks for. Names and references are already checked against their grammars. */
export type Route =
  | { readonly kind: "base" }
  | ({ readonly kind: "catalog" } & Page)
  | ({ readonly kind: "tags"; readonly name: string } & Page)
  | {
      readonly kind: "manifest";
      readonly name: string;
      readonly tag?: string | undefined;
      readonly digest?: Digest | undefined;
    }
  | { readonly kind: "blob"; readonly name: string; readonly digest: Digest }
  | RouteError;

/** A registry error route. Pure. */
export function routeError(status: number, code: RegistryErrorCode, message: string): RouteError {
  return { kind: "error", status, code, message };
}

// distribution's reference grammar: path components are lowercase alphanumerics joined by
// separators. The first component may also be a registry host with a port (the full
// `ORIGIN/app` form this server accepts beside `app`). Neither admits ".", "..", "%" or "".
const hostComponent = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$/;
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagGrammar = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const maxNameLength = 255;
/** The largest page a listing returns, asked for or not. */
export const maxPage = 10_000;

/** True when `name` is a repository name this server can hold. Pure. */
export function isRepositoryName(name: string): boolean {
  if (name.length === 0 || name.length > maxNameLength) return false;
  const parts = name.split("/");
  return parts.every(
    (p, i) => pathComponent.test(p) || (i === 0 && parts.length > 1 && hostComponent.test(p)),
  );
}

/** True when `tag` is a valid tag. Pure. */
export function isTag(tag: string): boolean {
  return tagGrammar.test(tag);
}

function parsePage(query: URLSearchParams): Page | RouteError {
  const n = query.get("n");
  const last = query.get("last");
  let size: number | undefined;
  if (n !== null) {
    if (!/^[0-9]{1,9}$/.test(n))
      return routeError(400, "PAGINATION_NUMBER_INVALID", `invalid n ${JSON.stringify(n)}`);
    size = Math.min(Number(n), maxPage);
  }
  return { n: size, last: last ?? undefined };
}

/**
 * The route of a GET or HEAD request target (`req.url`: the raw origin-form path and query).
 * The path is matched as sent, never percent-decoded or normalised (a WHATWG URL would turn
 * `/v2/a/%2e%2e/x` into `/v2/x`), so nothing a client encodes can reach another name. Pure.
 */
export function parseRoute(target: string): Route {
  if (!target.startsWith("/")) return routeError(400, "UNSUPPORTED", "request target must be a path");
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : target.slice(q + 1));
  if (path === "/v2" || path === "/v2/") return { kind: "base" };
  if (!path.startsWith("/v2/")) return routeError(404, "UNSUPPORTED", `no such endpoint ${path}`);
  const rest = path.slice(4);
  if (rest === "_catalog") {
    const page = parsePage(query);
    return "kind" in page ? page : { kind: "catalog", ...page };
  }
  if (rest.endsWith("/tags/list")) {
    const name = rest.slice(0, -"/tags/list".length);
    if (!isRepositoryName(name)) return nameInvalid(name);
    const page = parsePage(query);
    return "kind" in page ? page : { kind: "tags", name, ...page };
  }
  for (const kind of ["manifests", "blobs"] as const) {
    const at = rest.lastIndexOf(`/${kind}/`);
    if (at < 0) continue;
    const name = rest.slice(0, at);
    const ref = rest.slice(at + kind.length + 2);
    if (ref.includes("/")) break; // e.g. blobs/uploads/<id>: the write API
    if (!isRepositoryName(name)) return nameInvalid(name);
    if (kind === "manifests" && !ref.includes(":")) {
      return isTag(ref)
        ? { kind: "manifest", name, tag: ref }
        : routeError(404, "MANIFEST_UNKNOWN", `manifest unknown: invalid tag ${JSON.stringify(ref)}`);
    }
    const digest = digestOf(ref);
    if (typeof digest !== "string") return digest;
    return kind === "manifests" ? { kind: "manifest", name, digest } : { kind: "blob", name, digest };
  }
  return routeError(404, "UNSUPPORTED", `no such endpoint ${path}`);
}

function nameInvalid(name: string): RouteError {
  return routeError(400, "NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`);
}

// The store holds only content it verified, so a digest it cannot compute is refused as the
// distribution registry refuses it: 400 DIGEST_INVALID ("unsupported algorithm").
function digestOf(ref: string): Digest | RouteError {
  try {
    return parseVerifiableDigest(ref);
  } catch (e) {
    return routeError(
      400,
      "DIGEST_INVALID",
      isRktError(e) ? e.message : `invalid digest ${JSON.stringify(ref)}`,
    );
  }
}

/** What to send of a blob of `size` bytes. `end` is inclusive, as in Content-Range. */
export type ByteRange =
  | { readonly kind: "full" }
  | { readonly kind: "partial"; readonly start: number; readonly end: number }
  | { readonly kind: "unsatisfiable" };

// More digits than any safe integer has: the number is "beyond the blob" whatever it is, and is
// never converted (a 10 kB header of digits costs nothing).
const maxDigits = 15;
function toOffset(s: string): number {
  return s.length > maxDigits ? Number.POSITIVE_INFINITY : Number(s);
}

/**
 * The part of a `size`-byte blob a `Range` header asks for (RFC 9110 §14). One `bytes=a-b`,
 * `bytes=a-` or `bytes=-n` range is honoured (206); a range starting at or beyond the end, a zero
 * suffix, or `a > b` is unsatisfiable (416, as the distribution conformance suite expects). Other
 * units, malformed headers and multi-range requests are ignored (RFC 9110 lets a server send the
 * whole representation, and clients resume with one range). Pure.
 */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return { kind: "full" };
  // Split by hand: a regex with optional spaces around optional digits backtracks quadratically
  // on a header of spaces (found by test/fuzz: a second of CPU per 16 kB request).
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return { kind: "full" };
  const spec = header.slice(eq + 1);
  const dash = spec.indexOf("-");
  if (dash < 0) return { kind: "full" };
  const a = spec.slice(0, dash).trim();
  const b = spec.slice(dash + 1).trim();
  if (!/^[0-9]*$/.test(a) || !/^[0-9]*$/.test(b)) return { kind: "full" };
  if (a === "" && b === "") return { kind: "full" };
  if (a === "") {
    const n = toOffset(b);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = toOffset(a);
  const end = b === "" ? size - 1 : toOffset(b);
  if (start >= size || start > end) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end: Math.min(end, size - 1) };
}
