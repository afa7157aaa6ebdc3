// rkt's `auth.d` configuration for appc HTTP fetches (rkt/config, kind "auth" v1), the pure half:
// parsing one file and choosing the header for a request. Reading the directories is
// auth-files.ts's job.
//
//   {"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic",
//    "credentials":{"user":"bob","password":"secret"}}
//   {"rktKind":"auth","rktVersion":"v1","domains":["example.com:8443"],"type":"oauth",
//    "credentials":{"token":"sometoken"}}
import { ErrorCode, RktError } from "@rkt/oci";

/** One parsed `rktKind: "auth"` file: the hosts it applies to and the header it sends them. */
export interface AppcAuthConfig {
  /** Hosts as rkt compares them with a URL's `host` (`name` or `name:port`), lowercased. */
  readonly domains: readonly string[];
  readonly type: "basic" | "oauth";
  /** The `Authorization` value: `Basic <base64 user:password>` or `Bearer <token>`. */
  readonly authorization: string;
}

/** The `Authorization` value to send to each host (from {@link mergeAppcAuth}). */
export type AppcAuthMap = ReadonlyMap<string, string>;

function invalid(what: string, why: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, `${what}: ${why}`);
}

/**
 * Parses one `auth.d` file. Returns undefined for the other kinds that share the directory
 * (`dockerAuth`); throws RKT_INVALID_ARGUMENT naming `what` for a malformed `auth` file, an
 * unknown `type` (rkt: `unknown auth type`) or missing credentials. Pure.
 */
export function parseAppcAuth(json: unknown, what: string): AppcAuthConfig | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw invalid(what, "expected a JSON object");
  }
  const j = json as Record<string, unknown>;
  if (j["rktKind"] !== "auth") return undefined;
  if (j["rktVersion"] !== "v1") {
    throw invalid(what, `unsupported rktVersion ${JSON.stringify(j["rktVersion"])} (want "v1")`);
  }
  const domains = j["domains"];
  if (
    !Array.isArray(domains) ||
    domains.length === 0 ||
    !domains.every((d) => typeof d === "string" && d !== "")
  ) {
    throw invalid(what, `"domains" must be a non-empty list of host names`);
  }
  const c = j["credentials"];
  const creds = typeof c === "object" && c !== null ? (c as Record<string, unknown>) : undefined;
  const hosts = (domains as string[]).map((d) => d.toLowerCase());
  switch (j["type"]) {
    case "basic": {
      const user = creds?.["user"];
      const password = creds?.["password"];
      if (typeof user !== "string" || typeof password !== "string") {
        throw invalid(what, `basic auth needs string "credentials.user" and "credentials.password"`);
      }
      const token = Buffer.from(`${user}:${password}`, "utf8").toString("base64");
      return { domains: hosts, type: "basic", authorization: `Basic ${token}` };
    }
    case "oauth": {
      const token = creds?.["token"];
      if (typeof token !== "string" || token === "") {
        throw invalid(what, `oauth needs a string "credentials.token"`);
      }
      return { domains: hosts, type: "oauth", authorization: `Bearer ${token}` };
    }
    default:
      throw invalid(what, `unknown auth type ${JSON.stringify(j["type"])}`);
  }
}

/**
 * Merges the files of each configuration directory, in rkt's order (system, then local, then
 * user): a later directory overrides an earlier one per domain; within one directory a domain
 * configured twice is an error (rkt: `auth for domain "x" is already specified`). Pure.
 */
export function mergeAppcAuth(
  layers: readonly (readonly { readonly what: string; readonly config: AppcAuthConfig }[])[],
): AppcAuthMap {
  const out = new Map<string, string>();
  for (const layer of layers) {
    const seen = new Map<string, string>();
    for (const { what, config } of layer) {
      for (const d of config.domains) {
        const prior = seen.get(d);
        if (prior !== undefined) {
          throw invalid(what, `auth for domain ${JSON.stringify(d)} is already specified in ${prior}`);
        }
        seen.set(d, what);
        out.set(d, config.authorization);
      }
    }
  }
  return out;
}

/**
 * The `Authorization` value for a request to `url`, as rkt's `SignRequest`: only over https and
 * only when the URL's host (with its port when not the default) is a configured domain. Pure.
 */
export function authorizationFor(auth: AppcAuthMap, url: URL): string | undefined {
  if (url.protocol !== "https:") return undefined;
  return auth.get(url.host.toLowerCase());
}
