// Reading one file of a rendered tree without mounting it: the top-most snapshot that has the path
// wins; a whiteout there (a 0:0 character device, or a `.wh.` marker without root) hides it. Used
// before a pod runs (the primary group of an OCI image's user); the mounted root is authoritative
// afterwards. A path whose parent directories a higher layer replaced or made opaque is read from
// the highest snapshot that has it, which can differ from the merged view in that rare case.
import { lstat, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Tree } from "@rkt/store";
import { resolveInRoot } from "./in-root.js";

/** The text of `path` in `tree`, or undefined when no snapshot has it. */
export async function readTreeFile(tree: Tree, path: string): Promise<string | undefined> {
  for (const key of [...tree.layers].reverse()) {
    const fs = join(tree.layersDir, key, "fs");
    const marker = await resolveInRoot(fs, join(dirname(path), `.wh.${basename(path)}`));
    if (marker !== undefined) return undefined;
    const host = await resolveInRoot(fs, path);
    if (host === undefined) continue;
    const st = await lstat(host);
    if (st.isCharacterDevice() && st.rdev === 0) return undefined;
    if (st.isFile()) return readFile(host, "utf8");
    return undefined;
  }
  return undefined;
}
