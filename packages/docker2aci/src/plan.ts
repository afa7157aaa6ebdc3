// The decisions a streaming conversion cannot make while it reads a layer once, and the pass that
// makes them. A tar is read front to back and bodies are not kept, so two cases need knowledge of
// entries not yet read: a path that occurs twice in one layer (the later one wins, as with tar
// extraction, but the earlier one comes first), and, when squashing, a hard link kept while its
// target (an earlier entry) was hidden by an upper layer (docker2aci then writes the target's
// data under the first kept link). Both are rare; the writing pass detects them and the converter
// runs {@link scanSquashPlans} (or {@link scanDuplicates}) once, then writes again with the plans.

/** What the writing pass must know in advance about one layer. */
export interface LayerPlan {
  /** path → how many times the layer holds it (only paths held more than once); all but the last are skipped. */
  readonly duplicates: Map<string, number>;
  /** Squash only: path of a hidden hard-link target → the first kept link, which gets its data. */
  readonly linkFixes: Map<string, string>;
}

/** A plan with nothing to do. */
export function emptyPlan(): LayerPlan {
  return { duplicates: new Map(), linkFixes: new Map() };
}

/** Thrown by a writing pass that met a case its plan does not cover; the converter re-plans. */
export class NeedsPlanError extends Error {
  readonly level: number;
  constructor(level: number, reason: string) {
    super(`layer ${level} needs a plan: ${reason}`);
    this.level = level;
    this.name = "NeedsPlanError";
  }
}
