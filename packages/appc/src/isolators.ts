// Values of the isolators appc knows (schema/types/isolator_*.go), checked as its types decode and
// validate them; messages are appc's where it has one. Isolators with other names keep any value
// (appc leaves them unrecognized). Pure.
import { jsonQuantityProblem } from "./quantity.js";

/** One problem: a path below the isolator (`["value", "set"]`) and one line of text. */
export interface IsolatorProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

type Checker = (value: unknown) => IsolatorProblem[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// A struct field as Go's encoding/json finds it: exact key first, else a case-insensitive match;
// null is the zero value (absent).
function field(o: Record<string, unknown>, key: string): unknown {
  let v: unknown = Object.hasOwn(o, key) ? o[key] : undefined;
  if (v === undefined) {
    const k = Object.keys(o).find((x) => x.toLowerCase() === key.toLowerCase());
    v = k === undefined ? undefined : o[k];
  }
  return v === null ? undefined : v;
}

const at = (message: string, ...path: (string | number)[]): IsolatorProblem => ({
  path: ["value", ...path],
  message,
});

function objectValue(what: string, v: unknown, check: (o: Record<string, unknown>) => IsolatorProblem[]) {
  return isObject(v) ? check(v) : [at(`${what} must be an object`)];
}

// resource/*: {default, request, limit}, request and limit Kubernetes quantities.
function resource(defaultMustBe: boolean, requestAllowed: boolean): Checker {
  return (v) =>
    objectValue("a resource isolator value", v, (o) => {
      const out: IsolatorProblem[] = [];
      const def = field(o, "default");
      if (def !== undefined && typeof def !== "boolean") out.push(at("default must be a boolean", "default"));
      for (const k of ["request", "limit"]) {
        const why = jsonQuantityProblem(field(o, k));
        if (why !== undefined) out.push(at(why, k));
      }
      if (out.length > 0) return out;
      if ((def === true) !== defaultMustBe) {
        out.push(at(defaultMustBe ? "default must be true" : "default must be false", "default"));
      } else if (!requestAllowed && field(o, "request") !== undefined) {
        out.push(at("request not supported by this resource, must be empty", "request"));
      }
      return out;
    });
}

// A `set` of strings that must not be empty (capabilities, seccomp).
function stringSet(o: Record<string, unknown>): IsolatorProblem[] {
  const set = field(o, "set");
  if (set !== undefined && !(Array.isArray(set) && set.every((s) => typeof s === "string"))) {
    return [at("set must be a list of strings", "set")];
  }
  return set === undefined || set.length === 0 ? [at("set must be non-empty", "set")] : [];
}

const capabilities: Checker = (v) => objectValue("a capabilities set", v, stringSet);

const seccomp: Checker = (v) =>
  objectValue("a seccomp set", v, (o) => {
    const out = stringSet(o);
    const errno = field(o, "errno");
    if (errno !== undefined && typeof errno !== "string") out.push(at("errno must be a string", "errno"));
    // appc: every character an upper case letter (unicode.IsUpper), so digits are refused too.
    else if (out.length === 0 && typeof errno === "string" && !/^\p{Lu}*$/u.test(errno)) {
      out.push(at("errno must be an upper case string", "errno"));
    }
    return out;
  });

function integerIn(name: string, min: number, max: number): Checker {
  return (v) => {
    if (typeof v !== "number" || !Number.isInteger(v)) return [at(`${name} must be an integer`)];
    return v < min || v > max ? [at(`${name} must be between ${min} and ${max}, got ${v}`)] : [];
  };
}

const boolean: Checker = (v) => (typeof v === "boolean" ? [] : [at("value must be a boolean")]);

const selinuxContext: Checker = (v) =>
  objectValue("an SELinux context", v, (o) => {
    for (const k of ["user", "role", "type", "level"]) {
      const s = field(o, k);
      if (s !== undefined && typeof s !== "string") return [at(`${k} must be a string`, k)];
      const text = s ?? "";
      if (text === "" || (k !== "level" && text.includes(":"))) {
        return [at(`invalid ${k} value ${JSON.stringify(text)}`, k)];
      }
    }
    return [];
  });

const sysctl: Checker = (v) =>
  isObject(v) && Object.values(v).every((x) => typeof x === "string" || x === null)
    ? []
    : [at("os/unix/sysctl must be an object of strings")];

interface Known {
  readonly check: Checker;
  /**
   * appc's multipleAllowed(): more than one isolator of this name may appear. False only where
   * appc's types say so; the resource types are not limited here.
   */
  readonly multiple: boolean;
  readonly conflicts?: readonly string[];
}

const known: ReadonlyMap<string, Known> = new Map<string, Known>([
  ["resource/cpu", { check: resource(false, true), multiple: true }],
  ["resource/memory", { check: resource(false, true), multiple: true }],
  ["resource/block-bandwidth", { check: resource(true, false), multiple: true }],
  ["resource/block-iops", { check: resource(true, false), multiple: true }],
  ["resource/network-bandwidth", { check: resource(true, false), multiple: true }],
  ["os/linux/capabilities-retain-set", { check: capabilities, multiple: true }],
  ["os/linux/capabilities-remove-set", { check: capabilities, multiple: true }],
  ["os/linux/no-new-privileges", { check: boolean, multiple: true }],
  [
    "os/linux/seccomp-retain-set",
    { check: seccomp, multiple: false, conflicts: ["os/linux/seccomp-remove-set"] },
  ],
  [
    "os/linux/seccomp-remove-set",
    { check: seccomp, multiple: false, conflicts: ["os/linux/seccomp-retain-set"] },
  ],
  ["os/linux/oom-score-adj", { check: integerIn("os/linux/oom-score-adj", -1000, 1000), multiple: false }],
  ["os/linux/cpu-shares", { check: integerIn("os/linux/cpu-shares", 2, 262144), multiple: false }],
  ["os/linux/selinux-context", { check: selinuxContext, multiple: false }],
  ["os/unix/sysctl", { check: sysctl, multiple: false }],
]);

/** The isolator names whose values are checked. */
export const knownIsolatorNames: readonly string[] = [...known.keys()];

/**
 * The problems of one isolator's value: none for a name appc does not know; for a known one, a
 * value of the wrong shape or out of range (`os/linux/cpu-shares must be between 2 and 262144,
 * got 1`, `set must be non-empty`, quantity errors under `request`/`limit`). Pure.
 */
export function isolatorValueProblems(name: string, value: unknown): IsolatorProblem[] {
  const k = known.get(name);
  if (k === undefined) return [];
  // appc dereferences the raw value of a known isolator: it must be there.
  if (value === undefined || value === null) return [{ path: ["value"], message: `${name} needs a value` }];
  return k.check(value);
}

/**
 * The problems of a list of isolators taken together, as appc's Isolators.assertValid: a second
 * isolator of a name that allows only one, or one that conflicts with an earlier isolator.
 * Each problem carries the index of the offending isolator. Pure.
 */
export function isolatorSetProblems(
  isolators: readonly { readonly name: string }[],
): { index: number; message: string }[] {
  const out: { index: number; message: string }[] = [];
  const seen = new Set<string>();
  isolators.forEach((iso, index) => {
    const k = known.get(iso.name);
    if (k !== undefined) {
      if (seen.has(iso.name) && !k.multiple) {
        out.push({ index, message: `isolators set contains too many instances of type ${iso.name}` });
      } else if ((k.conflicts ?? []).some((c) => seen.has(c))) {
        out.push({ index, message: "isolators set contains incompatible types" });
      }
    }
    seen.add(iso.name);
  });
  return out;
}
