// `Content-Range` of a 206 answer (RFC 9110 §14.4), one parser for every client that resumes:
// registry blobs and appc downloads. Pure.

/** A satisfied byte range: `start`..`end` inclusive, of `total` bytes (undefined for `*`). */
export interface ContentRange {
  readonly start: number;
  readonly end: number;
  readonly total: number | undefined;
}

// Digits beyond a safe integer cannot be an offset we asked for: the header is refused whole.
const maxDigits = 15;

/**
 * Parses `bytes A-B/N` or `bytes A-B/*` (unit case-insensitive, spaces around it tolerated).
 * Undefined for anything else: the unsatisfied form `bytes *\/N`, other units, `A > B`, an end
 * not below the total, numbers too long to be exact. Pure.
 */
export function parseContentRange(header: string | undefined): ContentRange | undefined {
  const m = /^bytes[ \t]+([0-9]+)-([0-9]+)\/([0-9]+|\*)$/i.exec(header?.trim() ?? "");
  if (m === null) return undefined;
  const [, a = "", b = "", n = ""] = m;
  if (a.length > maxDigits || b.length > maxDigits || n.length > maxDigits) return undefined;
  const start = Number(a);
  const end = Number(b);
  const total = n === "*" ? undefined : Number(n);
  if (start > end || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}
