// Registry error responses (distribution-spec "Error codes") as typed errors.
import { ErrorCode, RktError } from "@rkt/oci";

/** One entry of a registry's `{"errors":[...]}` body. */
export interface RegistryDiagnostic {
  /** Uppercase code such as `MANIFEST_UNKNOWN`; `UNKNOWN` when the body did not say. */
  readonly code: string;
  readonly message?: string | undefined;
  readonly detail?: unknown;
}

/** The most bytes of an error body we read (ggcr transport.Error does the same). */
export const maxErrorBodyBytes = 64 * 1024;

const notFoundCodes = new Set(["MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"]);
const temporaryCodes = new Set(["TOOMANYREQUESTS", "UNAVAILABLE"]);

/**
 * A non-success HTTP answer from a registry (or from a token server or blob storage it redirected
 * to). `code` is RKT_UNAUTHORIZED for 401/403, RKT_NOT_FOUND for 404 (and for the not-found
 * registry codes), RKT_REGISTRY otherwise. `temporary` is true for 408, 429 and 5xx other than 501,
 * or when the registry says `TOOMANYREQUESTS`/`UNAVAILABLE` (ggcr `Temporary()`): retrying may help.
 */
export class RegistryError extends RktError {
  readonly status: number;
  readonly diagnostics: readonly RegistryDiagnostic[];
  /** The `Retry-After` delay in milliseconds, when the server sent one. */
  readonly retryAfterMs: number | undefined;
  constructor(
    what: string,
    status: number,
    diagnostics: readonly RegistryDiagnostic[],
    o: { retryAfterMs?: number | undefined; cause?: unknown } = {},
  ) {
    const temporary =
      status === 408 ||
      status === 429 ||
      (status >= 500 && status !== 501 && status !== 505) ||
      diagnostics.some((d) => temporaryCodes.has(d.code));
    const code =
      status === 401 || status === 403
        ? ErrorCode.Unauthorized
        : status === 404 || diagnostics.some((d) => notFoundCodes.has(d.code))
          ? ErrorCode.NotFound
          : ErrorCode.Registry;
    super(code, `${what}: ${describe(status, diagnostics)}`, { temporary, cause: o.cause });
    this.name = "RegistryError";
    this.status = status;
    this.diagnostics = diagnostics;
    this.retryAfterMs = o.retryAfterMs;
  }
}

function describe(status: number, diagnostics: readonly RegistryDiagnostic[]): string {
  const parts = diagnostics.map((d) =>
    d.message === undefined || d.message === "" ? d.code : `${d.code}: ${d.message}`,
  );
  return parts.length === 0 ? `HTTP ${status}` : `HTTP ${status} (${parts.join("; ")})`;
}

/**
 * Reads the diagnostics out of an error body (at most {@link maxErrorBodyBytes} already read by
 * the caller). Non-JSON bodies (a proxy's HTML page) give no diagnostics rather than an error; the
 * status still explains the failure. Pure.
 */
export function parseRegistryErrors(body: Uint8Array | string): RegistryDiagnostic[] {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));
  } catch {
    return [];
  }
  if (typeof json !== "object" || json === null) return [];
  const errors = (json as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return [];
  return errors.flatMap((e: unknown): RegistryDiagnostic[] => {
    if (typeof e !== "object" || e === null) return [];
    const r = e as { code?: unknown; message?: unknown; detail?: unknown };
    const code = typeof r.code === "string" && /^[A-Z_]+$/.test(r.code) ? r.code : "UNKNOWN";
    return [
      {
        code,
        ...(typeof r.message === "string" ? { message: r.message } : {}),
        ...(r.detail === undefined ? {} : { detail: r.detail }),
      },
    ];
  });
}

/**
 * The delay a `Retry-After` header asks for, in milliseconds: delta-seconds or an HTTP-date
 * (RFC 9110 §10.2.3). Undefined when absent or unparsable. Pure; `now` is injectable for tests.
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
