// `rkt trust rm` (beyond rkt, whose keystore API could delete keys but no command did): removes a
// key file from the LOCAL config dir.
import { ErrorCode, RktError } from "@rkt/oci";
import { KeyStore, type KeyScope } from "@rkt/trust";
import type { CommandContext } from "../context.js";

/**
 * `rkt trust rm FINGERPRINT [--prefix P | --root]`: removes the local key file of FINGERPRINT
 * (40 hex; spaces as gpg prints them are allowed) for that scope and prints
 * `Removed key for prefix "<p>" at "<path>"` / `Removed root key at "<path>"`. Without a scope, the
 * key is removed if exactly one local scope holds it (else RKT_AMBIGUOUS listing them). System
 * keys cannot be removed (mask them with an empty local file): RKT_NOT_FOUND. Exit 254 on error.
 */
export async function trustRmCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { positionals } = ctx.args;
  const values = { prefix: ctx.args.string("prefix"), root: ctx.args.bool("root") };
  if (values.prefix !== undefined && values.root) {
    throw new RktError(ErrorCode.InvalidArgument, "--root and --prefix usage mutually exclusive");
  }
  if (positionals.length === 0)
    throw new RktError(ErrorCode.InvalidArgument, "must provide a key fingerprint");
  const ks = new KeyStore({
    systemConfigDir: ctx.globals.systemConfig,
    localConfigDir: ctx.globals.localConfig,
  });
  const fingerprint = positionals.join("");
  let scope: KeyScope;
  if (values.root) scope = { root: true };
  else if (values.prefix !== undefined) scope = { prefix: values.prefix };
  else {
    const fp = fingerprint.replace(/\s+/g, "").toLowerCase();
    const found = (await ks.index()).filter((e) => e.layer === "local" && !e.empty && e.fingerprint === fp);
    if (found.length === 0) {
      throw new RktError(
        ErrorCode.NotFound,
        `no trusted key ${fp} in ${ctx.globals.localConfig}/trustedkeys`,
      );
    }
    if (found.length > 1) {
      throw new RktError(
        ErrorCode.Ambiguous,
        `key ${fp} is trusted for ${found.map((e) => (e.prefix === "" ? "the root" : `prefix "${e.prefix}"`)).join(", ")}; give --prefix or --root`,
      );
    }
    const e = found[0]!;
    scope = e.prefix === "" ? { root: true } : { prefix: e.prefix };
  }
  const path = await ks.remove(fingerprint, scope);
  if (ctx.args.string("format") === "json") {
    const root = "root" in scope;
    ctx.stdout.write(
      `${JSON.stringify({ fingerprint: fingerprint.replace(/\s+/g, "").toLowerCase(), prefix: "prefix" in scope ? scope.prefix : "", root, path })}\n`,
    );
    return 0;
  }
  ctx.stdout.write(
    "root" in scope
      ? `Removed root key at ${JSON.stringify(path)}\n`
      : `Removed key for prefix ${JSON.stringify(scope.prefix)} at ${JSON.stringify(path)}\n`,
  );
  return 0;
}
