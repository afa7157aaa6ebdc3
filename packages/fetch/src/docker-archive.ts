// `docker save` archives (docker-archive) and the tar plumbing shared with OCI archives: walking
// entries of a possibly compressed tar, and unpacking the regular files of one into a temporary
// directory for random access.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { cleanTarPath, decompressStream } from "@rkt/appc";
import {
  ErrorCode,
  RktError,
  createDigester,
  isRktError,
  parseImageConfig,
  parseJsonStrict,
  type Digest,
} from "@rkt/oci";
import { extract as tarExtract } from "tar-stream";
import { maxDocumentBytes, readFileLimited } from "./oci-layout.js";
import type { ValidationIssue } from "./validate.js";

/**
 * Walks the entries of a tar archive (plain, gzip, bzip2, xz or zstd, detected by magic), calling
 * `onEntry` with each cleaned entry name and its body (drained afterwards if unread). Returning
 * true stops the walk. Throws RKT_INVALID_ARCHIVE when the data is not a readable tar.
 */
export async function listArchiveEntries(
  file: string,
  onEntry: (name: string, body: Readable, type: string) => Promise<boolean>,
): Promise<void> {
  const { stream } = await decompressStream(createReadStream(file));
  const extract = tarExtract();
  const feeding = pipeline(stream, extract as unknown as NodeJS.WritableStream);
  let stopped = false;
  const consuming = (async () => {
    for await (const entry of extract) {
      const name = cleanTarPath(entry.header.name);
      const body = Readable.from(entry, { objectMode: false });
      if (await onEntry(name, body, entry.header.type ?? "file")) {
        stopped = true;
        return;
      }
      if (!body.readableEnded) {
        body.resume();
        await new Promise<void>((resolve, reject) => {
          body.once("end", resolve);
          body.once("error", reject);
          if (body.readableEnded) resolve();
        });
      }
    }
  })();
  const [consumed, fed] = await Promise.allSettled([consuming, feeding]);
  // Stopping early leaves the rest of the file unread: release it.
  if (stopped) {
    stream.destroy();
    return;
  }
  const e: unknown =
    consumed.status === "rejected" ? consumed.reason : fed.status === "rejected" ? fed.reason : undefined;
  if (e === undefined) return;
  if (isRktError(e) || (e instanceof Error && "syscall" in e)) throw e;
  throw new RktError(
    ErrorCode.InvalidArchive,
    `${file}: not a readable tar archive: ${(e as Error).message}`,
    {
      cause: e,
    },
  );
}

// Entry names we unpack: relative, inside the archive, no `..` (anything else is skipped, so a
// hostile archive cannot write outside the temporary directory).
function safeName(name: string): boolean {
  return name !== "." && !name.startsWith("/") && name !== ".." && !name.startsWith("../");
}

/**
 * Unpacks the regular files of a (possibly compressed) tar archive into a fresh temporary
 * directory, runs `fn` on it and removes the directory, whatever happens. Links, devices and
 * names leaving the archive are skipped. An archive that cannot be read yields one issue at `$`.
 */
export async function withExtractedArchive(
  file: string,
  fn: (dir: string) => Promise<ValidationIssue[]>,
): Promise<ValidationIssue[]> {
  const dir = await mkdtemp(join(tmpdir(), "rkt-validate-"));
  try {
    try {
      await listArchiveEntries(file, async (name, body, type) => {
        if ((type !== "file" && type !== "contiguous-file") || !safeName(name)) return false;
        const dest = join(dir, name);
        await mkdir(dirname(dest), { recursive: true });
        await pipeline(body, createWriteStream(dest));
        return false;
      });
    } catch (e) {
      if (isRktError(e)) return [{ path: "$", message: e.message.replace(`${file}: `, "") }];
      if (typeof e === "object" && e !== null && "syscall" in e)
        return [{ path: "$", message: String((e as { message?: unknown }).message) }];
      throw e;
    }
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// A config named after its digest (`<hex>.json` in classic archives, `blobs/sha256/<hex>` in
// Docker 25+ archives) can be checked against it.
function digestFromName(name: string): Digest | undefined {
  const m = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(name);
  return m === null ? undefined : (`sha256:${m[1]}` as Digest);
}

// sha256 of a layer's uncompressed tar (docker save layers are plain tars; compressed ones are
// decompressed first, so that the result compares with the config's diff_ids).
async function diffIdOf(file: string): Promise<Digest> {
  const { stream } = await decompressStream(createReadStream(file));
  const d = createDigester("sha256");
  await pipeline(
    stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        d.update(c);
        cb();
      },
    }),
  );
  return d.digest();
}

/**
 * Validates an unpacked docker-archive: `manifest.json` (an array of `{Config, RepoTags, Layers}`),
 * each config (a valid image config; its digest when its name carries one) and each layer (present,
 * uncompressed digest equal to the config's diff_id, as many layers as diff_ids). Issue paths are
 * rooted at manifest.json; config issues continue into the config (`$[0].Config.rootfs`).
 */
export async function validateDockerArchiveDir(dir: string): Promise<ValidationIssue[]> {
  const issues: ValidationIssue[] = [];
  let raw: Uint8Array;
  try {
    raw = await readFileLimited(join(dir, "manifest.json"), maxDocumentBytes, "manifest.json");
  } catch (e) {
    if (!isRktError(e)) throw e;
    return [{ path: "$", message: e.code === ErrorCode.NotFound ? "manifest.json is missing" : e.message }];
  }
  const j = parseJsonStrict(raw);
  if (!j.ok) return j.issues.map((i) => ({ path: i.path, message: `manifest.json: ${i.message}` }));
  if (!Array.isArray(j.value)) return [{ path: "$", message: "manifest.json must be a JSON array" }];
  if (j.value.length === 0) return [{ path: "$", message: "manifest.json lists no images" }];
  for (const [i, entry] of (j.value as unknown[]).entries()) {
    const p = `$[${i}]`;
    if (!isObject(entry)) {
      issues.push({ path: p, message: "must be an object" });
      continue;
    }
    const cfgName = entry["Config"];
    const layers = entry["Layers"];
    const tags = entry["RepoTags"];
    if (
      tags !== undefined &&
      tags !== null &&
      !(Array.isArray(tags) && tags.every((t) => typeof t === "string"))
    ) {
      issues.push({ path: `${p}.RepoTags`, message: "must be an array of strings" });
    }
    if (!Array.isArray(layers) || !layers.every((l) => typeof l === "string")) {
      issues.push({ path: `${p}.Layers`, message: "must be an array of file names" });
    }
    if (typeof cfgName !== "string" || cfgName === "") {
      issues.push({ path: `${p}.Config`, message: "must name the config file" });
      continue;
    }
    let diffIds: readonly Digest[] | undefined;
    const cfgPath = `${p}.Config`;
    const cleanCfg = cleanTarPath(cfgName);
    if (!safeName(cleanCfg)) {
      issues.push({ path: cfgPath, message: `${JSON.stringify(cfgName)} is outside the archive` });
    } else {
      try {
        const bytes = await readFileLimited(join(dir, cleanCfg), maxDocumentBytes, cfgName);
        const want = digestFromName(cleanCfg);
        const got = createDigester("sha256");
        got.update(bytes);
        const actual = got.digest();
        if (want !== undefined && actual !== want) {
          issues.push({
            path: cfgPath,
            message: `config ${cfgName}: digest mismatch: expected ${want}, got ${actual}`,
          });
        }
        const r = parseImageConfig(bytes);
        if (r.ok) diffIds = r.value.rootfs.diff_ids;
        else
          for (const x of r.issues)
            issues.push({ path: cfgPath + x.path.slice(1), message: `config ${cfgName}: ${x.message}` });
      } catch (e) {
        if (!isRktError(e)) throw e;
        issues.push({
          path: cfgPath,
          message: e.code === ErrorCode.NotFound ? `config ${cfgName} is missing` : e.message,
        });
      }
    }
    if (!Array.isArray(layers)) continue;
    if (diffIds !== undefined && diffIds.length !== layers.length) {
      issues.push({
        path: `${p}.Layers`,
        message: `${layers.length} layers but the config lists ${diffIds.length} diff_ids`,
      });
    }
    for (const [k, l] of layers.entries()) {
      if (typeof l !== "string") continue;
      const lp = `${p}.Layers[${k}]`;
      const clean = cleanTarPath(l);
      if (!safeName(clean)) {
        issues.push({ path: lp, message: `${JSON.stringify(l)} is outside the archive` });
        continue;
      }
      const st = await stat(join(dir, clean)).catch(() => undefined);
      if (st === undefined || !st.isFile()) {
        issues.push({ path: lp, message: `layer ${l} is missing` });
        continue;
      }
      const want = diffIds?.[k];
      if (want === undefined || want.startsWith("sha512:")) continue;
      let got: Digest;
      try {
        got = await diffIdOf(join(dir, clean));
      } catch (e) {
        issues.push({ path: lp, message: `layer ${l}: cannot decompress: ${(e as Error).message}` });
        continue;
      }
      if (got !== want) {
        issues.push({
          path: lp,
          message: `layer ${l}: diff_id mismatch: config says ${want}, content is ${got}`,
        });
      }
    }
  }
  return issues;
}
