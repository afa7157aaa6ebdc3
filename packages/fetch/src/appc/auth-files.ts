// Reads rkt's `auth.d` directories for appc HTTP fetches; parsing is auth.ts's.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import { parseJsonConfig } from "../json-file.js";
import { mergeAppcAuth, parseAppcAuth, type AppcAuthConfig, type AppcAuthMap } from "./auth.js";

/**
 * The appc auth headers configured in `<dir>/auth.d/*.json` (`rktKind: "auth"`) for each of
 * `configDirs`, in rkt's order (system, local, user; later overrides earlier per domain). Files
 * not ending in `.json`, subdirectories and other kinds are ignored; a missing directory is
 * empty. Throws RKT_INVALID_ARGUMENT naming a malformed file, RKT_IO for an unreadable one.
 */
export async function readAppcAuth(configDirs: readonly string[]): Promise<AppcAuthMap> {
  const layers: { what: string; config: AppcAuthConfig }[][] = [];
  for (const dir of configDirs) {
    const authDir = join(dir, "auth.d");
    let entries;
    try {
      entries = await readdir(authDir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new RktError(ErrorCode.Io, `${authDir}: cannot list: ${(e as Error).message}`, { cause: e });
    }
    const layer: { what: string; config: AppcAuthConfig }[] = [];
    for (const name of entries
      .filter((e) => e.isFile() && e.name.endsWith(".json"))
      .map((e) => e.name)
      .sort()) {
      const path = join(authDir, name);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (e) {
        throw new RktError(ErrorCode.Io, `${path}: ${(e as Error).message}`, { cause: e });
      }
      const config = parseAppcAuth(parseJsonConfig(text, path), path);
      if (config !== undefined) layer.push({ what: path, config });
    }
    layers.push(layer);
  }
  return mergeAppcAuth(layers);
}
