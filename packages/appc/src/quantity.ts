// Resource quantities as appc's resource isolators read them: the Kubernetes `resource.Quantity`
// that appc vendors (a number, then a binary SI, decimal SI or decimal exponent suffix). Only
// validity is needed here; rkt's stage1 interprets the amounts.

// The first check Quantity applies, and the text of its error; the suffix is checked after it.
const splitPattern = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";
const splitRe = new RegExp(splitPattern);
const numericRe = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;
const decimalSuffixes = new Set(["", "n", "u", "m", "k", "M", "G", "T", "P", "E"]);
const binarySuffixes = new Set(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]);
const exponentRe = /^[eE][+-]?\d+$/;

/**
 * Why `s` is not a quantity (`250m`, `1G`, `512Mi`, `1e3`), in the words of the Quantity parser
 * appc uses, or undefined when it is one. Surrounding spaces are ignored, as there. Pure.
 */
export function quantityProblem(s: string): string | undefined {
  const m = splitRe.exec(s.trim());
  if (m === null) return `quantities must match the regular expression '${splitPattern}'`;
  const [, number = "", suffix = ""] = m;
  if (!numericRe.test(number)) return "unable to parse numeric part of quantity";
  if (binarySuffixes.has(suffix)) {
    return number.includes(".") && !/\.0*$/.test(number)
      ? "numbers with binary-style SI suffixes can't have fractional parts"
      : undefined;
  }
  if (decimalSuffixes.has(suffix) || exponentRe.test(suffix)) return undefined;
  return "unable to parse quantity's suffix";
}

/**
 * {@link quantityProblem} for a JSON value as Quantity's JSON decoding sees it: a string, or a bare
 * number (its text is parsed); `null` and absence mean no quantity. Pure.
 */
export function jsonQuantityProblem(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return quantityProblem(v);
  if (typeof v === "number") return quantityProblem(String(v));
  return quantityProblem(JSON.stringify(v));
}
