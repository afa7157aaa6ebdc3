// Registry authentication (distribution auth/token.md, auth/oauth.md): Bearer tokens from the
// realm a challenge names, cached per (realm, service, scope) until shortly before expiry, and
// Basic. Credentials go to the registry and to its token realm only over TLS. Internal.
import type { Readable } from "node:stream";
import { ErrorCode, RktError } from "@rkt/oci";
import type { Challenge } from "./challenge.js";
import { isIdentityToken, type Credentials, type CredentialsProvider } from "./credentials.js";
import { RetryBudget, discard, errorFrom, networkError, redact, send, type Resolved } from "./http.js";

interface CachedToken {
  readonly header: string;
  readonly expiresAt: number;
}

/** distribution's client raises shorter lifetimes to 60 s; renew this long before the end. */
const minTokenLifetimeS = 60;
const renewMarginMs = 10_000;
const maxTokenBodyBytes = 1 << 20;

export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>();
  // The registry's last challenge, so that a new scope gets its token before the first request.
  private challenge: Challenge | undefined;
  // Looked up once per repository (auth files may hold per-repository entries).
  private readonly credentials = new Map<string, Promise<Credentials | undefined>>();
  // Extra scopes a 401 challenge asked for, per the scope of the request that got it.
  private readonly challengeScopes = new Map<string, string[]>();

  private readonly http: Resolved;
  /** `docker.io`, `127.0.0.1:5000`: the name credentials are stored under. */
  private readonly registry: string;
  /** The registry's API origin: `https://registry-1.docker.io`. */
  private readonly origin: () => string;
  private readonly provider: CredentialsProvider | undefined;

  constructor(
    http: Resolved,
    registry: string,
    origin: () => string,
    provider: CredentialsProvider | undefined,
  ) {
    this.http = http;
    this.registry = registry;
    this.origin = origin;
    this.provider = provider;
  }

  /**
   * Remembers a challenge from a ping or a 401 (bearer or basic). The `scope` a 401 names is kept
   * only for requests needing `forScope`, so that one repository's scope never leaks into the
   * token requests of another.
   */
  learn(challenges: readonly Challenge[], forScope?: string): void {
    const c = challenges.find((x) => x.scheme === "bearer") ?? challenges.find((x) => x.scheme === "basic");
    if (c === undefined) return;
    const { scope, ...params } = c.params;
    this.challenge = { scheme: c.scheme, params };
    if (forScope !== undefined && scope !== undefined) {
      this.challengeScopes.set(
        forScope,
        scope.split(" ").filter((x) => x !== ""),
      );
    }
  }

  /** True once the registry asked for authentication. */
  get knowsChallenge(): boolean {
    return this.challenge !== undefined;
  }

  /** Drops the cached token of `scope` (after the registry rejected it). */
  forget(scope: string): void {
    for (const k of this.tokens.keys()) if (k.endsWith(` ${scope}`)) this.tokens.delete(k);
  }

  private creds(repository: string | undefined): Promise<Credentials | undefined> {
    // Credentials never travel over plain HTTP, so an http registry never even looks them up.
    if (this.provider === undefined || !this.origin().startsWith("https:")) return Promise.resolve(undefined);
    const key = repository ?? "";
    let p = this.credentials.get(key);
    if (p === undefined) {
      p = this.provider.credentialsFor(this.registry, repository);
      this.credentials.set(key, p);
    }
    return p;
  }

  /**
   * The `Authorization` value for a request needing `scope`, or undefined when the registry has
   * not asked for any (or it is anonymous Basic). May request a token (network).
   */
  async authorization(
    scope: string,
    repository: string | undefined,
    signal: AbortSignal | undefined,
    extraScopes: readonly string[] = [],
  ): Promise<string | undefined> {
    const c = this.challenge;
    if (c === undefined) return undefined;
    if (c.scheme === "basic") {
      const cr = await this.creds(repository);
      if (cr === undefined || isIdentityToken(cr)) return undefined;
      return `Basic ${Buffer.from(`${cr.username}:${cr.password}`).toString("base64")}`;
    }
    if (c.scheme !== "bearer") return undefined;
    const realm = c.params["realm"];
    if (realm === undefined) {
      throw new RktError(ErrorCode.Unauthorized, `${this.registry}: Bearer challenge without a realm`);
    }
    const service = c.params["service"] ?? "";
    // The challenge's own scope (from a 401) says exactly what the registry wants; add ours.
    const scopes = mergeScopes([scope, ...extraScopes, ...(this.challengeScopes.get(scope) ?? [])]);
    const key = `${realm} ${service} ${scopes.join(" ")}`;
    const cached = this.tokens.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.header;
    const token = await this.fetchToken(realm, service, scopes, repository, signal);
    this.tokens.set(key, token);
    // Index also under the bare scope so that later calls with the same scope hit the cache.
    if (scopes.length > 1) this.tokens.set(`${realm} ${service} ${scope}`, token);
    return token.header;
  }

  private async fetchToken(
    realmText: string,
    service: string,
    scopes: readonly string[],
    repository: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw new RktError(
        ErrorCode.Unauthorized,
        `${this.registry}: token realm ${JSON.stringify(realmText)} is not a URL`,
      );
    }
    if (realm.protocol !== "https:" && !(realm.protocol === "http:" && this.http.insecureHttp)) {
      throw new RktError(
        ErrorCode.Unauthorized,
        `${this.registry}: refusing token realm ${redact(realm)} (plain http; allow with --insecure-options=http)`,
      );
    }
    const cr = await this.creds(repository);
    // Credentials go to the realm only over TLS; over http we ask for an anonymous token.
    const usable = realm.protocol === "https:" ? cr : undefined;
    const what = `token for ${this.registry} from ${redact(realm)}`;
    const budget = new RetryBudget(this.http, signal);
    for (;;) {
      try {
        return await this.requestToken(realm, service, scopes, usable, what, signal);
      } catch (e) {
        const err = networkError(e, what, signal);
        if (!(await budget.next(err))) throw err;
      }
    }
  }

  private async requestToken(
    realm: URL,
    service: string,
    scopes: readonly string[],
    cr: Credentials | undefined,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    const url = new URL(realm);
    let method: "GET" | "POST" = "GET";
    let body: string | undefined;
    const headers: Record<string, string> = { accept: "application/json" };
    let authorization: string | undefined;
    if (cr !== undefined && isIdentityToken(cr)) {
      // OAuth2 refresh-token grant (auth/oauth.md).
      method = "POST";
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: cr.identityToken,
        service,
        client_id: "rkt",
      });
      form.set("scope", scopes.join(" "));
      body = form.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service !== "") url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      if (cr !== undefined) {
        url.searchParams.set("account", cr.username);
        authorization = `Basic ${Buffer.from(`${cr.username}:${cr.password}`).toString("base64")}`;
      }
    }
    const res = await send(this.http, {
      method,
      url,
      headers,
      authorization,
      authOrigin: realm.origin,
      body,
      signal,
      what,
    });
    if (res.status !== 200) throw await errorFrom(res, what);
    const text = (await readCapped(res.body, maxTokenBodyBytes, what)).toString("utf8");
    let j: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      j = JSON.parse(text) as typeof j;
    } catch {
      throw new RktError(ErrorCode.Unauthorized, `${what}: response is not JSON`);
    }
    // distribution's own client prefers access_token when both are present.
    const token = typeof j.access_token === "string" && j.access_token !== "" ? j.access_token : j.token;
    if (typeof token !== "string" || token === "") {
      throw new RktError(ErrorCode.Unauthorized, `${what}: response has neither "token" nor "access_token"`);
    }
    const lifetimeS = Math.max(minTokenLifetimeS, typeof j.expires_in === "number" ? j.expires_in : 0);
    const issued = typeof j.issued_at === "string" ? Date.parse(j.issued_at) : Number.NaN;
    // A server clock far from ours would make issued_at meaningless; trust it only when close.
    const from = Number.isNaN(issued) || Math.abs(issued - Date.now()) > 5 * 60_000 ? Date.now() : issued;
    return { header: `Bearer ${token}`, expiresAt: from + lifetimeS * 1000 - renewMarginMs };
  }
}

/** Reads a small body fully, failing with RKT_TOO_LARGE past `max` bytes. Always consumes or destroys it. */
export async function readCapped(body: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      discard(body);
      throw new RktError(ErrorCode.TooLarge, `${what}: response larger than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/**
 * Merges scopes naming the same resource (`repository:a:pull` + `repository:a:push,pull` ->
 * `repository:a:pull,push`), sorted, so that equal needs give one token request and one cache
 * key. The resource name may contain colons (host:port), so the actions follow the last one.
 */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of scopes) {
    const last = s.lastIndexOf(":");
    if (last <= 0 || s.indexOf(":") === last) {
      byResource.set(s, byResource.get(s) ?? new Set());
      continue;
    }
    const resource = s.slice(0, last);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const a of s.slice(last + 1).split(",")) if (a !== "") actions.add(a);
    byResource.set(resource, actions);
  }
  return [...byResource].map(([r, a]) => (a.size === 0 ? r : `${r}:${[...a].sort().join(",")}`)).sort();
}
