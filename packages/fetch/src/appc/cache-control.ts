// HTTP caching fields of an ACI download (rkt/image/httpops.go getMaxAge), pure.

/**
 * The max-age in seconds of a `Cache-Control` header as rkt reads it: a comma list where
 * `no-store` and `no-cache` mean 0 and `max-age=N` means N (N <= 0 is 0; a value with a leading
 * zero, as `010`, is ignored); the last directive wins. Absent or unparsable: 0. Pure.
 */
export function parseMaxAge(cacheControl: string | undefined): number {
  if (cacheControl === undefined) return 0;
  let maxAge = 0;
  for (const raw of cacheControl.split(",")) {
    const d = raw.trim().toLowerCase();
    if (d === "no-store" || d === "no-cache") maxAge = 0;
    else if (d.startsWith("max-age=")) {
      const v = d.slice("max-age=".length);
      if (/^-?[1-9][0-9]*$|^0$/.test(v)) maxAge = Math.max(0, Number(v));
    }
  }
  return maxAge;
}

/**
 * True while a copy downloaded at `downloadTime` (ms since the epoch) with `maxAge` seconds is
 * still fresh at `now`: rkt then uses it without asking the server. Pure.
 */
export function isFresh(r: { maxAge?: number | undefined; downloadTime: number }, now: number): boolean {
  const maxAge = r.maxAge ?? 0;
  return maxAge > 0 && now - r.downloadTime < maxAge * 1000;
}

/**
 * A validator usable in `If-Range` for resuming a partial download: a strong ETag, else a
 * `Last-Modified` date (RFC 9110 forbids weak ETags there). Undefined when there is neither. Pure.
 */
export function rangeValidator(h: {
  etag?: string | undefined;
  lastModified?: string | undefined;
}): string | undefined {
  if (h.etag !== undefined && h.etag !== "" && !h.etag.startsWith("W/")) return h.etag;
  if (h.lastModified !== undefined && h.lastModified !== "") return h.lastModified;
  return undefined;
}
