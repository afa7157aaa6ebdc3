// A fresh store per test, closed afterwards.
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { LocalStore } from "@rkt/store";

/** Runs `fn` with a new store in a fresh directory under `parent`; the store is closed after. */
export async function withStoreIn<T>(parent: string, fn: (s: LocalStore) => Promise<T>): Promise<T> {
  const s = await LocalStore.open(await mkdtemp(join(parent, "store-")));
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}
