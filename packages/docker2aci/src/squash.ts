// Squashing layers into one root filesystem in a single streaming pass, top layer first.
//
// docker2aci renders the layer ACIs with appc's acirenderer: upper layers win, a path whose
// parent an upper layer made a non-directory is hidden, and whiteouts act through path
// whitelists. Here the layers are read top to bottom and each entry is written at once unless an
// upper layer already decided its path: it wrote the path, wrote a non-directory at a parent, or
// deleted the path or a parent (`.wh.` whiteout), or made a parent opaque (`.wh..wh..opq`, which
// docker2aci ignores). The state is one map entry per path written or deleted, so memory grows
// with the number of entries, never with their bytes, and no layer is extracted to disk.
//
// Output order is docker2aci's: top layer first, so a file may precede its directory's entry
// (extractors create missing parents, then apply the directory's metadata).
import { ErrorCode, RktError } from "@rkt/oci";
import type { Header } from "tar-stream";
import type { LayerEntry } from "./layer-entries.js";
import { NeedsPlanError, type LayerPlan } from "./plan.js";

/** The symlinks docker2aci adds under /dev when the (top) layer does not have those paths. */
export const stdioSymlinks: readonly (readonly [string, string])[] = [
  ["dev/stdin", "/proc/self/fd/0"],
  ["dev/stdout", "/dev/console"],
  ["dev/stderr", "/dev/console"],
  ["dev/fd", "/proc/self/fd"],
];

/** What to do with one entry. */
export type Decision =
  | { readonly do: "skip" }
  | { readonly do: "emit"; readonly path: string; readonly linkname?: string | undefined };

const skip: Decision = { do: "skip" };

function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf("/"); i >= 0; i = path.indexOf("/", i + 1)) out.push(path.slice(0, i));
  return out;
}

/** The paths decided so far, across layers (levels count from the top: 0 is the top layer). */
export class SquashState {
  /** Written paths → whether a directory. */
  readonly written = new Map<string, boolean>();
  /** Deleted paths → level of the layer that deleted them. */
  readonly whiteouts = new Map<string, number>();
  /** Opaque directories → level of the layer that made them opaque. */
  readonly opaques = new Map<string, number>();

  /** True when a layer above `level` decided `path`. */
  hidden(path: string, level: number): boolean {
    if (this.written.has(path)) return true;
    const w = this.whiteouts.get(path);
    if (w !== undefined && w < level) return true;
    for (const a of ancestors(path)) {
      if (this.written.get(a) === false) return true;
      const wa = this.whiteouts.get(a);
      if (wa !== undefined && wa < level) return true;
      const o = this.opaques.get(a);
      if (o !== undefined && o < level) return true;
    }
    return false;
  }
}

/** The same `/dev` check as docker2aci: a layer's `/dev` must be a directory. */
export function checkDev(path: string, h: Header, what: string): void {
  if (path === "dev" && h.type !== "directory") {
    throw new RktError(ErrorCode.InvalidArchive, `${what}: invalid layer: "/dev" is not a directory`);
  }
}

/** Counts occurrences of paths in a layer, against its plan's duplicates. */
export class Occurrences {
  private readonly seen = new Map<string, number>();
  private readonly plan: LayerPlan;
  private readonly level: number;
  constructor(plan: LayerPlan, level: number) {
    this.plan = plan;
    this.level = level;
  }

  /** True when this occurrence of `path` is the one to use (the last); false for earlier ones. */
  isLast(path: string): boolean {
    const n = (this.seen.get(path) ?? 0) + 1;
    this.seen.set(path, n);
    const total = this.plan.duplicates.get(path);
    if (total === undefined) {
      if (n > 1) throw new NeedsPlanError(this.level, `${path} occurs more than once`);
      return true;
    }
    return n === total;
  }
}

/**
 * Decides the entries of one layer, in order. In `scan` mode a hidden hard-link target found
 * needed by a later link is recorded in the plan instead of failing the pass.
 */
export class SquashLayer {
  private readonly occurrences: Occurrences;
  /** Non-directories written from this layer under their own path. */
  private readonly kept = new Set<string>();
  /** Regular files of this layer hidden by upper layers. */
  private readonly hiddenFiles = new Set<string>();

  private readonly state: SquashState;
  readonly level: number;
  private readonly plan: LayerPlan;
  private readonly mode: "write" | "scan";
  private readonly what: string;

  constructor(state: SquashState, level: number, plan: LayerPlan, mode: "write" | "scan", what: string) {
    this.state = state;
    this.level = level;
    this.plan = plan;
    this.mode = mode;
    this.what = what;
    this.occurrences = new Occurrences(plan, level);
  }

  decide(e: Pick<LayerEntry, "path" | "kind" | "header">): Decision {
    const { state, level } = this;
    if (e.kind === "whiteout") {
      if (!state.whiteouts.has(e.path)) state.whiteouts.set(e.path, level);
      return skip;
    }
    if (e.kind === "opaque") {
      if (!state.opaques.has(e.path)) state.opaques.set(e.path, level);
      return skip;
    }
    const p = e.path;
    const h = e.header;
    if (!this.occurrences.isLast(p)) return skip;
    checkDev(p, h, this.what);
    if (state.hidden(p, level)) {
      const fix = this.plan.linkFixes.get(p);
      if (fix !== undefined && (h.type === "file" || h.type === "contiguous-file")) {
        // The data of a hidden file goes under the first kept hard link to it (docker2aci).
        state.written.set(fix, false);
        return { do: "emit", path: fix };
      }
      if (h.type === "file" || h.type === "contiguous-file") this.hiddenFiles.add(p);
      return skip;
    }
    if (h.type === "link") {
      const t = h.linkname ?? "";
      const fixed = this.plan.linkFixes.get(t);
      if (this.kept.has(t)) {
        // written below
      } else if (fixed !== undefined) {
        state.written.set(p, false);
        return fixed === p ? skip : { do: "emit", path: p, linkname: fixed };
      } else if (this.hiddenFiles.has(t)) {
        if (this.mode === "write") throw new NeedsPlanError(level, `hard link ${p} to hidden ${t}`);
        this.plan.linkFixes.set(t, p);
        state.written.set(p, false);
        return skip;
      } else {
        throw new RktError(
          ErrorCode.InvalidArchive,
          `${this.what}: hard link ${JSON.stringify(p)} to ${JSON.stringify(t)}: the target is not an earlier regular file of the same layer`,
        );
      }
      state.written.set(p, false);
      this.kept.add(p);
      return { do: "emit", path: p, linkname: t };
    }
    const dir = h.type === "directory";
    state.written.set(p, dir);
    if (!dir) this.kept.add(p);
    return { do: "emit", path: p };
  }

  /** The stdio symlinks to add after the top layer (paths it did not provide). */
  stdioToAdd(): (readonly [string, string])[] {
    return stdioSymlinks.filter(([p]) => !this.state.hidden(p, this.level));
  }
}
