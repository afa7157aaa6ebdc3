// appc discovery over the network (appc discovery/discovery.go DiscoverACIEndpoints): the pure
// parts (prefixes, URLs, meta tags, templates) are @rkt/appc's.
import { discoverEndpoints, discoveryPrefixes, discoveryUrl, type AciEndpoint } from "@rkt/appc";
import { ErrorCode, RktError, isRktError } from "@rkt/oci";
import { discard } from "../registry/http.js";
import { readCapped } from "../registry/auth.js";
import type { AppcHttpClient } from "./http.js";
import type { AppcApp } from "./identity.js";

/** Largest discovery page read. */
export const maxDiscoveryBytes = 1 << 20;

/** Options of {@link discoverAci}. */
export interface DiscoverAciOptions {
  /** The discovery servers' port (appc's test hook); default 443 / 80. */
  readonly port?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Discovers where `app` is served: for each prefix of its name, longest first, GETs
 * `https://<prefix>?ac-discovery=1` (on a transport error or a status other than 200, and only
 * when the client allows plain http, `http://…` too) and expands the page's `ac-discovery`
 * templates with the name and labels. Returns every endpoint of the first prefix that yields any,
 * in document order. Throws RKT_NOT_FOUND `discovery failed for "<name>"` with each attempt in the
 * message, or RKT_ABORTED.
 */
export async function discoverAci(
  http: AppcHttpClient,
  app: AppcApp,
  o: DiscoverAciOptions = {},
): Promise<AciEndpoint[]> {
  const attempts: string[] = [];
  for (const prefix of discoveryPrefixes(app.name)) {
    for (const insecureHttp of http.insecureHttp ? [false, true] : [false]) {
      const url = discoveryUrl(prefix, { insecureHttp, port: o.port });
      let html: string;
      try {
        const res = await http.request(url, { signal: o.signal });
        if (res.status !== 200) {
          discard(res.body);
          throw new RktError(ErrorCode.Io, `expected a 200 OK got ${res.status}`);
        }
        html = (await readCapped(res.body, maxDiscoveryBytes, url)).toString("utf8");
      } catch (e) {
        if (isRktError(e, ErrorCode.Aborted)) throw e;
        attempts.push(`${url}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      const found = discoverEndpoints(html, { name: app.name, labels: app.labels }).aciEndpoints;
      if (found.length > 0) return found;
      attempts.push(`${url}: meta tag 'ac-discovery' not found on ${prefix}`);
      break;
    }
  }
  throw new RktError(
    ErrorCode.NotFound,
    `discovery failed for ${JSON.stringify(app.name)}: ${attempts.join("; ")}`,
  );
}
