import type { ErrorCode } from "./errors.js";

/** One reason a document was refused. */
export interface ParseIssue {
  /** JSONPath of the offending value, e.g. `$.layers[0].digest`; `$` is the whole document. */
  readonly path: string;
  /** One line naming the problem, e.g. `size must be a non-negative integer`. */
  readonly message: string;
  /**
   * The error code a throwing caller should use, when more specific than the document's default
   * (RKT_UNSUPPORTED_MEDIA_TYPE for schema1 or an unknown document type).
   */
  readonly code?: ErrorCode | undefined;
}

/**
 * The outcome of a pure parser: either the value together with the exact bytes it was parsed from
 * (digests are computed over `raw`, never over a re-serialisation), or every issue found.
 */
export type ParseResult<T> =
  | { readonly ok: true; readonly value: T; readonly raw: Uint8Array }
  | { readonly ok: false; readonly issues: readonly ParseIssue[] };

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Formats a path of keys and indexes as JSONPath: `["layers", 0, "digest"]` -> `$.layers[0].digest`. */
export function formatJsonPath(path: readonly PropertyKey[]): string {
  let out = "$";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && identifier.test(seg)) out += `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}
