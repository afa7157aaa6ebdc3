// `rkt trust` (rkt/trust.go, rkt/pubkey/pubkey.go): trust public keys for an image-name prefix or
// for every image, from files, https URLs or appc pubkey discovery, after a fingerprint review.
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { discoverPubkeys, readPubkey, type PubkeyFetchOptions } from "@rkt/fetch";
import { ErrorCode, RktError } from "@rkt/oci";
import { KeyStore, describeKey, parseArmoredKeyring, type KeyScope, type ParsedKeyring } from "@rkt/trust";
import type { CommandContext } from "../context.js";
import { outputOf, type Output } from "../output.js";

/** rkt's usage of `rkt trust`, printed when neither a prefix nor --root is given. */
export const trustUsage = [
  "Usage:",
  "  rkt trust [--prefix=PREFIX] [--insecure-allow-http] [--skip-fingerprint-review] [--root] [PUBKEY ...]",
  "",
  "Flags:",
  "      --insecure-allow-http       allow HTTP use for key discovery and/or retrieval",
  "      --prefix string             prefix to limit trust to",
  "      --root                      add root key from filesystem without a prefix",
  "      --skip-fingerprint-review   accept key without fingerprint confirmation",
  "",
].join("\n");

/** rkt's refusal of `rkt trust PUBKEY` without `--prefix` or `--root`. */
export const implicitRootTrustMessage = [
  "aborting due to implicit unbounded trust (root domain)",
  "Please provide a specific domain prefix to trust:",
  '    rkt trust --prefix "example.com/foo" [PUBKEY]',
  '    rkt trust --prefix "example.com/foo/*" [PUBKEY]',
  "Otherwise, trust at the root domain (not recommended) must be explicitly requested:",
  "    rkt trust --root PUBKEY",
].join("\n");

// appc AC identifier, which rkt requires of a stored prefix (spec/types/acidentifier.go).
const acIdentifier = /^[a-z0-9]+(?:[-._~/][a-z0-9]+)*$/;

/**
 * The port pubkey discovery contacts instead of 443/80, from `RKT_DISCOVERY_PORT` (appc's test
 * hook: discovery servers in tests listen on an unprivileged loopback port). Undefined when unset.
 */
export function discoveryPortFromEnv(env: Readonly<Record<string, string | undefined>>): number | undefined {
  const v = env["RKT_DISCOVERY_PORT"];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new RktError(ErrorCode.InvalidArgument, `RKT_DISCOVERY_PORT: invalid port ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * `rkt trust [--prefix P | --root] [--skip-fingerprint-review] [--insecure-allow-http] [PUBKEY...]`.
 * For each key (the PUBKEY paths/URLs, else those found by discovery of `P`): prints
 * `pubkey: prefix: "<p>"` / `key: "<loc>"` on stderr and the fingerprint lines on stdout, asks
 * `Are you sure you want to trust this key (yes/no)?` when stdin and stderr are terminals (unless
 * `--skip-fingerprint-review`, or `--trust-keys-from-https` for an https key), then stores the key
 * in the LOCAL config dir and prints `Trusting … fingerprint review.` and `Added … at "<path>"`.
 * A `no` skips the key (exit 0). Errors (exit 254): the rkt texts for missing/conflicting
 * scope flags, a prefix with a URL scheme or not an AC identifier, no TTY for the review, and
 * the key's own read/parse errors.
 */
export async function trustCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const { positionals } = a;
  const values = {
    prefix: a.string("prefix") ?? "",
    root: a.bool("root"),
    "skip-fingerprint-review": a.bool("skip-fingerprint-review"),
    "insecure-allow-http": a.bool("insecure-allow-http"),
  };
  const prefix = values.prefix;
  const root = values.root;
  if (prefix === "" && !root) {
    if (positionals.length === 0) {
      ctx.stderr.write(trustUsage);
      return 254;
    }
    throw new RktError(ErrorCode.InvalidArgument, implicitRootTrustMessage);
  }
  if (prefix !== "" && root) {
    throw new RktError(ErrorCode.InvalidArgument, "--root and --prefix usage mutually exclusive");
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(prefix);
  if (scheme !== null) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `--prefix must not contain a URL scheme, omit ${scheme[1]!}://`,
    );
  }
  if (prefix !== "" && !acIdentifier.test(prefix)) {
    throw new RktError(
      ErrorCode.InvalidName,
      `invalid prefix ${JSON.stringify(prefix)}: must be an AC identifier (lowercase letters, digits, and - . _ ~ / between them)`,
    );
  }
  const fetchOptions: PubkeyFetchOptions = {
    insecureAllowHttp: values["insecure-allow-http"],
    env: ctx.env,
    cwd: ctx.cwd,
    signal: ctx.signal,
    port: discoveryPortFromEnv(ctx.env),
  };
  let locations = positionals;
  if (locations.length === 0) {
    try {
      // rkt: `--root` without keys discovers on the empty prefix, which fails.
      locations = await discoverPubkeys(prefix, fetchOptions);
    } catch (e) {
      throw wrap("error determining key location", e);
    }
  }
  const keystore = new KeyStore({
    systemConfigDir: ctx.globals.systemConfig,
    localConfigDir: ctx.globals.localConfig,
  });
  const scope: KeyScope = root ? { root: true } : { prefix };
  const review = values["skip-fingerprint-review"] ? undefined : lineReader(ctx.stdin);
  const o = outputOf(ctx);
  const results: TrustResult[] = [];
  try {
    for (const location of locations) {
      const fetched = await readPubkey(location, fetchOptions);
      const parsed = await parseArmoredKeyring(fetched.bytes, location);
      const force = review === undefined || (ctx.globals.trustKeysFromHttps && fetched.kind === "https");
      const fingerprint = parsed.keys[0]?.getFingerprint() ?? "";
      const key = { prefix, location, keys: parsed.keys, https: fetched.kind === "https" };
      if (!(await reviewKey(ctx, key, force ? undefined : review, o))) {
        results.push({ location, prefix, root, fingerprint, path: null, trusted: false });
        continue;
      }
      const path = await keystore.addKey(parsed.armored, scope, location);
      results.push({ location, prefix, root, fingerprint, path, trusted: true });
      if (!o.json)
        ctx.stdout.write(
          root
            ? `Added root key at ${JSON.stringify(path)}\n`
            : `Added key for prefix ${JSON.stringify(prefix)} at ${JSON.stringify(path)}\n`,
        );
    }
  } finally {
    review?.close();
  }
  if (o.json) o.writeJson(results);
  return 0;
}

/** One key of `rkt trust --format json`. */
interface TrustResult {
  readonly location: string;
  readonly prefix: string;
  readonly root: boolean;
  /** Lowercase hex of the primary key's fingerprint. */
  readonly fingerprint: string;
  /** Where it was stored; null when the review said no. */
  readonly path: string | null;
  readonly trusted: boolean;
}

/**
 * What to do when the fingerprint cannot be reviewed (stdin or stderr not a terminal): rkt
 * advised running `rkt trust --prefix …`, the very command that just failed; the ways that work
 * without a terminal are --skip-fingerprint-review after checking the fingerprint printed above,
 * and --trust-keys-from-https for a key that came over https.
 */
export function noTtyAdvice(location: string, https: boolean): string {
  return (
    `pubkey: cannot review the fingerprint of ${JSON.stringify(location)}: stdin and stderr are not both a terminal\n` +
    "pubkey: to trust it anyway, check the fingerprint above and run again with --skip-fingerprint-review\n" +
    (https ? "pubkey: (or with --trust-keys-from-https: the key came over https)\n" : "")
  );
}

/**
 * rkt's fingerprint review of one key for `prefix`: prints `pubkey: prefix: …` / `key: …` (unless
 * quiet) and the fingerprint lines, then, with a `review` reader, asks
 * `Are you sure you want to trust this key (yes/no)?` (stdin and stderr must be terminals, else
 * RKT_KEY_UNTRUSTED `error reviewing key: … lack of tty` after {@link noTtyAdvice}). True to trust
 * it (and `Trusting … fingerprint review.` is printed), false after a `no`. Without `review`
 * (`--skip-fingerprint-review`) the key is trusted without asking. With JSON output, stdout holds
 * only the JSON: descriptions and questions go to stderr.
 */
export async function reviewKey(
  ctx: CommandContext,
  key: { prefix: string; location: string; keys: ParsedKeyring["keys"]; https?: boolean },
  review: LineReader | undefined,
  o: Output = outputOf(ctx),
): Promise<boolean> {
  const { prefix, location } = key;
  const talk = o.json ? ctx.stderr : ctx.stdout;
  o.info(`pubkey: prefix: ${JSON.stringify(prefix)}\nkey: ${JSON.stringify(location)}`);
  // The fingerprint is what a review is about: it is shown whenever one is asked.
  if (!o.quiet || review !== undefined)
    for (const k of key.keys) talk.write(`${describeKey(k).lines.join("\n")}\n`);
  if (review !== undefined) {
    if (!isTty(ctx.stdin) || !isTty(ctx.stderr)) {
      ctx.stderr.write(noTtyAdvice(location, key.https === true));
      throw new RktError(
        ErrorCode.KeyUntrusted,
        "error reviewing key: unable to ask user to review fingerprint due to lack of tty",
      );
    }
    if (!(await askYesNo(talk, review))) {
      ctx.stderr.write(`pubkey: not trusting ${JSON.stringify(location)}\n`);
      return false;
    }
  }
  if (!o.json)
    ctx.stdout.write(
      `Trusting ${JSON.stringify(location)} for prefix ${JSON.stringify(prefix)} ${review === undefined ? "without" : "after"} fingerprint review.\n`,
    );
  return true;
}

/** Lines of the user's answers. */
export interface LineReader {
  /** The next line without its newline; undefined at end of input. */
  next(): Promise<string | undefined>;
  close(): void;
}

// Created only when the review may ask: reading stdin otherwise would hold the process open.
export function lineReader(input: Readable): LineReader {
  let rl: ReturnType<typeof createInterface> | undefined;
  let it: AsyncIterator<string> | undefined;
  return {
    async next() {
      if (rl === undefined) {
        rl = createInterface({ input, terminal: false, crlfDelay: Infinity });
        it = rl[Symbol.asyncIterator]();
      }
      const r = await it!.next();
      return r.done === true ? undefined : r.value;
    },
    close() {
      rl?.close();
    },
  };
}

// rkt's reviewKey: exactly `yes` or `no`; anything else asks again.
async function askYesNo(out: Writable, reader: LineReader): Promise<boolean> {
  for (;;) {
    out.write("Are you sure you want to trust this key (yes/no)?\n");
    const line = await reader.next();
    if (line === undefined) {
      throw new RktError(ErrorCode.KeyUntrusted, "error reviewing key: end of input before an answer");
    }
    if (line === "yes") return true;
    if (line === "no") return false;
    out.write("Please enter 'yes' or 'no'\n");
  }
}

function isTty(s: unknown): boolean {
  return (s as { isTTY?: boolean } | null)?.isTTY === true;
}

function wrap(what: string, e: unknown): RktError {
  if (e instanceof RktError) return new RktError(e.code, `${what}: ${e.message}`, { cause: e });
  return new RktError(ErrorCode.Internal, `${what}: ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
  });
}
