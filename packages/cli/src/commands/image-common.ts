// Helpers shared by the `rkt image` commands: opening the store, argument errors.
import { ErrorCode, RktError } from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";

/** Opens the store under `--dir`, runs `fn`, always closes it. */
export async function withStore<T>(
  ctx: CommandContext,
  fn: (store: LocalStore) => Promise<T> | T,
): Promise<T> {
  const { LocalStore } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/** A usage error (wrong argument count): exit 254 with the message. */
export function usageError(message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, message);
}
