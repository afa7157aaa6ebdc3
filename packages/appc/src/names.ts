// AC Identifier and AC Name (appc spec types/acidentifier.go, types/acname.go). We follow appc's
// implementation, not the spec regex: the implementation only checks the character class and the
// first/last character, so `example.com/~bob/database` and `a--b` are valid (upstream test vectors
// rely on it), while the spec regex `^[a-z0-9]+([-._~/][a-z0-9]+)*$` would refuse them.
import { ErrorCode, RktError } from "@rkt/oci";

declare const acIdentifierBrand: unique symbol;
declare const acNameBrand: unique symbol;
/** A validated AC Identifier (image names, label, annotation and isolator names). */
export type ACIdentifier = string & { readonly [acIdentifierBrand]: true };
/** A validated AC Name (app, port, mount point and volume names). */
export type ACName = string & { readonly [acNameBrand]: true };

const identifierChars = /^[a-z0-9\-._~/]+$/;
const identifierEdge = /[-._~/]/;
const nameChars = /^[a-z0-9-]+$/;

/**
 * Why `s` is not an AC Identifier, in appc's words, or undefined when it is one. Checks in appc's
 * order: empty, character class, edges.
 */
export function acIdentifierProblem(s: string): string | undefined {
  if (s === "") return "ACIdentifier cannot be empty";
  if (!identifierChars.test(s)) {
    return 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"';
  }
  if (identifierEdge.test(s[0]!) || identifierEdge.test(s[s.length - 1]!)) {
    return "ACIdentifier must start and end with only lower case alphanumeric characters";
  }
  return undefined;
}

/** Why `s` is not an AC Name, in appc's words, or undefined when it is one. */
export function acNameProblem(s: string): string | undefined {
  if (s === "") return "ACName cannot be empty";
  if (!nameChars.test(s)) return 'ACName must contain only lower case alphanumeric characters plus "-"';
  if (s.startsWith("-") || s.endsWith("-")) {
    return "ACName must start and end with only lower case alphanumeric characters";
  }
  return undefined;
}

/** True when `s` is a valid AC Identifier. */
export function isACIdentifier(s: string): s is ACIdentifier {
  return acIdentifierProblem(s) === undefined;
}

/** True when `s` is a valid AC Name. */
export function isACName(s: string): s is ACName {
  return acNameProblem(s) === undefined;
}

/** Validates an AC Identifier. Throws RKT_INVALID_NAME naming the input and appc's reason. */
export function parseACIdentifier(s: string): ACIdentifier {
  const why = acIdentifierProblem(s);
  if (why !== undefined)
    throw new RktError(ErrorCode.InvalidName, `invalid AC identifier ${JSON.stringify(s)}: ${why}`);
  return s as ACIdentifier;
}

/** Validates an AC Name. Throws RKT_INVALID_NAME naming the input and appc's reason. */
export function parseACName(s: string): ACName {
  const why = acNameProblem(s);
  if (why !== undefined)
    throw new RktError(ErrorCode.InvalidName, `invalid AC name ${JSON.stringify(s)}: ${why}`);
  return s as ACName;
}

// The `u` flag makes a non-ASCII character one replacement, as Go's regexp does on UTF-8 runes.
const badIdentifierChars = /[^a-z0-9\-._~/]/gu;
const identifierEdges = /^[-._~/]+|[-._~/]+$/g;
const badNameChars = /[^a-z0-9-]/gu;
const nameEdges = /^-+|-+$/g;

/**
 * appc's SanitizeACIdentifier: lower-case, replace every invalid character with `_`, trim
 * separators from both ends. Throws RKT_INVALID_NAME when nothing valid is left. docker2aci uses
 * it to turn Docker repository names into image names.
 */
export function sanitizeACIdentifier(s: string): ACIdentifier {
  const out = s.toLowerCase().replace(badIdentifierChars, "_").replace(identifierEdges, "");
  if (out === "") {
    throw new RktError(
      ErrorCode.InvalidName,
      `cannot make an AC identifier of ${JSON.stringify(s)}: must contain at least one valid character`,
    );
  }
  return out as ACIdentifier;
}

/**
 * appc's SanitizeACName: lower-case, replace every invalid character with `-`, trim `-` from both
 * ends. Throws RKT_INVALID_NAME when nothing valid is left. docker2aci uses it for app, port and
 * mount point names derived from Docker configs.
 */
export function sanitizeACName(s: string): ACName {
  const out = s.toLowerCase().replace(badNameChars, "-").replace(nameEdges, "");
  if (out === "") {
    throw new RktError(
      ErrorCode.InvalidName,
      `cannot make an AC name of ${JSON.stringify(s)}: must contain at least one valid character`,
    );
  }
  return out as ACName;
}
