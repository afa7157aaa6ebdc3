// Helpers shared by the `rkt image` commands: opening the store, argument errors.
import { ErrorCode, RktError } from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import type { ParsedArgs } from "../flags.js";

/**
 * Opens the store under `--dir`, runs `fn`, always closes it. `cleanup` for commands that free
 * space: they work on a full disk (the store's reserve is released first, put back after).
 */
export async function withStore<T>(
  ctx: CommandContext,
  fn: (store: LocalStore) => Promise<T> | T,
  o: { cleanup?: boolean | undefined } = {},
): Promise<T> {
  const { LocalStore } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir, o);
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

/** A `--NAME N` value that must be a positive integer; undefined when not given. */
export function positiveInt(s: string | undefined, flag: string): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1)
    throw usageError(`--${flag} wants a positive integer, not ${JSON.stringify(s)}`);
  return n;
}

/**
 * The IMAGE arguments in order, each with the `--signature FILE` that follows it, as rkt's
 * parseApps reads them (`--signature must follow an image`, `… specified multiple times …`).
 */
export function imagesWithSignatures(args: ParsedArgs): { image: string; signature?: string | undefined }[] {
  const images: { image: string; signature?: string | undefined }[] = [];
  for (const t of args.tokens) {
    if (t.kind === "arg") images.push({ image: t.value });
    else if (t.name === "signature") {
      const last = images[images.length - 1];
      if (last === undefined) throw usageError("--signature must follow an image");
      if (last.signature !== undefined)
        throw usageError("--signature specified multiple times for the same image");
      last.signature = String(t.value);
    }
  }
  return images;
}
