// undici, loaded on first use: it is ~1 MB of CommonJS compiled on every start (~0.1 s), and a
// warm `rkt fetch` of an unchanged tag, which sends one small request, never needs it.
import { createRequire } from "node:module";
import type * as Undici from "undici";

let loaded: typeof Undici | undefined;

/** The undici module, required synchronously the first time it is asked for. Internal. */
export function undici(): typeof Undici {
  loaded ??= createRequire(import.meta.url)("undici") as typeof Undici;
  return loaded;
}
