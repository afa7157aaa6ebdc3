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
  const signal = outer === undefined ? ac.signal : AbortSignal.any([outer, ac.signal]);
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
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.e;
}
