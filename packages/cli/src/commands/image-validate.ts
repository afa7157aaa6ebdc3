// `rkt image validate`: parse flags, call @rkt/fetch's validateFile per input, print verdicts.
import { resolve } from "node:path";
import { validateFile, validateTypes, type ValidateType, type ValidationResult } from "@rkt/fetch";
import { ErrorCode, RktError } from "@rkt/oci";
import type { CommandContext } from "../context.js";

/**
 * Validates each PATH; prints `PATH: ok`, or one `PATH: invalid: <json path>: <reason>` line per
 * issue (all issues, in the order found), or with `--format json` one JSON array of
 * `{path,type,ok,issues}`. Verdicts go to stdout. Returns 254 if any input is invalid, else 0.
 * Throws RKT_INVALID_ARGUMENT for a bad `--type`/`--format` or no PATH.
 */
export async function imageValidateCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { type: ctx.args.string("type"), format: ctx.args.string("format") ?? "text" };
  const type = values.type;
  if (type !== undefined && !(validateTypes as readonly string[]).includes(type)) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `unknown type ${JSON.stringify(type)} (one of: ${validateTypes.join(", ")})`,
    );
  }
  if (values.format !== "text" && values.format !== "json") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `unknown format ${JSON.stringify(values.format)} (text or json)`,
    );
  }
  if (positionals.length === 0)
    throw new RktError(ErrorCode.InvalidArgument, "at least one PATH is required");
  const results: ValidationResult[] = [];
  for (const p of positionals) {
    const r = await validateFile(resolve(ctx.cwd, p), type as ValidateType | undefined, {
      signal: ctx.signal,
    });
    results.push({ ...r, path: p });
    if (values.format === "text" && !(r.ok && ctx.args.bool("quiet")))
      ctx.stdout.write(formatText({ ...r, path: p }));
  }
  if (values.format === "json") ctx.stdout.write(`${JSON.stringify(results)}\n`);
  return results.every((r) => r.ok) ? 0 : 254;
}

/** The text lines of one verdict. */
export function formatText(r: ValidationResult): string {
  if (r.ok) return `${r.path}: ok\n`;
  return r.issues.map((i) => `${r.path}: invalid: ${i.path}: ${i.message}\n`).join("");
}
