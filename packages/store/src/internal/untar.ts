// A careful tar extractor: entries that would land outside the target (`..`, absolute paths,
// paths through a symlink the archive created, hard links to outside) are refused.
import { createWriteStream } from "node:fs";
import { chmod, lchown, link, mkdir, rm, symlink, utimes } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { tarStream } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";

/** Options of {@link extractTar}. */
export interface ExtractTarOptions {
  /** Only extract entries under this top-level directory, with it stripped (e.g. "rootfs"). */
  only?: string | undefined;
  /** Names the archive in errors. */
  what: string;
}

function clean(name: string, what: string): string {
  const n = posix.normalize(name.replace(/^(\.\/)+/, "")).replace(/\/+$/, "");
  if (n.startsWith("/") || n === ".." || n.startsWith("../")) {
    throw new RktError(
      ErrorCode.InvalidArchive,
      `${what}: entry ${JSON.stringify(name)} escapes the target directory`,
    );
  }
  return n === "." ? "" : n;
}

/**
 * Extracts a tar stream into `dest` (which must exist and be empty). Directories, regular files,
 * symlinks and hard links are created with their modes (and owners, when running as root);
 * device and FIFO entries are skipped (Node cannot mknod). RKT_INVALID_ARCHIVE on an escaping
 * entry or a malformed archive.
 */
export async function extractTar(src: Readable, dest: string, o: ExtractTarOptions): Promise<void> {
  const ex = tarStream().extract();
  const links = new Set<string>();
  const asRoot = process.getuid?.() === 0;
  const mapName = (raw: string): string | undefined => {
    const n = clean(raw, o.what);
    if (o.only === undefined) return n;
    if (n === o.only) return "";
    return n.startsWith(`${o.only}/`) ? n.slice(o.only.length + 1) : undefined;
  };
  const throughLink = (rel: string): boolean => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) if (links.has(parts.slice(0, i).join("/"))) return true;
    return false;
  };
  const consume = (async () => {
    for await (const entry of ex) {
      const h = entry.header;
      const rel = mapName(h.name);
      if (rel === undefined || (rel === "" && h.type !== "directory")) {
        entry.resume();
        continue;
      }
      if (throughLink(rel)) {
        throw new RktError(
          ErrorCode.InvalidArchive,
          `${o.what}: entry ${JSON.stringify(h.name)} goes through a symlink`,
        );
      }
      const target = rel === "" ? dest : join(dest, rel);
      const mode = (h.mode ?? 0o644) & 0o7777;
      if (rel !== "") await mkdir(dirname(target), { recursive: true });
      switch (h.type) {
        case "directory": {
          await mkdir(target, { recursive: true });
          await chmod(target, mode);
          entry.resume();
          break;
        }
        case "file":
        case "contiguous-file":
        case undefined:
        case null: {
          await rm(target, { force: true, recursive: true });
          await pipeline(entry, createWriteStream(target, { mode }));
          await chmod(target, mode);
          if (h.mtime !== undefined) await utimes(target, h.mtime, h.mtime);
          break;
        }
        case "symlink": {
          await rm(target, { force: true, recursive: true });
          await symlink(h.linkname ?? "", target);
          links.add(rel);
          entry.resume();
          break;
        }
        case "link": {
          const to = mapName(h.linkname ?? "");
          if (to === undefined || to === "" || throughLink(to) || links.has(to)) {
            throw new RktError(
              ErrorCode.InvalidArchive,
              `${o.what}: hard link ${JSON.stringify(h.name)} points outside the extracted tree`,
            );
          }
          await rm(target, { force: true, recursive: true });
          await link(join(dest, to), target);
          entry.resume();
          break;
        }
        case "character-device":
        case "block-device":
        case "fifo":
        default:
          entry.resume();
          continue;
      }
      // Hard links share the inode of their target, whose owner and mode are already set.
      if (asRoot && h.type !== "link" && h.uid !== undefined && h.gid !== undefined) {
        await lchown(target, h.uid, h.gid).catch(() => undefined);
        // chown clears setuid bits; restore the mode (symlinks have none).
        if (h.type !== "symlink") await chmod(target, mode);
      }
    }
  })();
  const feed = pipeline(src, ex);
  // Both are awaited through Promise.all; these keep the loser's rejection from going unhandled.
  feed.catch(() => undefined);
  consume.catch(() => undefined);
  try {
    await Promise.all([feed, consume]);
  } catch (e) {
    ex.destroy();
    if (e instanceof RktError) throw e;
    throw new RktError(ErrorCode.InvalidArchive, `${o.what}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}
