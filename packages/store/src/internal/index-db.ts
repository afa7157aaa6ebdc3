// The SQLite index of an open store, for this package's modules only: `LocalStore` keeps it
// private so that no other package runs SQL against the store (they use the exported functions).
import type { IndexDb } from "../db.js";

const dbs = new WeakMap<object, IndexDb>();

/** Records the index of a store being constructed. */
export function registerIndexDb(store: object, db: IndexDb): void {
  dbs.set(store, db);
}

/** The index of `store`. */
export function indexDb(store: object): IndexDb {
  const db = dbs.get(store);
  if (db === undefined) throw new Error("not an open LocalStore");
  return db;
}
