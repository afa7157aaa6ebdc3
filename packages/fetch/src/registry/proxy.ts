// HTTP_PROXY / HTTPS_PROXY / NO_PROXY for registry traffic, through undici's EnvHttpProxyAgent
// (its NO_PROXY rules: host names, `.suffix` and `*.suffix`, `host:port`, `*` for none).
// Internal to the package.
import type { Dispatcher } from "undici";
import { ErrorCode, RktError } from "@rkt/oci";
import { undici } from "../undici.js";
import type { TlsConfig } from "./tls-config.js";

/** The proxy variables of an environment, normalised. */
export interface ProxySettings {
  /** For `http:` URLs; "" for none. */
  readonly httpProxy: string;
  /** For `https:` URLs; "" for none (then `httpProxy` serves both, as in undici and curl). */
  readonly httpsProxy: string;
  readonly noProxy: string;
}

function variable(env: Readonly<Record<string, string | undefined>>, name: string): string {
  // Lowercase first, as undici, curl and Go read them.
  return (env[name.toLowerCase()] ?? env[name] ?? "").trim();
}

/**
 * The proxies `env` asks for, or undefined when neither HTTP_PROXY nor HTTPS_PROXY (either case)
 * is set. A URL without a scheme means `http://` (Go's httpproxy). Throws RKT_INVALID_ARGUMENT
 * naming the variable for a value that is not an http, https or socks5 URL. Pure.
 */
export function proxyFromEnv(env: Readonly<Record<string, string | undefined>>): ProxySettings | undefined {
  const httpProxy = proxyUrl("HTTP_PROXY", variable(env, "HTTP_PROXY"));
  const httpsProxy = proxyUrl("HTTPS_PROXY", variable(env, "HTTPS_PROXY"));
  if (httpProxy === "" && httpsProxy === "") return undefined;
  return { httpProxy, httpsProxy, noProxy: variable(env, "NO_PROXY") };
}

function proxyUrl(name: string, value: string): string {
  if (value === "") return "";
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    // Unparsed, so hide a password by pattern.
    const shown = value.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:…@");
    throw new RktError(ErrorCode.InvalidArgument, `${name} ${JSON.stringify(shown)} is not a URL`);
  }
  if (!["http:", "https:", "socks5:", "socks:"].includes(u.protocol) || u.hostname === "") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${name} ${JSON.stringify(redactProxy(u))} is not an http, https or socks5 proxy URL`,
    );
  }
  return u.href;
}

/** A proxy URL without its password, for messages. */
export function redactProxy(u: URL): string {
  return u.password === "" ? u.href : u.href.replace(`:${u.password}@`, ":…@");
}

/**
 * An undici dispatcher sending each request through the proxy its URL's scheme calls for, or
 * directly when NO_PROXY matches. Registry TLS (`tls`) applies end to end through a CONNECT
 * tunnel; plain-http targets go as absolute-URI requests to an http proxy, which proxies
 * commonly allow where they refuse CONNECT to ports other than 443.
 */
export function proxyDispatcher(
  p: ProxySettings,
  tls: TlsConfig,
  agent: { connections: number; keepAliveTimeout: number },
): Dispatcher {
  const target = {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.secureContext === undefined ? {} : { secureContext: tls.secureContext }),
  };
  return new (undici().EnvHttpProxyAgent)({
    ...agent,
    // Explicit values, "" included: undici reads process.env for any it is not given.
    httpProxy: p.httpProxy,
    httpsProxy: p.httpsProxy,
    noProxy: p.noProxy,
    proxyTunnel: false,
    connect: target,
    requestTls: target,
  });
}
