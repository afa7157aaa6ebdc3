// openpgp is large (about 100 ms to import); load it only when a key or signature is actually
// handled, so that a warm `rkt fetch` that verifies nothing never pays for it (ARCHITECTURE.md).
import type * as OpenPgp from "openpgp";

let loading: Promise<typeof OpenPgp> | undefined;

/** The openpgp module, imported on first use and shared afterwards. */
export function pgp(): Promise<typeof OpenPgp> {
  loading ??= import("openpgp");
  return loading;
}
