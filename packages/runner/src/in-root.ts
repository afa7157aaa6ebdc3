// Reading paths of an image's root filesystem from the host without ever leaving it: symlinks
// are resolved against the image root, as the kernel would inside the container.
import { lstat, mkdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

const maxHops = 40;

/**
 * The host path of `path` inside `root` with every symlink resolved inside `root` (`..` stops at
 * the root), or undefined when a component is missing or the links loop.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const todo = path.split("/").filter((c) => c !== "" && c !== ".");
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "..") {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    const st = await lstat(host).catch(() => undefined);
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      if (++hops > maxHops) return undefined;
      const target = await readlink(host);
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...target.split("/").filter((x) => x !== "" && x !== "."));
      continue;
    }
    done.push(c);
  }
  return join(root, ...done);
}

/** The text of `path` inside `root` (symlinks resolved inside it), or undefined when absent. */
export async function readInRoot(root: string, path: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (host === undefined) return undefined;
  return readFile(host, "utf8").catch(() => undefined);
}

/** True when `path` inside `root` is an executable regular file. */
export async function isExecutableInRoot(root: string, path: string): Promise<boolean> {
  const host = await resolveInRoot(root, path);
  if (host === undefined) return false;
  const st = await lstat(host).catch(() => undefined);
  return st !== undefined && st.isFile() && (st.mode & 0o111) !== 0;
}

/**
 * Makes `path` a directory inside `root` (missing components created 0755, symlinks resolved
 * inside the root) and returns its host path: a mount point that can never be outside the image.
 */
export async function ensureDirInRoot(root: string, path: string): Promise<string> {
  const parts = path.split("/").filter((c) => c !== "" && c !== ".");
  let host = root;
  let rel = "";
  for (const c of parts) {
    rel = `${rel}/${c}`;
    const resolved = await resolveInRoot(root, rel);
    if (resolved === undefined) {
      host = join(host, c);
      await mkdir(host, { mode: 0o755 });
    } else host = resolved;
    rel = host.slice(root.length) || "/";
  }
  const st = await lstat(host);
  if (!st.isDirectory()) throw new Error(`${path} is not a directory in the image`);
  return host;
}
