// rkt's keystore (pkg/keystore): trusted keys are files named by fingerprint under
// `<config>/trustedkeys/root.d/` (every image) and `<config>/trustedkeys/prefix.d/<prefix>/` (images
// whose name is under <prefix>), in a system config dir (distribution, read-only to us) and a local
// one (administrator; where we write). The files are the whole armored input, so rkt reads ours and
// we read rkt's.
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type { Key } from "openpgp";
import { errorText, parseArmoredKeyring } from "./key.js";

/** Where a key file lives: `system` dirs load first, `local` ones override (rkt's order). */
export type KeyLayer = "system" | "local";

/** The scope a key is trusted for: every image (`root`), or names under `prefix`. */
export type KeyScope = { readonly root: true } | { readonly prefix: string };

/** One file of the keystore, before its contents are read. */
export interface KeyFileEntry {
  readonly layer: KeyLayer;
  /** `""` for `root.d`, else the prefix (the directory path under `prefix.d`, `/`-separated). */
  readonly prefix: string;
  /** The file name: a lowercase fingerprint for well-formed stores. */
  readonly fingerprint: string;
  readonly path: string;
  /** A zero-length file: masks the same fingerprint loaded earlier in the order. */
  readonly empty: boolean;
}

/** A key trusted for an image name, with where it came from. */
export interface TrustedKey {
  /** Lowercase 40-hex fingerprint of the file's first key. */
  readonly fingerprint: string;
  /** `""` when trusted from `root.d`, else the prefix directory it was found in. */
  readonly prefix: string;
  readonly layer: KeyLayer;
  readonly path: string;
  /** The file's text, verbatim. */
  readonly armored: string;
  /** Every key in the file (rkt keeps the whole keyring; the first one names the file). */
  readonly keys: readonly Key[];
}

/** rkt's default `--system-config`: keys shipped by the distribution. */
export const defaultSystemConfigDir = "/usr/lib/rkt";
/** rkt's default `--local-config`: keys trusted by the administrator; `rkt trust` writes here. */
export const defaultLocalConfigDir = "/etc/rkt";

/** The two config roots, as rkt's `--system-config` and `--local-config`. */
export interface KeyStoreOptions {
  /** rkt default `/usr/lib/rkt`. */
  readonly systemConfigDir: string;
  /** rkt default `/etc/rkt`; every write goes here. */
  readonly localConfigDir: string;
}

// appc AC identifier (spec/types/acidentifier.go), which rkt requires of a prefix it stores.
const acIdentifier = /^[a-z0-9]+(?:[-._~/][a-z0-9]+)*$/;
const fingerprintRe = /^[0-9a-f]{40}$/;

/**
 * True when keys for `prefix` apply to image `name`. Matching is by whole path segment:
 * `coreos.com/etcd` covers `coreos.com/etcd` and `coreos.com/etcd/x` but not `coreos.com/etcd2`.
 * rkt compares raw strings (so its `coreos.com/et` covers `coreos.com/etcd`); we deliberately do
 * not, since a prefix would then grant trust over names its owner does not control (README).
 * `""` (root) covers every name. Pure.
 */
export function prefixCovers(prefix: string, name: string): boolean {
  return prefix === "" || name === prefix || name.startsWith(`${prefix}/`);
}

const layerRank: Record<KeyLayer, number> = { system: 0, local: 1 };

/**
 * The load order of rkt's `loadKeyring`: system root, local root, system prefixes, local prefixes;
 * within a prefix layer, parent prefixes before children (rkt walks directories top-down). Pure.
 */
export function keyLoadOrder(a: KeyFileEntry, b: KeyFileEntry): number {
  const group = (e: KeyFileEntry): number => (e.prefix === "" ? 0 : 2) + layerRank[e.layer];
  const depth = (e: KeyFileEntry): number => (e.prefix === "" ? 0 : e.prefix.split("/").length);
  return (
    group(a) - group(b) || depth(a) - depth(b) || cmp(a.prefix, b.prefix) || cmp(a.fingerprint, b.fingerprint)
  );
}

/**
 * The keystore files that decide trust for image `name`, in load order: those whose scope covers
 * the name. Masking is not applied yet (see `selectKeys`). Pure.
 */
export function applicableEntries(name: string, index: readonly KeyFileEntry[]): KeyFileEntry[] {
  return index.filter((e) => prefixCovers(e.prefix, name)).sort(keyLoadOrder);
}

/**
 * The pure key-selection policy: the files whose keys are trusted for image `name`. Walks the
 * applicable files in load order; a later file with the same fingerprint name replaces an earlier
 * one, and an empty file removes it (rkt's masking: `/etc/rkt` can mask `/usr/lib/rkt`, a prefix
 * can mask a root key for the names under it). Result in load order.
 */
export function selectKeys(name: string, index: readonly KeyFileEntry[]): KeyFileEntry[] {
  const chosen = new Map<string, KeyFileEntry>();
  for (const e of applicableEntries(name, index)) {
    chosen.delete(e.fingerprint); // re-insert so the result keeps the load order of the winner
    if (!e.empty) chosen.set(e.fingerprint, e);
  }
  return [...chosen.values()];
}

/**
 * rkt's keystore on disk. Reads `<system>/trustedkeys` and `<local>/trustedkeys`; writes only to
 * the local one (dirs 0755, files 0644, the armored input verbatim, atomically by rename).
 */
export class KeyStore {
  readonly systemConfigDir: string;
  readonly localConfigDir: string;

  constructor(o: KeyStoreOptions) {
    this.systemConfigDir = o.systemConfigDir;
    this.localConfigDir = o.localConfigDir;
  }

  /**
   * Every file of both layers, unordered. Missing directories are empty. Throws RKT_IO on an
   * unreadable directory.
   */
  async index(): Promise<KeyFileEntry[]> {
    const out: KeyFileEntry[] = [];
    for (const [layer, dir] of [
      ["system", this.systemConfigDir],
      ["local", this.localConfigDir],
    ] as const) {
      const base = join(dir, "trustedkeys");
      for (const f of await listFiles(join(base, "root.d"), false)) {
        out.push({ layer, prefix: "", fingerprint: f.name, path: f.path, empty: f.size === 0 });
      }
      const prefixRoot = join(base, "prefix.d");
      for (const f of await listFiles(prefixRoot, true)) {
        const rel = relative(prefixRoot, f.path).split(sep);
        // A file directly under prefix.d has no prefix; rkt never looks there.
        if (rel.length < 2) continue;
        const prefix = rel.slice(0, -1).join("/");
        out.push({ layer, prefix, fingerprint: f.name, path: f.path, empty: f.size === 0 });
      }
    }
    return out;
  }

  /**
   * The keys trusted for image `name` (an AC name like `coreos.com/etcd`), after masking, in load
   * order. Every applicable non-empty file is read and checked, as rkt does: a file that is not
   * an armored key fails with RKT_INVALID_ARGUMENT `error reading key: <file>: …`, one whose name
   * is not its first key's fingerprint with RKT_KEY_UNTRUSTED
   * `fingerprint mismatch: "<file>":"<fingerprint>"`. Reads only, never writes.
   */
  async keysFor(name: string): Promise<TrustedKey[]> {
    const index = await this.index();
    const loaded = new Map<string, TrustedKey>();
    for (const e of applicableEntries(name, index)) {
      if (!e.empty) loaded.set(e.path, await readKeyFile(e));
    }
    return selectKeys(name, index).map((e) => loaded.get(e.path)!);
  }

  /**
   * True when a non-empty key file exists in `prefix.d` for `name` or one of its parents (rkt's
   * `TrustedKeyPrefixExists`, which the fetcher uses to decide on pubkey discovery). Root keys
   * do not count. Does not parse the files.
   */
  async prefixHasKeys(name: string): Promise<boolean> {
    const index = await this.index();
    return index.some((e) => e.prefix !== "" && !e.empty && prefixCovers(e.prefix, name));
  }

  /**
   * Trusts the first key of an armored keyring for `scope`: writes the input verbatim to
   * `<local>/trustedkeys/{root.d|prefix.d/<prefix>}/<fingerprint>` and returns that path. Replaces
   * an existing file of that name (rkt does too). Throws RKT_INVALID_ARGUMENT for a non-armored
   * input (`error reading key`) or a prefix that is not an AC identifier.
   */
  async addKey(armored: string | Uint8Array, scope: KeyScope, source = "key"): Promise<string> {
    const parsed = await parseArmoredKeyring(armored, source);
    const dir = this.scopeDir(scope);
    await mkdirs(this.localConfigDir, dir);
    const path = join(dir, parsed.fingerprint);
    await writeAtomic(path, parsed.armored);
    return path;
  }

  /**
   * Writes an empty local file named `fingerprint` for `scope`, masking the same key when loaded
   * earlier in the order (rkt's `MaskTrustedKeySystemPrefix/Root`). Returns the path.
   */
  async maskKey(fingerprint: string, scope: KeyScope): Promise<string> {
    const fp = checkFingerprint(fingerprint);
    const dir = this.scopeDir(scope);
    await mkdirs(this.localConfigDir, dir);
    const path = join(dir, fp);
    await writeAtomic(path, "");
    return path;
  }

  /**
   * Removes the local key file `fingerprint` for `scope` (rkt's `DeleteTrustedKeyPrefix/Root`) and
   * returns its path. System keys cannot be removed (mask them instead): RKT_NOT_FOUND names the
   * local path that does not exist.
   */
  async remove(fingerprint: string, scope: KeyScope): Promise<string> {
    const fp = checkFingerprint(fingerprint);
    const path = join(this.scopeDir(scope), fp);
    const st = await lstat(path).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw ioError(path, e);
    });
    // An empty file is a mask, not a key: removing it is not what "remove a trusted key" means.
    if (st === undefined || !st.isFile() || st.size === 0) {
      throw new RktError(ErrorCode.NotFound, `no trusted key ${fp} for ${scopeText(scope)} at "${path}"`);
    }
    await rm(path);
    return path;
  }

  /**
   * Lists trusted keys. With `prefix`, the keys trusted for that image name (same as `keysFor`).
   * Without, every key of every scope, masking applied within each scope (a local empty file
   * hides the system key of the same scope and fingerprint), sorted root first, then by prefix.
   */
  async list(o: { prefix?: string | undefined } = {}): Promise<TrustedKey[]> {
    if (o.prefix !== undefined) return this.keysFor(o.prefix);
    const index = (await this.index()).sort(keyLoadOrder);
    const byScope = new Map<string, Map<string, KeyFileEntry>>();
    for (const e of index) {
      let m = byScope.get(e.prefix);
      if (m === undefined) byScope.set(e.prefix, (m = new Map<string, KeyFileEntry>()));
      m.delete(e.fingerprint);
      if (!e.empty) m.set(e.fingerprint, e);
    }
    const out: TrustedKey[] = [];
    for (const prefix of [...byScope.keys()].sort(cmp)) {
      for (const e of byScope.get(prefix)!.values()) out.push(await readKeyFile(e));
    }
    return out;
  }

  private scopeDir(scope: KeyScope): string {
    const base = join(this.localConfigDir, "trustedkeys");
    if ("root" in scope) return join(base, "root.d");
    if (!acIdentifier.test(scope.prefix)) {
      throw new RktError(
        ErrorCode.InvalidName,
        `invalid prefix ${JSON.stringify(scope.prefix)}: must be an AC identifier (lowercase letters, digits, and - . _ ~ / between them)`,
      );
    }
    return join(base, "prefix.d", ...scope.prefix.split("/"));
  }
}

async function readKeyFile(e: KeyFileEntry): Promise<TrustedKey> {
  let bytes: Buffer;
  try {
    bytes = await readFile(e.path);
  } catch (err) {
    throw ioError(e.path, err);
  }
  const parsed = await parseArmoredKeyring(bytes, e.path);
  if (parsed.fingerprint !== e.fingerprint) {
    throw new RktError(ErrorCode.KeyUntrusted, `fingerprint mismatch: "${e.path}":"${parsed.fingerprint}"`);
  }
  return {
    fingerprint: parsed.fingerprint,
    prefix: e.prefix,
    layer: e.layer,
    path: e.path,
    armored: parsed.armored,
    keys: parsed.keys,
  };
}

interface FoundFile {
  readonly name: string;
  readonly path: string;
  readonly size: number;
}

// Regular files under dir (recursively when asked); symlinks are followed as rkt's os.Stat does.
async function listFiles(dir: string, recursive: boolean): Promise<FoundFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort(cmp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw ioError(dir, e);
  }
  const out: FoundFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let st;
    try {
      st = await stat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // dangling symlink
      throw ioError(path, e);
    }
    if (st.isDirectory()) {
      if (recursive) out.push(...(await listFiles(path, true)));
    } else if (st.isFile()) {
      out.push({ name, path, size: st.size });
    }
  }
  return out;
}

async function mkdirs(root: string, dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    // mkdir's mode is filtered by the umask; rkt chmods explicitly, so do we, up to the root.
    for (let d = dir; d.length > root.length && d.startsWith(root); d = join(d, "..")) {
      await chmod(d, 0o755);
    }
  } catch (e) {
    throw ioError(dir, e);
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(text);
      await fh.chmod(0o644);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError(path, e);
  }
}

function checkFingerprint(fp: string): string {
  const lower = fp.replace(/\s+/g, "").toLowerCase();
  if (!fingerprintRe.test(lower)) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `invalid fingerprint ${JSON.stringify(fp)}: expected 40 hexadecimal digits`,
    );
  }
  return lower;
}

function scopeText(scope: KeyScope): string {
  return "root" in scope ? "the root" : `prefix "${scope.prefix}"`;
}

function ioError(path: string, e: unknown): RktError {
  return new RktError(ErrorCode.Io, `${path}: ${errorText(e)}`, { cause: e });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
