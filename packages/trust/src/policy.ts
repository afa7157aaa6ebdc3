// policy.json with the containers semantics (containers-policy.json(5); containers/image
// signature/policy_config.go and policy_eval*.go): the requirements of the most specific scope
// that names the image must all be satisfied.
import { readFile } from "node:fs/promises";
import {
  ErrorCode,
  RktError,
  formatJsonPath,
  isRktError,
  parseJsonStrict,
  type DockerRef,
  type ParseIssue,
  type ParseResult,
} from "@rkt/oci";
import type { Key } from "openpgp";
import {
  checkSignedIdentity,
  formatNamedRef,
  namedFromDockerRef,
  type NamedRef,
  type SignedIdentity,
} from "./identity.js";
import { errorText, parseAnyKeyring } from "./key.js";
import { dockerScopes } from "./lookaside.js";
import { verifySimpleSignature, type SimpleSignatureVerdict } from "./simple-signing.js";

/** One policy requirement. */
export type PolicyRequirement =
  | { readonly type: "insecureAcceptAnything" }
  | { readonly type: "reject" }
  | {
      readonly type: "signedBy";
      readonly keyType: "GPGKeys";
      /** Exactly one of keyPath, keyPaths, keyData is present. */
      readonly keyPath?: string | undefined;
      readonly keyPaths?: readonly string[] | undefined;
      /** Base64 of a keyring (binary or armored). */
      readonly keyData?: string | undefined;
      readonly signedIdentity: SignedIdentity;
    };

/** A parsed policy.json. */
export interface Policy {
  readonly default: readonly PolicyRequirement[];
  /** transport -> scope -> requirements. */
  readonly transports: Readonly<Record<string, Readonly<Record<string, readonly PolicyRequirement[]>>>>;
}

type Path = (string | number)[];

class PolicyIssue extends Error {
  readonly path: Path;
  constructor(path: Path, message: string) {
    super(message);
    this.path = path;
  }
}

/**
 * Parses policy.json strictly, as containers/image does: duplicate members, unknown fields,
 * wrong types, an empty or missing `default`, an empty requirement list, a `signedBy` without
 * exactly one of `keyPath`/`keyPaths`/`keyData`, a keyType other than `GPGKeys`, an unknown
 * `signedIdentity` type and a non-canonical docker scope are all refused; the issue names the
 * JSON path (`$.transports.docker["example.com"][0].keyPaths`). Pure.
 */
export function parsePolicy(bytes: Uint8Array | string): ParseResult<Policy> {
  const r = parseJsonStrict(bytes);
  if (!r.ok) return r;
  try {
    const top = object(r.value, [], ["default", "transports"], ["default"]);
    const policy: Policy = {
      default: requirements(top["default"], ["default"]),
      transports: top["transports"] === undefined ? {} : transports(top["transports"], ["transports"]),
    };
    return { ok: true, value: policy, raw: r.raw };
  } catch (e) {
    if (e instanceof PolicyIssue) {
      const issue: ParseIssue = { path: formatJsonPath(e.path), message: e.message };
      return { ok: false, issues: [issue] };
    }
    throw e;
  }
}

/** `parsePolicy`, throwing RKT_INVALID_ARGUMENT `<source>: <JSONPath>: <problem>`. Pure. */
export function parsePolicyOrThrow(bytes: Uint8Array | string, source: string): Policy {
  const r = parsePolicy(bytes);
  if (!r.ok) {
    const i = r.issues[0]!;
    throw new RktError(ErrorCode.InvalidArgument, `${source}: ${i.path}: ${i.message}`);
  }
  return r.value;
}

/**
 * Where containers tools look for policy.json, in order: the user's
 * `$HOME/.config/containers/policy.json`, then `/etc/containers/policy.json`. Pure.
 */
export function policyPaths(home: string | undefined): string[] {
  return [
    ...(home === undefined || home === "" ? [] : [`${home}/.config/containers/policy.json`]),
    "/etc/containers/policy.json",
  ];
}

/** Reads and parses a policy.json file. Throws as `parsePolicyOrThrow`, RKT_IO on read errors. */
export async function readPolicy(path: string): Promise<Policy> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new RktError(ErrorCode.Io, `${path}: ${errorText(e)}`, { cause: e });
  }
  return parsePolicyOrThrow(bytes, path);
}

/** What the image being admitted is. */
export interface PolicyImage {
  /** `docker`, `oci`, `oci-archive`, `docker-archive`, `dir`, … (policy.json transport names). */
  readonly transport: string;
  /** A `DockerRef` for `docker`; for path transports the policy identity string (`/abs/dir:ref`). */
  readonly reference: DockerRef | string;
  /** The digest of the manifest that will be used. */
  readonly manifestDigest: string;
  /** Loads the image's signature blobs; called at most once, and only if a requirement needs them. */
  readonly signatures: () => Promise<readonly Uint8Array[]>;
  /** Reads `keyPath` files; defaults to the file system. */
  readonly readKeyFile?: ((path: string) => Promise<Uint8Array>) | undefined;
  /** The time keys and signatures must be valid at; defaults to now. */
  readonly date?: Date | undefined;
}

/** The policy's decision for one image. */
export type PolicyDecision =
  | {
      readonly accepted: true;
      /** The scope whose requirements applied: `""` for the transport default, `default` for the global one. */
      readonly scope: string;
      /** Signatures that satisfied `signedBy` requirements. */
      readonly signatures: readonly SimpleSignatureVerdict[];
    }
  | { readonly accepted: false; readonly scope: string; readonly reasons: readonly string[] };

/**
 * The requirements for an image: those of the most specific matching scope of its transport
 * (for docker: `host/repo:tag|@digest`, `host/repo`, namespaces, `host`, `*.domain` wildcards),
 * then the transport's `""`, then `default`. Pure.
 */
export function requirementsFor(
  policy: Policy,
  transport: string,
  reference: DockerRef | string,
): { scope: string; requirements: readonly PolicyRequirement[] } {
  const scopes = policy.transports[transport];
  if (scopes !== undefined) {
    for (const s of [...scopeCandidates(reference), ""]) {
      const reqs = scopes[s];
      if (reqs !== undefined) return { scope: s, requirements: reqs };
    }
  }
  return { scope: "default", requirements: policy.default };
}

/**
 * Decides whether an image may be used: every requirement of its scope must accept it.
 * `insecureAcceptAnything` accepts; `reject` refuses; `signedBy` needs at least one signature
 * that `verifySimpleSignature` accepts with that requirement's keys and `signedIdentity`. Failures
 * are returned as reasons, not thrown (containers' messages: `A signature was required, but no
 * signature exists`, `None of the signatures were accepted, reasons: …`); only errors from
 * `signatures()` itself propagate. Reads key files (through `readKeyFile`); no network.
 */
export async function evaluatePolicy(policy: Policy, image: PolicyImage): Promise<PolicyDecision> {
  const { scope, requirements } = requirementsFor(policy, image.transport, image.reference);
  const named: NamedRef | undefined =
    typeof image.reference === "string" ? undefined : namedFromDockerRef(image.reference);
  // containers names the image as transports.ImageName does: `docker://host/repo:tag`, `oci:/path:ref`.
  const shown =
    typeof image.reference === "string"
      ? `${image.transport}:${image.reference}`
      : `docker://${formatNamedRef(namedFromDockerRef(image.reference))}`;
  let sigs: Promise<readonly Uint8Array[]> | undefined;
  const reasons: string[] = [];
  const accepted: SimpleSignatureVerdict[] = [];
  for (const req of requirements) {
    switch (req.type) {
      case "insecureAcceptAnything":
        break;
      case "reject":
        reasons.push(`Running image ${shown} is rejected by policy.`);
        break;
      case "signedBy": {
        let keys: readonly Key[];
        try {
          keys = await loadKeys(req, image.readKeyFile ?? ((p) => readFile(p)));
        } catch (e) {
          reasons.push(errorText(e));
          break;
        }
        sigs ??= image.signatures();
        const blobs = await sigs;
        if (blobs.length === 0) {
          reasons.push("A signature was required, but no signature exists");
          break;
        }
        const why: string[] = [];
        let ok: SimpleSignatureVerdict | undefined;
        for (const blob of blobs) {
          try {
            ok = await verifySimpleSignature(blob, {
              keys,
              expectedReference: named,
              manifestDigest: image.manifestDigest,
              signedIdentity: req.signedIdentity,
              date: image.date,
            });
            break;
          } catch (e) {
            if (!isRktError(e)) throw e;
            why.push(e.message);
          }
        }
        if (ok !== undefined) accepted.push(ok);
        else if (why.length === 1) reasons.push(why[0]!);
        else reasons.push(`None of the signatures were accepted, reasons: ${why.join("; ")}`);
        break;
      }
    }
  }
  return reasons.length === 0
    ? { accepted: true, scope, signatures: accepted }
    : { accepted: false, scope, reasons };
}

/**
 * Every public key a `signedBy` requirement of `policy` names, in any transport or scope (the
 * keys this machine accepts signatures from). A key file that cannot be read or parsed is
 * skipped: the policy's own evaluation reports it where it matters. Reads key files.
 */
export async function policyKeys(
  policy: Policy,
  readKeyFile: (path: string) => Promise<Uint8Array> = (p) => readFile(p),
): Promise<Key[]> {
  const reqs = [
    ...policy.default,
    ...Object.values(policy.transports).flatMap((t) => Object.values(t).flat()),
  ];
  const out: Key[] = [];
  for (const req of reqs) {
    if (req.type !== "signedBy") continue;
    try {
      out.push(...(await loadKeys(req, readKeyFile)));
    } catch (e) {
      if (!isRktError(e)) throw e;
    }
  }
  return out;
}

async function loadKeys(
  req: Extract<PolicyRequirement, { type: "signedBy" }>,
  read: (path: string) => Promise<Uint8Array>,
): Promise<readonly Key[]> {
  if (req.keyData !== undefined) return parseAnyKeyring(Buffer.from(req.keyData, "base64"), "keyData");
  const out: Key[] = [];
  for (const p of req.keyPaths ?? [req.keyPath!]) {
    let bytes: Uint8Array;
    try {
      bytes = await read(p);
    } catch (e) {
      throw new RktError(ErrorCode.Io, `error reading key: ${p}: ${errorText(e)}`, { cause: e });
    }
    out.push(...(await parseAnyKeyring(bytes, p)));
  }
  return out;
}

function scopeCandidates(reference: DockerRef | string): string[] {
  if (typeof reference !== "string") return dockerScopes(reference);
  const out = [reference];
  if (reference.startsWith("/")) {
    // Path transports: the identity, then each parent directory ("/" itself is never a scope).
    let dir = reference.split(":")[0]!;
    if (dir !== reference) out.push(dir);
    while ((dir = dir.slice(0, dir.lastIndexOf("/"))) !== "") out.push(dir);
  }
  return out;
}

// ---- strict parsing ----

function object(
  v: unknown,
  path: Path,
  fields: readonly string[],
  required: readonly string[],
): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new PolicyIssue(path, "must be an object");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!fields.includes(k)) throw new PolicyIssue([...path, k], "unknown field");
  }
  for (const f of required) {
    if (!(f in o)) throw new PolicyIssue(path, `missing field ${JSON.stringify(f)}`);
  }
  return o;
}

function transports(v: unknown, path: Path): Record<string, Record<string, PolicyRequirement[]>> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new PolicyIssue(path, "must be an object");
  const out: Record<string, Record<string, PolicyRequirement[]>> = {};
  for (const [t, scopes] of Object.entries(v)) {
    if (typeof scopes !== "object" || scopes === null || Array.isArray(scopes)) {
      throw new PolicyIssue([...path, t], "must be an object");
    }
    const m: Record<string, PolicyRequirement[]> = {};
    for (const [scope, reqs] of Object.entries(scopes as Record<string, unknown>)) {
      const problem = checkScope(t, scope);
      if (problem !== undefined) throw new PolicyIssue([...path, t, scope], problem);
      m[scope] = requirements(reqs, [...path, t, scope]);
    }
    out[t] = m;
  }
  return out;
}

const hostRe =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$/;
const dockerScopeRe =
  /^[a-z0-9.-]+(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+(?::[\w][\w.-]{0,127}|@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})?$/;

function checkScope(transport: string, scope: string): string | undefined {
  if (scope === "") return undefined;
  if (transport === "docker" || transport === "atomic") {
    if (scope.startsWith("*.")) {
      return hostRe.test(scope.slice(2)) && !scope.includes(":")
        ? undefined
        : `invalid wildcard scope ${JSON.stringify(scope)}`;
    }
    if (!scope.includes("/")) {
      return (hostRe.test(scope) && scope.includes(".")) || scope.includes(":") || scope === "localhost"
        ? undefined
        : `invalid scope ${JSON.stringify(scope)}: a docker scope is a fully expanded host[/namespace][/repo][:tag|@digest]`;
    }
    return dockerScopeRe.test(scope)
      ? undefined
      : `invalid scope ${JSON.stringify(scope)}: a docker scope is a fully expanded host[/namespace][/repo][:tag|@digest]`;
  }
  if (["oci", "oci-archive", "dir", "docker-archive", "tarball"].includes(transport)) {
    if (!scope.startsWith("/")) return `invalid scope ${JSON.stringify(scope)}: must be an absolute path`;
    if (scope === "/" || /\/$|\/\.\.?(?:\/|$)|\/\//.test(scope)) {
      return `invalid scope ${JSON.stringify(scope)}: must be a clean absolute path other than "/"`;
    }
  }
  return undefined;
}

function requirements(v: unknown, path: Path): PolicyRequirement[] {
  if (!Array.isArray(v)) throw new PolicyIssue(path, "must be an array of requirements");
  if (v.length === 0) throw new PolicyIssue(path, "list of requirements must not be empty");
  return v.map((r, i) => requirement(r, [...path, i]));
}

function requirement(v: unknown, path: Path): PolicyRequirement {
  const type = object(
    v,
    path,
    ["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"],
    ["type"],
  )["type"];
  switch (type) {
    case "insecureAcceptAnything":
    case "reject":
      object(v, path, ["type"], ["type"]);
      return { type };
    case "signedBy": {
      const o = object(
        v,
        path,
        ["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"],
        ["type", "keyType"],
      );
      if (o["keyType"] !== "GPGKeys") {
        throw new PolicyIssue(
          [...path, "keyType"],
          `unsupported keyType ${JSON.stringify(o["keyType"])}; only "GPGKeys" is`,
        );
      }
      const given = ["keyPath", "keyPaths", "keyData"].filter((k) => o[k] !== undefined);
      if (given.length !== 1) {
        throw new PolicyIssue(
          path,
          `exactly one of keyPath, keyPaths and keyData must be given (found ${given.length})`,
        );
      }
      const base = {
        type: "signedBy" as const,
        keyType: "GPGKeys" as const,
        signedIdentity: signedIdentity(o["signedIdentity"], [...path, "signedIdentity"]),
      };
      if (o["keyPath"] !== undefined) {
        if (typeof o["keyPath"] !== "string" || o["keyPath"] === "")
          throw new PolicyIssue([...path, "keyPath"], "must be a non-empty string");
        return { ...base, keyPath: o["keyPath"] };
      }
      if (o["keyPaths"] !== undefined) {
        const ps = o["keyPaths"];
        if (!Array.isArray(ps) || ps.length === 0)
          throw new PolicyIssue([...path, "keyPaths"], "must be a non-empty array of paths");
        ps.forEach((p, i) => {
          if (typeof p !== "string" || p === "")
            throw new PolicyIssue([...path, "keyPaths", i], "must be a non-empty string");
        });
        return { ...base, keyPaths: ps as string[] };
      }
      const d = o["keyData"];
      if (typeof d !== "string" || d === "" || !/^[A-Za-z0-9+/]*={0,2}$/.test(d) || d.length % 4 !== 0) {
        throw new PolicyIssue([...path, "keyData"], "must be base64 of a keyring");
      }
      return { ...base, keyData: d };
    }
    default:
      throw new PolicyIssue([...path, "type"], `unknown requirement type ${JSON.stringify(type)}`);
  }
}

function signedIdentity(v: unknown, path: Path): SignedIdentity {
  if (v === undefined) return { type: "matchRepoDigestOrExact" };
  const type = object(
    v,
    path,
    ["type", "dockerReference", "dockerRepository", "prefix", "signedPrefix"],
    ["type"],
  )["type"];
  let rule: SignedIdentity;
  const str = (o: Record<string, unknown>, k: string): string => {
    const s = o[k];
    if (typeof s !== "string" || s === "") throw new PolicyIssue([...path, k], "must be a non-empty string");
    return s;
  };
  switch (type) {
    case "matchExact":
    case "matchRepoDigestOrExact":
    case "matchRepository":
      object(v, path, ["type"], ["type"]);
      rule = { type };
      break;
    case "exactReference":
      rule = {
        type,
        dockerReference: str(
          object(v, path, ["type", "dockerReference"], ["type", "dockerReference"]),
          "dockerReference",
        ),
      };
      break;
    case "exactRepository":
      rule = {
        type,
        dockerRepository: str(
          object(v, path, ["type", "dockerRepository"], ["type", "dockerRepository"]),
          "dockerRepository",
        ),
      };
      break;
    case "remapIdentity": {
      const o = object(v, path, ["type", "prefix", "signedPrefix"], ["type", "prefix", "signedPrefix"]);
      rule = { type, prefix: str(o, "prefix"), signedPrefix: str(o, "signedPrefix") };
      break;
    }
    default:
      throw new PolicyIssue([...path, "type"], `unknown signedIdentity type ${JSON.stringify(type)}`);
  }
  const problem = checkSignedIdentity(rule);
  if (problem !== undefined) throw new PolicyIssue(path, problem);
  return rule;
}
