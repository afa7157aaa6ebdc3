// A registry v2 / OCI distribution client for one registry (distribution-spec, pull side):
// ping, authentication, manifests by tag or digest with platform selection, and verified blob
// streams with retries, redirects and Range resume. What to store, and when, is the caller's
// business (the pull orchestration); this layer only moves and verifies bytes.
import { Readable } from "node:stream";
import {
  type BlobProgress,
  DigestMismatchError,
  ErrorCode,
  RktError,
  SizeMismatchError,
  createDigester,
  verifiableAlgorithm,
  digestOf,
  hostPlatform,
  isVerifiableDigest,
  isIndexType,
  isManifestType,
  isRktError,
  isSchema1,
  manifestAcceptTypes,
  normalizeMediaType,
  parseVerifiableDigest,
  parseManifestOrIndexOrThrow,
  refuseSchema1,
  registryApiHost,
  selectPlatform,
  type Abortable,
  type Descriptor,
  type Digest,
  type Digester,
  type ImageDocument,
  type Index,
  type Manifest,
  type Platform,
} from "@rkt/oci";
import { parseContentRange } from "../content-range.js";
import { Authenticator, readCapped } from "./auth.js";
import { parseWwwAuthenticate, pullScope, pushScope, type Challenge } from "./challenge.js";
import type { CredentialsProvider } from "./credentials.js";
import { RegistryError } from "./errors.js";
import {
  RetryBudget,
  discard,
  errorFrom,
  header,
  networkError,
  resolveHttpOptions,
  send,
  type HttpOptions,
  type Resolved,
  type Response,
  isCertificateFailure,
} from "./http.js";

/** Default cap on a manifest or index: registries must accept 4 MB, so nothing valid is larger. */
export const defaultMaxManifestBytes = 4 * 1024 * 1024;

// distribution-spec: repository name and tag grammars.
const repositoryGrammar =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagGrammar = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions extends HttpOptions {
  /** Where credentials come from; none means anonymous (public pulls, anonymous tokens). */
  readonly credentials?: CredentialsProvider | undefined;
  /** Refuse manifests and indexes larger than this (bytes); default {@link defaultMaxManifestBytes}. */
  readonly maxManifestBytes?: number | undefined;
}

/** What {@link RegistryClient.ping} learnt. */
export interface PingResult {
  /** `https:` or `http:` (the latter only with `insecure.http`). */
  readonly scheme: "https:" | "http:";
  /** The challenges of a 401 answer; empty when the registry serves anonymous requests. */
  readonly challenges: readonly Challenge[];
}

/** A manifest or index as fetched: exact bytes, their descriptor and the parsed document. */
export interface FetchedManifest {
  /** Digest over `raw` (the requested digest when fetched by digest), `size` = `raw.length`. */
  readonly descriptor: Descriptor;
  /** The bytes exactly as served; store these, never a re-serialisation. */
  readonly raw: Uint8Array;
  readonly document: ImageDocument;
}

/** The outcome of {@link RegistryClient.getImage}: the image manifest for one platform. */
export interface RegistryImage {
  /** The platform's image manifest (fetched by digest and verified against the index entry). */
  readonly manifest: FetchedManifest;
  readonly parsed: Manifest;
  /** The index or manifest list the tag pointed at, when it was one (outermost). */
  readonly index?: FetchedManifest | undefined;
  /** The index entry chosen, when there was an index. */
  readonly selected?: Descriptor | undefined;
}

/** Options of {@link RegistryClient.getManifest}. */
export interface GetManifestOptions extends Abortable {
  /** The descriptor that referenced this manifest: its size and mediaType must match too. */
  readonly expected?: Descriptor | undefined;
}

/** Options of {@link RegistryClient.getImage}. */
export interface GetImageOptions extends Abortable {
  /** The platform to select from an index; default the host's ({@link hostPlatform}). */
  readonly platform?: Platform | undefined;
}

// One progress event type for every operation (pulls included): @rkt/oci's.
export type { BlobProgress };

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions extends Abortable {
  /** A repository of the same registry that may hold the blob: try a cross-repository mount. */
  readonly mountFrom?: string | undefined;
  /** Upload in `PATCH` chunks of at most this many bytes instead of one `PUT`. */
  readonly chunkSize?: number | undefined;
  /** The caller has just seen the blob missing (a `HEAD`): do not ask again. */
  readonly knownMissing?: boolean | undefined;
}

// Re-cuts a stream into buffers of exactly `size` bytes (the last one shorter).
async function* chunks(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of src as AsyncIterable<Buffer>) {
    let rest = c;
    while (have + rest.length >= size) {
      const take = size - have;
      parts.push(rest.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      have = 0;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      parts.push(rest);
      have += rest.length;
    }
  }
  if (have > 0) yield Buffer.concat(parts);
}

/** Options of {@link RegistryClient.fetchBlob}. */
export interface FetchBlobOptions extends Abortable {
  /**
   * Bytes of the blob the caller already holds (a resumable ingest). The stream then starts at
   * this offset; `digester` must carry the hash state of exactly those bytes.
   */
  readonly offset?: number | undefined;
  /** Hash state of the first `offset` bytes (e.g. the store re-hashed its partial ingest). */
  readonly digester?: Digester | undefined;
  readonly onProgress?: ((p: BlobProgress) => void) | undefined;
}

interface RequestSpec extends Abortable {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH";
  /** A path on the registry, or an absolute URL (an upload's Location). */
  readonly path: string | URL;
  /** A stream body is sent once: no retry, no re-send after a 401. */
  readonly body?: string | Uint8Array | Readable | undefined;
  /** Scopes needed besides `scope` (a cross-repository mount's source). */
  readonly extraScopes?: readonly string[] | undefined;
  readonly repository: string;
  readonly scope: string;
  readonly headers?: Record<string, string> | undefined;
  readonly what: string;
  /** Statuses that are not errors (default 200). */
  readonly ok?: readonly number[] | undefined;
  /** A manifest or blob body: read through undici (see `SendOptions.bulk` in http.ts). */
  readonly bulk?: boolean | undefined;
}

/**
 * Talks to one registry (`docker.io`, `quay.io`, `127.0.0.1:5000`) over a shared keep-alive
 * connection pool. HTTPS only unless `insecure.http` (then HTTPS is tried first, as docker and
 * containers-image do); certificates verified unless `insecure.tls`. Credentials, from the
 * provider, go only to this registry's API origin and its token realm, only over TLS, and never
 * along a redirect to another host. Idempotent requests retry 408/429/5xx and connection failures
 * with exponential backoff and jitter, honouring `Retry-After`, within `retry` bounds.
 *
 * Networking as skopeo and podman: `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (from `env`) route
 * every request; TLS trusts the machine's CA bundle plus `caPem` plus the registry's certs.d
 * directory (`*.crt`), whose `*.cert`/`*.key` pairs are presented as client certificates; the
 * registry's settings apply to all of the client's connections (token realm and redirects too).
 *
 * Errors: {@link RegistryError} for HTTP failures (RKT_UNAUTHORIZED, RKT_NOT_FOUND, RKT_REGISTRY),
 * RKT_REGISTRY (temporary) for network failures and stalls, RKT_DIGEST_MISMATCH /
 * RKT_SIZE_MISMATCH for wrong content, RKT_TOO_LARGE, RKT_UNSUPPORTED_MEDIA_TYPE (schema1),
 * RKT_NO_MATCHING_PLATFORM, RKT_ABORTED, RKT_INVALID_REFERENCE for bad names.
 *
 * Call {@link close} when done (it closes the connection pool the client created).
 */
/** A tag list page is read whole; distribution's pages of 1000 tags are far below this. */
const maxTagListBytes = 4 << 20;
const maxTagPages = 100;

export class RegistryClient {
  /** The registry as users name it (`docker.io`). */
  readonly registry: string;
  /** The host serving its API (`registry-1.docker.io`). */
  readonly apiHost: string;
  private readonly http: Resolved;
  private readonly auth: Authenticator;
  private readonly maxManifestBytes: number;
  private scheme: Promise<"https:" | "http:"> | undefined;
  private schemeKnown: "https:" | "http:" | undefined;
  private supportsSignatures: Promise<boolean> | undefined;

  constructor(registry: string, o: RegistryClientOptions = {}) {
    if (!/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:.]+\](?::\d+)?$/.test(registry)) {
      throw new RktError(
        ErrorCode.InvalidReference,
        `registry ${JSON.stringify(registry)} is not a host[:port]`,
      );
    }
    this.registry = registry;
    this.apiHost = registryApiHost(registry);
    this.http = resolveHttpOptions(o, registry);
    this.maxManifestBytes = o.maxManifestBytes ?? defaultMaxManifestBytes;
    this.auth = new Authenticator(
      this.http,
      registry,
      () => `${this.schemeKnown ?? "https:"}//${this.apiHost}`,
      o.credentials,
    );
    if (!this.http.insecureHttp) this.schemeKnown = "https:";
  }

  /** Closes the connection pool (when the client created it). Pending requests fail. */
  async close(): Promise<void> {
    await this.http.close();
  }

  private origin(scheme: "https:" | "http:"): string {
    return `${scheme}//${this.apiHost}`;
  }

  // With insecure http allowed, try HTTPS once and fall back to HTTP on a connection-level failure.
  private resolveScheme(signal: AbortSignal | undefined): Promise<"https:" | "http:"> {
    if (this.schemeKnown !== undefined) return Promise.resolve(this.schemeKnown);
    this.scheme ??= (async () => {
      try {
        const res = await send(this.http, {
          method: "GET",
          url: new URL(`${this.origin("https:")}/v2/`),
          headers: {},
          authOrigin: this.origin("https:"),
          signal,
          what: `ping ${this.registry}`,
        });
        await res.body.dump();
        return "https:" as const;
      } catch (e) {
        // A certificate we refuse means the port speaks TLS: say so, rather than try plain http
        // there and report the registry's "HTTP 400".
        if (signal?.aborted === true || isCertificateFailure(e))
          throw networkError(e, `ping ${this.registry}`, signal);
        return "http:" as const;
      }
    })().then(
      (s) => (this.schemeKnown = s),
      (e: unknown) => {
        this.scheme = undefined;
        throw e;
      },
    );
    return this.scheme;
  }

  /**
   * `GET /v2/`: checks the registry speaks the v2 API and learns its authentication challenge
   * (so that later requests get their token without a 401 round trip). Optional: every other
   * method handles a 401 itself. Throws a {@link RegistryError} for answers other than 200/401.
   */
  async ping(o: Abortable = {}): Promise<PingResult> {
    const scheme = await this.resolveScheme(o.signal);
    const what = `ping ${this.registry}`;
    const budget = new RetryBudget(this.http, o.signal);
    for (;;) {
      let res: Response;
      try {
        res = await send(this.http, {
          method: "GET",
          url: new URL(`${this.origin(scheme)}/v2/`),
          headers: {},
          authOrigin: this.origin(scheme),
          signal: o.signal,
          what,
        });
      } catch (e) {
        const err = networkError(e, what, o.signal);
        if (await budget.next(err)) continue;
        throw err;
      }
      if (res.status === 200 || res.status === 401) {
        const challenges = parseWwwAuthenticate(res.headers["www-authenticate"]);
        await res.body.dump();
        this.auth.learn(challenges);
        return { scheme, challenges };
      }
      const err = await errorFrom(res, `${what}: not a v2 registry`);
      if (await budget.next(err)) continue;
      throw err;
    }
  }

  // One idempotent request with authentication (one re-try after a 401 challenge) and retries.
  private async request(spec: RequestSpec): Promise<Response> {
    const ok = spec.ok ?? [200];
    const once = spec.body instanceof Readable;
    const budget = new RetryBudget(this.http, spec.signal);
    let challenged = once;
    for (;;) {
      try {
        const scheme = await this.resolveScheme(spec.signal);
        const authorization = await this.auth.authorization(
          spec.scope,
          spec.repository,
          spec.signal,
          spec.extraScopes,
        );
        const res = await send(this.http, {
          method: spec.method,
          url: spec.path instanceof URL ? spec.path : new URL(`${this.origin(scheme)}${spec.path}`),
          headers: spec.headers ?? {},
          body: spec.body,
          authorization,
          authOrigin: this.origin(scheme),
          signal: spec.signal,
          what: spec.what,
          bulk: spec.bulk,
        });
        if (res.status === 401 && !challenged) {
          const challenges = parseWwwAuthenticate(res.headers["www-authenticate"]);
          if (challenges.length > 0) {
            await res.body.dump();
            challenged = true;
            if (authorization !== undefined) this.auth.forget(spec.scope);
            this.auth.learn(challenges, spec.scope);
            continue;
          }
        }
        if (ok.includes(res.status)) return res;
        const err = await errorFrom(res, spec.what);
        if (err.status === 401 && scheme === "http:" && this.auth.knowsChallenge) {
          throw new RegistryError(
            `${spec.what} (credentials are never sent over plain http)`,
            err.status,
            err.diagnostics,
          );
        }
        throw err;
      } catch (e) {
        const err = networkError(e, spec.what, spec.signal);
        if (!once && (await budget.next(err))) continue;
        throw err;
      }
    }
  }

  private checkNames(repository: string, reference: string): { digest?: Digest | undefined } {
    if (!repositoryGrammar.test(repository) || repository.length > 255) {
      throw new RktError(
        ErrorCode.InvalidReference,
        `repository ${JSON.stringify(repository)} is not a valid name`,
      );
    }
    if (reference.includes(":")) return { digest: parseVerifiableDigest(reference) };
    if (!tagGrammar.test(reference)) {
      throw new RktError(ErrorCode.InvalidReference, `tag ${JSON.stringify(reference)} is not a valid tag`);
    }
    return {};
  }

  private name(repository: string, reference: string): string {
    return `${this.registry}/${repository}${reference.includes(":") ? "@" : ":"}${reference}`;
  }

  /**
   * Turns a tag (or digest) into the manifest's descriptor with one `HEAD` (which registries
   * do not count against pull rate limits); falls back to a verified `GET` when the answer lacks
   * `Docker-Content-Digest` or `Content-Type`. Network: yes. Throws as the class says.
   */
  async resolve(repository: string, reference: string, o: Abortable = {}): Promise<Descriptor> {
    const { digest } = this.checkNames(repository, reference);
    const what = `manifest ${this.name(repository, reference)}`;
    const res = await this.request({
      method: "HEAD",
      path: `/v2/${repository}/manifests/${reference}`,
      repository,
      scope: pullScope(repository),
      headers: { accept: manifestAcceptTypes.join(", ") },
      signal: o.signal,
      what,
    });
    await res.body.dump();
    const type = normalizeMediaType(header(res.headers, "content-type") ?? "");
    refuseSchema1(type, what);
    const length = Number(header(res.headers, "content-length") ?? Number.NaN);
    const hd = header(res.headers, "docker-content-digest");
    if (Number.isSafeInteger(length) && length > this.maxManifestBytes) {
      throw new RktError(
        ErrorCode.TooLarge,
        `${what}: ${length} bytes is over the ${this.maxManifestBytes}-byte manifest limit`,
      );
    }
    const known = isManifestType(type) || isIndexType(type);
    if (
      hd !== undefined &&
      isVerifiableDigest(hd) &&
      known &&
      Number.isSafeInteger(length) &&
      (digest === undefined || hd === digest)
    ) {
      return { mediaType: type, digest: hd, size: length };
    }
    return (await this.getManifest(repository, reference, o)).descriptor;
  }

  /**
   * Every tag of `repository` (`GET /v2/<name>/tags/list`, following `Link: <…>; rel="next"`
   * pages, at most `maxTagPages` of them), in the registry's order. RKT_NOT_FOUND for an unknown
   * repository. Network: yes.
   */
  async listTags(repository: string, o: Abortable = {}): Promise<string[]> {
    this.checkNames(repository, "latest");
    const what = `tags of ${this.registry}/${repository}`;
    const tags: string[] = [];
    let path: string | URL = `/v2/${repository}/tags/list?n=1000`;
    for (let page = 0; page < maxTagPages; page++) {
      const res = await this.request({
        method: "GET",
        path,
        repository,
        scope: pullScope(repository),
        signal: o.signal,
        what,
      });
      const body = await readCapped(res.body, maxTagListBytes, what).catch((e: unknown) => {
        throw networkError(e, what, o.signal);
      });
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString("utf8"));
      } catch {
        throw new RktError(ErrorCode.Registry, `${what}: the tag list is not JSON`);
      }
      const list = (doc as { tags?: unknown }).tags;
      if (list !== null && list !== undefined) {
        if (!Array.isArray(list) || !list.every((t) => typeof t === "string"))
          throw new RktError(ErrorCode.Registry, `${what}: "tags" is not a list of strings`);
        tags.push(...list);
      }
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res.headers, "link") ?? "")?.[1];
      if (next === undefined) return tags;
      // A relative link is relative to the registry (distribution sends `/v2/…?last=…`).
      path = next.startsWith("/") ? next : new URL(next);
    }
    throw new RktError(ErrorCode.Registry, `${what}: more than ${maxTagPages} pages of tags`);
  }

  /**
   * `GET` a manifest or index by tag or digest, with `Accept` for the OCI and Docker schema2
   * types (never schema1). The body is capped at `maxManifestBytes` (RKT_TOO_LARGE), verified
   * against the requested digest (or, by tag, against `Docker-Content-Digest` when sent), and
   * parsed (schema1 refused with RKT_UNSUPPORTED_MEDIA_TYPE). With `expected`, size and mediaType
   * must match the referencing descriptor too. Network: yes.
   */
  async getManifest(
    repository: string,
    reference: string,
    o: GetManifestOptions = {},
  ): Promise<FetchedManifest> {
    const { digest } = this.checkNames(repository, reference);
    const what = `manifest ${this.name(repository, reference)}`;
    // A body cut short (reset, early close, stall) is asked for again, as a failure before the
    // headers is: the document is small and the request idempotent.
    const budget = new RetryBudget(this.http, o.signal);
    let res: Response;
    let type: string;
    let raw: Buffer;
    for (;;) {
      res = await this.request({
        method: "GET",
        path: `/v2/${repository}/manifests/${reference}`,
        repository,
        scope: pullScope(repository),
        headers: { accept: manifestAcceptTypes.join(", ") },
        signal: o.signal,
        what,
        bulk: true,
      });
      type = normalizeMediaType(header(res.headers, "content-type") ?? "");
      const length = Number(header(res.headers, "content-length") ?? Number.NaN);
      if (isSchema1(type) || (Number.isSafeInteger(length) && length > this.maxManifestBytes)) {
        discard(res.body);
        refuseSchema1(type, what);
        throw new RktError(
          ErrorCode.TooLarge,
          `${what}: ${length} bytes is over the ${this.maxManifestBytes}-byte manifest limit`,
        );
      }
      try {
        raw = await readCapped(res.body, this.maxManifestBytes, what);
        break;
      } catch (e) {
        if (isRktError(e, ErrorCode.TooLarge)) {
          throw new RktError(
            ErrorCode.TooLarge,
            `${what}: over the ${this.maxManifestBytes}-byte manifest limit`,
          );
        }
        const err = networkError(e, what, o.signal);
        if (await budget.next(err)) continue;
        throw err;
      }
    }
    if (digest !== undefined) {
      const actual = digestOf(raw, verifiableAlgorithm(digest));
      if (actual !== digest) throw new DigestMismatchError(what, digest, actual, raw.length);
    }
    const hd = header(res.headers, "docker-content-digest");
    // A header digest of an algorithm we cannot compute says nothing we can check; ours stands.
    if (hd !== undefined && isVerifiableDigest(hd)) {
      const actual = digestOf(raw, verifiableAlgorithm(hd));
      if (actual !== hd)
        throw new DigestMismatchError(`${what} (Docker-Content-Digest)`, hd, actual, raw.length);
    }
    const hint = isManifestType(type) || isIndexType(type) ? type : undefined;
    const { value: document } = parseManifestOrIndexOrThrow(raw, hint, what);
    const own = document.kind === "manifest" ? document.manifest.mediaType : document.index.mediaType;
    const mediaType =
      own ??
      hint ??
      (document.kind === "index"
        ? "application/vnd.oci.image.index.v1+json"
        : "application/vnd.oci.image.manifest.v1+json");
    const descriptor: Descriptor = { mediaType, digest: digest ?? digestOf(raw), size: raw.length };
    const ex = o.expected;
    if (ex !== undefined) {
      if (ex.digest !== descriptor.digest)
        throw new DigestMismatchError(what, ex.digest, descriptor.digest, raw.length);
      if (ex.size !== raw.length) throw new SizeMismatchError(what, ex.size, raw.length);
      if (normalizeMediaType(ex.mediaType) !== normalizeMediaType(mediaType)) {
        throw new RktError(
          ErrorCode.InvalidManifest,
          `${what}: mediaType ${mediaType} differs from the index entry's ${ex.mediaType}`,
        );
      }
    }
    return { descriptor, raw: new Uint8Array(raw.buffer, raw.byteOffset, raw.length), document };
  }

  /**
   * The image manifest of `reference` for one platform: when the reference names an index or
   * manifest list, picks the entry for `platform` (host by default; RKT_NO_MATCHING_PLATFORM
   * naming what is on offer) and fetches it by digest, verified against the entry. Nested
   * indexes are followed (at most 4 levels). Network: yes.
   */
  async getImage(repository: string, reference: string, o: GetImageOptions = {}): Promise<RegistryImage> {
    const top = await this.getManifest(repository, reference, o);
    if (top.document.kind === "manifest") return { manifest: top, parsed: top.document.manifest };
    const want = o.platform ?? hostPlatform();
    let index: Index = top.document.index;
    for (let depth = 0; depth < 4; depth++) {
      const chosen = selectPlatform(index.manifests, want, `${this.name(repository, reference)}`);
      const child = await this.getManifest(repository, chosen.digest, { signal: o.signal, expected: chosen });
      if (child.document.kind === "manifest") {
        return { manifest: child, parsed: child.document.manifest, index: top, selected: chosen };
      }
      index = child.document.index;
    }
    throw new RktError(
      ErrorCode.InvalidManifest,
      `${this.name(repository, reference)}: indexes nested more than 4 deep`,
    );
  }

  /**
   * `HEAD` a blob: its descriptor (size from `Content-Length`) when present, undefined on 404.
   * Network: yes.
   */
  async statBlob(
    repository: string,
    digest: Digest,
    o: Abortable & { forPush?: boolean | undefined } = {},
  ): Promise<Descriptor | undefined> {
    this.checkNames(repository, digest);
    const what = `blob ${this.registry}/${repository}@${digest}`;
    try {
      const res = await this.request({
        method: "HEAD",
        path: `/v2/${repository}/blobs/${digest}`,
        repository,
        // A pusher asks with the push scope: one token for the whole push.
        scope: o.forPush === true ? pushScope(repository) : pullScope(repository),
        // A push loads undici for its uploads anyway; its HEADs share that pool.
        bulk: o.forPush === true,
        signal: o.signal,
        what,
      });
      await res.body.dump();
      const size = Number(header(res.headers, "content-length") ?? Number.NaN);
      return { mediaType: "application/octet-stream", digest, size: Number.isSafeInteger(size) ? size : -1 };
    } catch (e) {
      if (e instanceof RegistryError && e.status === 404) return undefined;
      throw e;
    }
  }

  /**
   * The simple-signing signatures the registry holds for a manifest through the signatures
   * extension (`X-Registry-Supports-Signatures: 1` on `/v2/`, then `GET
   * /extensions/v2/<repo>/signatures/<digest>`, containers/image docker_image_src.go): the blobs in
   * order, or undefined when the registry does not announce the extension (the distribution
   * registry does not). Bodies are capped at 4 MiB. Network: two requests the first time.
   */
  async getSignatures(
    repository: string,
    digest: Digest,
    o: Abortable = {},
  ): Promise<Uint8Array[] | undefined> {
    this.checkNames(repository, digest);
    if (!(await this.signaturesSupported(o))) return undefined;
    const { maxSignatureBytes, parseRegistrySignatures, registrySignaturesPath } = await import("@rkt/trust");
    const path = registrySignaturesPath(repository, digest);
    const what = `signatures ${this.registry}/${repository}@${digest}`;
    const res = await this.request({
      method: "GET",
      path,
      repository,
      scope: pullScope(repository),
      signal: o.signal,
      what,
      ok: [200, 404],
    });
    if (res.status === 404) {
      await res.body.dump();
      return [];
    }
    return parseRegistrySignatures(await readCapped(res.body, maxSignatureBytes, what), what);
  }

  /**
   * Whether the registry announces the signatures extension (`X-Registry-Supports-Signatures: 1`
   * on `/v2/`); asked once per client. Network: one ping.
   */
  async signaturesSupported(o: Abortable = {}): Promise<boolean> {
    this.supportsSignatures ??= (async () => {
      const scheme = await this.resolveScheme(o.signal);
      const res = await send(this.http, {
        method: "GET",
        url: new URL(`${this.origin(scheme)}/v2/`),
        headers: {},
        authOrigin: this.origin(scheme),
        signal: o.signal,
        what: `ping ${this.registry}`,
      });
      await res.body.dump();
      return header(res.headers, "x-registry-supports-signatures") === "1";
    })();
    return this.supportsSignatures;
  }

  /**
   * Adds one simple-signing signature of `repository@digest` through the signatures extension
   * (`PUT /extensions/v2/<repo>/signatures/<digest>`, as containers/image writes it). False when
   * the registry does not announce the extension; RegistryError when it refuses.
   */
  async putSignature(
    repository: string,
    digest: Digest,
    signature: Uint8Array,
    o: Abortable = {},
  ): Promise<boolean> {
    this.checkNames(repository, digest);
    if (!(await this.signaturesSupported(o))) return false;
    const { formatRegistrySignature, registrySignaturesPath } = await import("@rkt/trust");
    const body = formatRegistrySignature(digest, signature);
    const res = await this.request({
      method: "PUT",
      path: registrySignaturesPath(repository, digest),
      repository,
      scope: pushScope(repository),
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      body,
      ok: [200, 201, 204],
      signal: o.signal,
      what: `signature ${this.registry}/${repository}@${digest}`,
    });
    await res.body.dump();
    return true;
  }

  /**
   * Streams a blob, verified: the stream fails (RKT_DIGEST_MISMATCH / RKT_SIZE_MISMATCH) at its
   * end if the bytes do not hash to `desc.digest` or their count is not `desc.size` (and as soon
   * as they exceed it). Consumers must not trust the bytes before the stream ended cleanly.
   *
   * The first request is made before this resolves, so 401/404 reject here. Redirects to blob
   * storage are followed without the registry's `Authorization`. A connection reset, a stall
   * (no bytes for `stallTimeoutMs`) or a truncated body mid-stream resumes with
   * `Range: bytes=<received>-` (re-asking the registry, not an expired storage URL), within the
   * retry bounds; a server ignoring Range (200) has the already-received prefix skipped.
   *
   * Resuming an ingest across runs: pass `offset` (bytes held) and `digester` (their hash
   * state); the stream yields bytes from `offset` on and the final check covers the whole blob.
   * Destroying the returned stream releases the connection.
   */
  async fetchBlob(repository: string, desc: Descriptor, o: FetchBlobOptions = {}): Promise<Readable> {
    this.checkNames(repository, desc.digest);
    const what = `blob ${desc.digest} from ${this.registry}/${repository}`;
    const offset = o.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new RktError(ErrorCode.InvalidArgument, `${what}: offset ${offset} outside 0..${desc.size}`);
    }
    if (offset > 0 && o.digester?.bytes !== offset) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `${what}: resuming at ${offset} needs the digester of exactly those ${offset} bytes`,
      );
    }
    const digester = o.digester ?? createDigester(verifiableAlgorithm(desc.digest));
    const signal = o.signal;
    let pos = offset;

    const open = async (): Promise<{ res: Response; skip: number } | undefined> => {
      if (pos === desc.size) return undefined;
      let res: Response;
      try {
        res = await this.request({
          method: "GET",
          path: `/v2/${repository}/blobs/${desc.digest}`,
          repository,
          scope: pullScope(repository),
          headers: pos > 0 ? { range: `bytes=${pos}-` } : {},
          ok: [200, 206],
          signal,
          what,
          bulk: true,
        });
      } catch (e) {
        // The registry has fewer bytes than the descriptor claims.
        if (e instanceof RegistryError && e.status === 416) throw new SizeMismatchError(what, desc.size, pos);
        throw e;
      }
      if (res.status === 206) {
        const cr = parseContentRange(header(res.headers, "content-range"));
        if (cr === undefined || cr.start !== pos) {
          discard(res.body);
          throw new RktError(
            ErrorCode.Registry,
            `${what}: asked for bytes ${pos}-, got Content-Range ${JSON.stringify(header(res.headers, "content-range"))}`,
          );
        }
        if (cr.total !== undefined && cr.total !== desc.size) {
          discard(res.body);
          throw new SizeMismatchError(what, desc.size, cr.total);
        }
        return { res, skip: 0 };
      }
      const length = Number(header(res.headers, "content-length") ?? Number.NaN);
      if (Number.isSafeInteger(length) && length !== desc.size) {
        discard(res.body);
        throw new SizeMismatchError(what, desc.size, length);
      }
      // A 200 to a Range request is the whole blob: drop what we already have.
      return { res, skip: pos };
    };

    let current = await open();
    const onProgress = o.onProgress;
    const budget = new RetryBudget(this.http, signal);
    async function* body(): AsyncGenerator<Buffer> {
      try {
        while (current !== undefined) {
          const c: { res: Response; skip: number } = current;
          try {
            for await (const raw of c.res.body as AsyncIterable<Buffer>) {
              let chunk = raw;
              if (c.skip > 0) {
                const drop = Math.min(c.skip, chunk.length);
                c.skip -= drop;
                chunk = chunk.subarray(drop);
                if (chunk.length === 0) continue;
              }
              if (pos + chunk.length > desc.size) {
                throw new SizeMismatchError(what, desc.size, pos + chunk.length);
              }
              pos += chunk.length;
              digester.update(chunk);
              onProgress?.({ digest: desc.digest, bytes: pos, total: desc.size });
              yield chunk;
            }
            if (pos < desc.size) {
              throw new RktError(
                ErrorCode.Registry,
                `${what}: body ended after ${pos} of ${desc.size} bytes`,
                {
                  temporary: true,
                },
              );
            }
            current = undefined;
          } catch (e) {
            discard(c.res.body);
            current = undefined;
            const err = networkError(e, what, signal);
            if (!(await budget.next(err))) {
              if (err.code === ErrorCode.Registry && pos < desc.size && /body ended/.test(err.message)) {
                throw new SizeMismatchError(
                  `${what} (truncated after ${budget.count} attempts)`,
                  desc.size,
                  pos,
                );
              }
              throw err;
            }
            current = await open();
          }
        }
        const actual = digester.digest();
        if (actual !== desc.digest) throw new DigestMismatchError(what, desc.digest, actual, pos);
      } finally {
        if (current !== undefined) discard(current.res.body);
      }
    }
    return Readable.from(body(), { objectMode: false, highWaterMark: 1 << 16 });
  }

  /**
   * Uploads a blob unless the repository has it: `HEAD` first, then a cross-repository mount
   * when `mountFrom` names a repository of this registry that has it, else an upload session
   * (`POST`) finished by one `PUT` of the whole body (monolithic) or, with `chunkSize`, `PATCH`es
   * of at most that many bytes then a closing `PUT`. `open` is called at most once, only when
   * bytes must be sent; its stream must yield exactly `desc.size` bytes (the registry verifies
   * the digest and answers 400 DIGEST_INVALID otherwise). Upload bodies are not retried.
   * Resolves how the blob got there. Network: yes; needs push access.
   */
  async pushBlob(
    repository: string,
    desc: Descriptor,
    open: () => Readable | Promise<Readable>,
    o: PushBlobOptions = {},
  ): Promise<"exists" | "mounted" | "uploaded"> {
    this.checkNames(repository, desc.digest);
    if (o.mountFrom !== undefined) this.checkNames(o.mountFrom, desc.digest);
    const what = `blob ${desc.digest} to ${this.registry}/${repository}`;
    const scope = pushScope(repository);
    if (o.knownMissing !== true) {
      const head = await this.request({
        method: "HEAD",
        path: `/v2/${repository}/blobs/${desc.digest}`,
        repository,
        scope,
        ok: [200, 404],
        signal: o.signal,
        what,
      });
      await head.body.dump();
      if (head.status === 200) return "exists";
    }
    const mount = o.mountFrom !== undefined && o.mountFrom !== repository ? o.mountFrom : undefined;
    const query =
      mount === undefined
        ? ""
        : `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mount)}`;
    const started = await this.request({
      method: "POST",
      path: `/v2/${repository}/blobs/uploads/${query}`,
      repository,
      scope,
      extraScopes: mount === undefined ? [] : [pullScope(mount)],
      headers: { "content-length": "0" },
      body: "",
      ok: [201, 202],
      signal: o.signal,
      what,
    });
    await started.body.dump();
    if (started.status === 201) return "mounted";
    let location = this.uploadLocation(started, what);
    const src = await open();
    try {
      const chunkSize = o.chunkSize;
      if (chunkSize === undefined || desc.size <= chunkSize) {
        location.searchParams.set("digest", desc.digest);
        const res = await this.request({
          method: "PUT",
          path: location,
          repository,
          scope,
          headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
          body: src,
          ok: [201],
          signal: o.signal,
          what,
        });
        await res.body.dump();
        return "uploaded";
      }
      let offset = 0;
      for await (const chunk of chunks(src, chunkSize)) {
        const res = await this.request({
          method: "PATCH",
          path: location,
          repository,
          scope,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(chunk.length),
            "content-range": `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
          ok: [202],
          signal: o.signal,
          what,
        });
        await res.body.dump();
        offset += chunk.length;
        location = this.uploadLocation(res, what);
      }
      if (offset !== desc.size) throw new SizeMismatchError(what, desc.size, offset);
      location.searchParams.set("digest", desc.digest);
      const res = await this.request({
        method: "PUT",
        path: location,
        repository,
        scope,
        headers: { "content-length": "0" },
        body: "",
        ok: [201],
        signal: o.signal,
        what,
      });
      await res.body.dump();
      return "uploaded";
    } finally {
      if (!src.destroyed) src.destroy();
    }
  }

  private uploadLocation(res: Response, what: string): URL {
    const loc = header(res.headers, "location");
    if (loc === undefined)
      throw new RktError(ErrorCode.Registry, `${what}: upload answer without a Location`);
    return new URL(loc, res.url);
  }

  /**
   * `PUT`s a manifest or index under `reference` (a tag, or its own digest) with its media type
   * as Content-Type; every blob it references must already be in the repository
   * (MANIFEST_BLOB_UNKNOWN otherwise). Checks the registry's `Docker-Content-Digest` against the
   * bytes. Resolves the manifest's descriptor. Network: yes; needs push access.
   */
  async pushManifest(
    repository: string,
    reference: string,
    raw: Uint8Array,
    mediaType: string,
    o: Abortable = {},
  ): Promise<Descriptor> {
    const { digest } = this.checkNames(repository, reference);
    const what = `manifest ${this.name(repository, reference)}`;
    const actual = digestOf(raw, digest === undefined ? "sha256" : verifiableAlgorithm(digest));
    if (digest !== undefined && actual !== digest)
      throw new DigestMismatchError(what, digest, actual, raw.length);
    if (raw.length > this.maxManifestBytes) {
      throw new RktError(
        ErrorCode.TooLarge,
        `${what}: ${raw.length} bytes is over the ${this.maxManifestBytes}-byte manifest limit`,
      );
    }
    const res = await this.request({
      method: "PUT",
      path: `/v2/${repository}/manifests/${reference}`,
      repository,
      scope: pushScope(repository),
      headers: { "content-type": mediaType, "content-length": String(raw.length) },
      body: raw,
      ok: [201],
      signal: o.signal,
      what,
    });
    await res.body.dump();
    const hd = header(res.headers, "docker-content-digest");
    if (hd !== undefined && isVerifiableDigest(hd) && hd !== digestOf(raw, verifiableAlgorithm(hd))) {
      throw new DigestMismatchError(
        `${what} (Docker-Content-Digest)`,
        hd,
        digestOf(raw, verifiableAlgorithm(hd)),
        raw.length,
      );
    }
    return { mediaType, digest: actual, size: raw.length };
  }
}
