// `rkt trust list` (beyond rkt, which had no way to see what it trusted): the keys of the keystore
// with their scope, fingerprint, layer and identities.
import { ErrorCode, RktError } from "@rkt/oci";
import { KeyStore, formatFingerprint, type TrustedKey } from "@rkt/trust";
import type { CommandContext } from "../context.js";

/** One key as `rkt trust list --format json` prints it. */
export interface TrustListEntry {
  /** `""` for a root key. */
  readonly prefix: string;
  readonly root: boolean;
  /** Lowercase 40 hex, the file name. */
  readonly fingerprint: string;
  /** `system` (`--system-config`) or `local` (`--local-config`). */
  readonly layer: string;
  readonly path: string;
  readonly identities: readonly string[];
}

/** The JSON shape of a trusted key. Pure. */
export function trustListEntry(k: TrustedKey): TrustListEntry {
  return {
    prefix: k.prefix,
    root: k.prefix === "",
    fingerprint: k.fingerprint,
    layer: k.layer,
    path: k.path,
    identities: k.keys[0]?.getUserIDs() ?? [],
  };
}

/** Text lines: one header, then one key per line, columns padded with spaces. Pure. */
export function formatTrustList(entries: readonly TrustListEntry[]): string {
  const rows = [
    ["PREFIX", "FINGERPRINT", "SOURCE", "IDENTITY"],
    ...entries.map((e) => [
      e.root ? "(root)" : e.prefix,
      formatFingerprint(e.fingerprint),
      e.layer,
      e.identities.join(", "),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/**
 * `rkt trust list [--prefix NAME] [--format text|json]`: every trusted key (masking applied per
 * scope), or with `--prefix` the keys that verify images named NAME (root keys and every prefix
 * covering it, after masking). Text table or one JSON array on stdout; exit 0. Keystore errors
 * (a key file that is not a key, a fingerprint mismatch) fail with their own message, exit 254.
 */
export async function trustListCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { prefix: ctx.args.string("prefix"), format: ctx.args.string("format") ?? "text" };
  if (positionals.length > 0) {
    throw new RktError(ErrorCode.InvalidArgument, `unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  if (values.format !== "text" && values.format !== "json") {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `unknown format ${JSON.stringify(values.format)} (text or json)`,
    );
  }
  const ks = new KeyStore({
    systemConfigDir: ctx.globals.systemConfig,
    localConfigDir: ctx.globals.localConfig,
  });
  const entries = (await ks.list({ prefix: values.prefix })).map(trustListEntry);
  if (values.format === "json") ctx.stdout.write(`${JSON.stringify(entries)}\n`);
  else if (ctx.args.bool("quiet")) for (const e of entries) ctx.stdout.write(`${e.fingerprint}\n`);
  else ctx.stdout.write(formatTrustList(entries));
  return 0;
}
