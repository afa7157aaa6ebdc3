// Building blocks shared by the image and pod manifest schemas, and the mapping of zod issues to
// ParseIssues with JSONPath locations.
import { formatJsonPath, onFirstUse, zod, type ParseIssue } from "@rkt/oci";
import type { z } from "zod";
import { labelProblems } from "../labels.js";
import { acIdentifierProblem, acNameProblem, type ACIdentifier, type ACName } from "../names.js";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * An object schema whose keys match case-insensitively, as Go's encoding/json does for appc's
 * structs (upstream tests write `"Exec"`, the spec example writes `supplementaryGids`). An exact
 * key wins over a case-folded one; unknown keys are dropped, as Go ignores them; a `null` value
 * counts as absent, as Go leaves the field at its zero value.
 */
export function goObject<S extends z.ZodRawShape>(shape: S) {
  const z = zod();
  const folded = new Map(Object.keys(shape).map((k) => [k.toLowerCase(), k]));
  return z.preprocess((v) => {
    if (!isObject(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      const canonical = folded.get(k.toLowerCase());
      if (canonical === undefined || val === null) continue;
      if (k === canonical || !Object.hasOwn(v, canonical)) {
        Object.defineProperty(out, canonical, {
          value: val,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    }
    return out;
  }, z.object(shape));
}

// SemVer 2.0 (semver.org), as coreos/go-semver parses it: no `v`, exactly three numbers.
const semverRe =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

// appc schema/types/hash.go: NewHash splits on "-" and checks the parts (assertValid).
function hashProblem(s: string): string | undefined {
  const parts = s.split("-");
  if (parts.length !== 2) return "badly formatted hash string";
  const [type, value] = parts as [string, string];
  if (type === "") return "unexpected empty hash type";
  if (type !== "sha512") return `unrecognized hash type: ${type}`;
  if (value === "") return "unexpected empty hash value";
  return undefined;
}

/** Field schemas shared by the image and pod manifests. */
export const appcSchemas = onFirstUse((z) => {
  /** A string that must be an AC Identifier; the message is appc's. */
  const acIdentifierSchema = z.string().superRefine((s, ctx) => {
    const why = acIdentifierProblem(s);
    if (why !== undefined) ctx.addIssue({ code: "custom", message: why });
  }) as unknown as z.ZodType<ACIdentifier, string>;

  /** A string that must be an AC Name; the message is appc's. */
  const acNameSchema = z.string().superRefine((s, ctx) => {
    const why = acNameProblem(s);
    if (why !== undefined) ctx.addIssue({ code: "custom", message: why });
  }) as unknown as z.ZodType<ACName, string>;

  const labelSchema = goObject({ name: z.string(), value: z.string() });

  /** A label list: AC Identifier names, unique, never `name`, os/arch whitelisted. */
  const labelsSchema = z.array(labelSchema).superRefine((labels, ctx) => {
    for (const p of labelProblems(labels)) {
      ctx.addIssue({
        code: "custom",
        message: p.message,
        path: p.index === undefined ? [] : [p.index, "name"],
      });
    }
  });

  /**
   * An appc hash string (types.Hash: `dependencies[].imageID`, a pod app's `image.id`), by appc's
   * own rule and messages: `<type>-<value>`, type `sha512`, a value that is not empty. The spec's
   * examples write `sha512-...`, so the value is not required to be hex here; an ID that is
   * looked up in the store must be (image resolution checks it).
   */
  const imageIdSchema = z.string().superRefine((s, ctx) => {
    const why = hashProblem(s);
    if (why !== undefined) ctx.addIssue({ code: "custom", message: why });
  });

  /** acVersion: a SemVer 2.0 string other than the zero version. */
  const acVersionSchema = z
    .string({
      error: (i) => (i.input === undefined ? "required field is missing" : "acVersion must be a string"),
    })
    .regex(semverRe, { error: "acVersion must be a SemVer 2.0 version such as 0.8.11" })
    .refine((s) => !/^0\.0\.0(?:$|[-+])/.test(s), { error: "acVersion must not be the zero version" });
  return { acIdentifierSchema, acNameSchema, labelsSchema, imageIdSchema, acVersionSchema };
});

/** An absolute path (starts with `/`). */
export function absolutePath(what: string) {
  return zod()
    .string()
    .refine((s) => s.startsWith("/"), { error: `${what} must be an absolute path` });
}

/** `{name, value}` pairs with unique AC Identifier names (annotations). */
export function uniqueNamed<T extends { name: string }>(item: z.ZodType<T>, what: string) {
  return zod()
    .array(item)
    .superRefine((xs, ctx) => {
      const seen = new Set<string>();
      xs.forEach((x, i) => {
        if (seen.has(x.name)) {
          ctx.addIssue({
            code: "custom",
            path: [i, "name"],
            message: `duplicate ${what} of name ${JSON.stringify(x.name)}`,
          });
        }
        seen.add(x.name);
      });
    });
}

// Zod's default for a missing field says "expected string, received undefined"; say it plainly.
const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === "invalid_type" && iss.input === undefined) return "required field is missing";
  return undefined;
};

/** Runs a schema and maps its issues to ParseIssues with JSONPath locations. */
export function runSchema<T>(
  schema: z.ZodType<T>,
  input: unknown,
): { ok: true; value: T } | { ok: false; issues: ParseIssue[] } {
  const r = schema.safeParse(input, { error: errorMap });
  if (r.success) return { ok: true, value: r.data };
  return {
    ok: false,
    issues: r.error.issues.map((i) => ({ path: formatJsonPath(i.path), message: i.message })),
  };
}
