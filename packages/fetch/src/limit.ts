// Bounded parallelism for blob work.

/**
 * Runs `fn` over `items`, `limit` at a time; the first failure stops new work and aborts the
 * rest through the signal each call gets (their partial blobs are kept for a resume), then is
 * rethrown.
 */
export async function runLimited<T>(
  items: readonly T[],
  limit: number,
  outer: AbortSignal | undefined,
  fn: (t: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const ac = new AbortController();
  const signal = ac.signal;
  // One listener on the caller's signal, removed at the end (AbortSignal.any keeps one per call
  // alive: a sync of many images tripped node's MaxListeners warning on the command's signal).
  const forward = (): void => ac.abort(outer?.reason);
  if (outer?.aborted === true) forward();
  outer?.addEventListener("abort", forward, { once: true });
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item, signal);
      } catch (e) {
        if (failure === undefined) {
          failure = { e };
          ac.abort(e);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  } finally {
    outer?.removeEventListener("abort", forward);
  }
  if (failure !== undefined) throw failure.e;
}
