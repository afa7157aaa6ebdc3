// The TLS settings of one registry client, as containers/image builds them
// (pkg/tlsclientconfig, docker_client.go dockerCertDir): the machine's CA bundle, then the
// registry's certs.d directory, where `*.crt` are extra CAs and `*.cert` + `*.key` client
// certificate pairs. Internal to the package.
import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { ErrorCode, RktError } from "@rkt/oci";

/** Where {@link loadTlsConfig} looks, and what else it trusts. */
export interface TlsSources {
  /** The registry (`host[:port]`, as in image references) whose certs.d directory applies. */
  readonly host?: string | undefined;
  /** Extra CAs (PEM) given by the caller. */
  readonly caPem?: readonly string[] | undefined;
  /** Skip verification: only client certificates are loaded. */
  readonly insecure: boolean;
  /** skopeo's `--cert-dir`: the files themselves, for this registry; replaces the certs.d lookup. */
  readonly certDir?: string | undefined;
  /** Roots of `<root>/<host[:port]>/` directories, searched in order; default {@link defaultCertsDirs}. */
  readonly certsDirs?: readonly string[] | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** What the connections of one client use. */
export interface TlsConfig {
  readonly rejectUnauthorized: boolean;
  /** Undefined: Node's defaults (no private CA, no client certificate, no system bundle found). */
  readonly secureContext: SecureContext | undefined;
  /** The certs.d directory that applied, if any (for messages). */
  readonly certDir: string | undefined;
}

/** The files of one certs.d directory, sorted by role. */
export interface CertDirPlan {
  readonly cas: readonly string[];
  readonly pairs: readonly { readonly cert: string; readonly key: string }[];
}

/**
 * Splits a certs.d listing into CA files and client certificate pairs by extension, as
 * containers/image does: a `.cert` needs the `.key` of the same name and the other way round
 * (RKT_INVALID_ARGUMENT otherwise); other names are ignored. Pure.
 */
export function planCertDir(dir: string, names: readonly string[]): CertDirPlan {
  const have = new Set(names);
  const cas: string[] = [];
  const pairs: { cert: string; key: string }[] = [];
  for (const name of [...names].sort()) {
    if (name.endsWith(".crt")) cas.push(name);
    else if (name.endsWith(".cert")) {
      const key = `${name.slice(0, -".cert".length)}.key`;
      if (!have.has(key)) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${dir}: client certificate ${name} has no ${key} (CA certificates must end in .crt)`,
        );
      }
      pairs.push({ cert: name, key });
    } else if (name.endsWith(".key") && !have.has(`${name.slice(0, -".key".length)}.cert`)) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `${dir}: key ${name} has no client certificate ${name.slice(0, -".key".length)}.cert`,
      );
    }
  }
  return { cas, pairs };
}

/**
 * The certs.d roots searched when neither `certDir` nor `certsDirs` is given: `RKT_CERTS_D`
 * (a `:`-separated list) if set, else containers/image's `~/.config/containers/certs.d`,
 * `/etc/containers/certs.d`, then docker's `/etc/docker/certs.d`. Pure but for `homedir()`.
 */
export function defaultCertsDirs(env: Readonly<Record<string, string | undefined>>): string[] {
  const own = env["RKT_CERTS_D"];
  if (own !== undefined && own !== "") return own.split(":").filter((d) => d !== "");
  const home = env["HOME"] ?? homedir();
  return [
    ...(home === "" ? [] : [join(home, ".config/containers/certs.d")]),
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
  ];
}

// Go's crypto/x509 list (root_linux.go): skopeo, podman and docker trust the first one found.
const systemCaBundles = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/pki/tls/cacert.pem",
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

const pemBlock = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Reads the TLS settings for one client: roots are the machine's bundle (`SSL_CERT_FILE`, else
 * the first of the usual distribution paths; Node's bundled roots when none exists), plus `caPem`,
 * plus the `*.crt` of the registry's certs.d directory; client certificates are its
 * `*.cert`/`*.key` pairs. The first root holding a `<host[:port]>` directory wins, as in
 * containers/image; unreadable roots are skipped (a rootless user and a 0700 /etc/docker).
 * Throws RKT_INVALID_ARGUMENT for an unpaired or unparsable file or a missing `certDir`, RKT_IO
 * when a file cannot be read. One secure context per distinct set of files per process: building
 * one from a 140-certificate bundle costs ~25 ms.
 */
export async function loadTlsConfig(s: TlsSources): Promise<TlsConfig> {
  const found = await findCertDir(s);
  const dir = found?.dir;
  const plan = found === undefined ? { cas: [], pairs: [] } : planCertDir(found.dir, found.names);
  const extraCas = await Promise.all(plan.cas.map((n) => readCa(join(dir ?? "", n))));
  const pairs = await Promise.all(plan.pairs.map((p) => readPair(dir ?? "", p.cert, p.key)));
  const rejectUnauthorized = !s.insecure;
  let ca: string[] | undefined;
  if (rejectUnauthorized) {
    const system = await systemBundle(s.env);
    const extra = [...(s.caPem ?? []), ...extraCas];
    // `ca` replaces Node's roots, so list the public ones too, else a private CA would break
    // public registries.
    if (system !== undefined) ca = [system, ...extra];
    else if (extra.length > 0) ca = [...rootCertificates, ...extra];
  }
  if (ca === undefined && pairs.length === 0) {
    return { rejectUnauthorized, secureContext: undefined, certDir: dir };
  }
  const options = {
    ...(ca === undefined ? {} : { ca }),
    ...(pairs.length === 0 ? {} : { cert: pairs.map((p) => p.cert), key: pairs.map((p) => p.key) }),
  };
  return { rejectUnauthorized, secureContext: secureContextFor(options, dir), certDir: dir };
}

async function findCertDir(s: TlsSources): Promise<{ dir: string; names: string[] } | undefined> {
  if (s.certDir !== undefined) {
    try {
      return { dir: s.certDir, names: await readdir(s.certDir) };
    } catch (e) {
      if (!isMissing(e)) throw ioError(s.certDir, e);
      throw new RktError(ErrorCode.InvalidArgument, `cert dir ${s.certDir}: no such directory`, { cause: e });
    }
  }
  // `..` would name the parent of a root; no registry is called that.
  if (s.host === undefined || /^\.+(:|$)/.test(s.host)) return undefined;
  for (const root of s.certsDirs ?? defaultCertsDirs(s.env)) {
    const dir = join(root, s.host);
    try {
      return { dir, names: await readdir(dir) };
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (isMissing(e) || code === "EACCES" || code === "EPERM") continue;
      throw ioError(dir, e);
    }
  }
  return undefined;
}

function isMissing(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw ioError(path, e);
  }
}

async function readCa(path: string): Promise<string> {
  const pem = await readText(path);
  const blocks = pem.match(pemBlock) ?? [];
  if (blocks.length === 0) {
    throw new RktError(ErrorCode.InvalidArgument, `${path}: no PEM certificate in this CA file`);
  }
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new RktError(ErrorCode.InvalidArgument, `${path}: unparsable certificate`, { cause: e });
    }
  }
  return pem;
}

// Checked here, per pair, so that a mismatch names its files rather than failing in OpenSSL later.
async function readPair(
  dir: string,
  certName: string,
  keyName: string,
): Promise<{ cert: string; key: string }> {
  const [cert, key] = await Promise.all([readText(join(dir, certName)), readText(join(dir, keyName))]);
  let matches: boolean;
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
  } catch (e) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${dir}: ${certName}/${keyName}: unparsable client certificate or key`,
      { cause: e },
    );
  }
  if (!matches) {
    throw new RktError(ErrorCode.InvalidArgument, `${dir}: ${keyName} is not the key of ${certName}`);
  }
  return { cert, key };
}

const bundles = new Map<string, Promise<string | undefined>>();

/** Where the machine's CA bundle is looked for, first found wins: `SSL_CERT_FILE`, else Go's list. */
export function caBundlePaths(env: Readonly<Record<string, string | undefined>>): readonly string[] {
  const file = env["SSL_CERT_FILE"];
  return file !== undefined && file !== "" ? [file] : systemCaBundles;
}

function systemBundle(env: Readonly<Record<string, string | undefined>>): Promise<string | undefined> {
  const paths = caBundlePaths(env);
  const key = paths.join("\n");
  let p = bundles.get(key);
  if (p === undefined) {
    p = (async () => {
      for (const path of paths) {
        const text = await readFile(path, "utf8").catch(() => undefined);
        if (text?.includes("-----BEGIN CERTIFICATE-----") === true) return text;
      }
      return undefined;
    })();
    bundles.set(key, p);
  }
  return p;
}

const contexts = new Map<string, SecureContext>();

function secureContextFor(
  o: { ca?: string[]; cert?: string[]; key?: string[] },
  dir: string | undefined,
): SecureContext {
  const h = createHash("sha256");
  for (const part of [o.ca, o.cert, o.key]) h.update(JSON.stringify(part ?? null));
  const id = h.digest("hex");
  let ctx = contexts.get(id);
  if (ctx === undefined) {
    try {
      ctx = createSecureContext(o);
    } catch (e) {
      const where = dir ?? "the CA bundle";
      throw new RktError(
        ErrorCode.InvalidArgument,
        `${where}: bad certificate: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    contexts.set(id, ctx);
  }
  return ctx;
}

function ioError(path: string, e: unknown): RktError {
  const code = (e as { code?: unknown }).code;
  return new RktError(ErrorCode.Io, `${path}: cannot read (${typeof code === "string" ? code : String(e)})`, {
    cause: e,
  });
}
