// Registry clients as the image commands (copy, push, save, sync, convert) make them: given
// credentials first, then `--authfile`, then rkt's and docker's usual files; TLS relaxed by a
// `--*-tls-verify=false` or the global `--insecure-options`; certs.d or a `--*-cert-dir`.
import { resolve } from "node:path";
import type * as Fetch from "@rkt/fetch";
import type { CommandContext } from "../context.js";

/** One side's settings. */
export interface ClientSettings {
  readonly creds?: Fetch.BasicCredentials | undefined;
  /** containers auth.json to read first (`--authfile`). */
  readonly authfile?: string | undefined;
  /** False: plain HTTP or unverified TLS for this side. Default true. */
  readonly tlsVerify?: boolean | undefined;
  readonly certDir?: string | undefined;
}

/**
 * A factory of clients for `settings`; every client made is pushed to `opened`, for the caller
 * to close.
 */
export function registryClients(
  fetch: typeof Fetch,
  ctx: CommandContext,
  settings: ClientSettings,
  opened: Fetch.RegistryClient[],
): (registry: string) => Fetch.RegistryClient {
  const g = ctx.globals;
  const rktConfigDirs = [g.systemConfig, g.localConfig, ...(g.userConfig === "" ? [] : [g.userConfig])];
  const relax = settings.tlsVerify === false;
  return (registry) => {
    const providers: Fetch.CredentialsProvider[] = [];
    if (settings.creds !== undefined) providers.push(fetch.staticCredentials({ [registry]: settings.creds }));
    if (settings.authfile !== undefined) {
      const file = resolve(ctx.cwd, settings.authfile);
      providers.push(fetch.containersAuthCredentials({ env: { REGISTRY_AUTH_FILE: file } }));
    }
    providers.push(fetch.defaultCredentials({ env: ctx.env, rktConfigDirs }));
    const c = new fetch.RegistryClient(registry, {
      insecure: { http: g.insecure.http || relax, tls: g.insecure.tls || relax },
      credentials: fetch.chainCredentials(providers),
      env: ctx.env,
      ...(settings.certDir === undefined ? {} : { certDir: resolve(ctx.cwd, settings.certDir) }),
    });
    opened.push(c);
    return c;
  };
}

/** `USERNAME[:PASSWORD]` of a `--creds`-style flag; undefined when not given. */
export function parseCreds(
  s: string | undefined,
  flag: string,
  usageError: (m: string) => Error,
): Fetch.BasicCredentials | undefined {
  if (s === undefined) return undefined;
  const i = s.indexOf(":");
  if (i <= 0) throw usageError(`--${flag} wants USERNAME[:PASSWORD]`);
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}
