// The one progress renderer of the CLI, fed by the library's progress events (@rkt/oci's
// BlobProgress, and fetch's ACI downloads): a single aggregate line with bytes, rate and ETA,
// `Importing 3 blobs: 12.0 MiB / 40.0 MiB, 8.0 MiB/s, ETA 4s`, redrawn in place (at most ten times
// a second) on a terminal; without one, the same line at most every 10 seconds (so short commands
// print nothing, and CI logs of long ones get a line now and then); nothing with --quiet. No
// colour is used, so NO_COLOR has nothing to turn off; TERM=dumb is treated as no terminal.
import type { Writable } from "node:stream";
import type { BlobProgress } from "@rkt/oci";
import type { CommandContext } from "./context.js";

/** What the line counts: registry or layout blobs, or ACI archives. */
export type ProgressUnit = "blob" | "ACI";

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** The first word of the line: Downloading, Importing, Extracting, Exporting, Converting, Copying. */
  readonly verb: string;
  readonly quiet?: boolean | undefined;
  /** Redraw in place (a terminal); else occasional plain lines. */
  readonly tty: boolean;
  /** Columns of the terminal: the line is cut to fit, so that `\r` redraws it whole. */
  readonly columns?: number | undefined;
  /** Without a terminal, the least time between two lines (ms); default 10 s. */
  readonly plainEvery?: number | undefined;
  /** Without a terminal, a line for each finished item (a command's own log, e.g. `Downloaded …`). */
  readonly doneLine?: ((key: string, total: number) => string | undefined) | undefined;
  /** Injectable clock (ms), for tests. */
  readonly now?: (() => number) | undefined;
}

const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;

interface Item {
  bytes: number;
  total: number;
  /** The byte count of its first event: a resumed prefix is not transfer. */
  first: number;
  unit: ProgressUnit;
  done: boolean;
}

/** Aggregates progress events of one operation into one status line and draws it on `out`. */
export class Progress {
  private readonly items = new Map<string, Item>();
  private readonly out: Writable;
  private readonly o: ProgressOptions;
  private readonly clock: () => number;
  private readonly start: number;
  private drawnAt: number | undefined;
  private shown = false;

  constructor(out: Writable, o: ProgressOptions) {
    this.out = out;
    this.o = o;
    this.clock = o.now ?? Date.now;
    this.start = this.clock();
  }

  /** Records one event (`bytes` of `total` for item `key`) and redraws when it is time. */
  update(key: string, bytes: number, total: number, unit: ProgressUnit = "blob"): void {
    if (this.o.quiet === true) return;
    const prev = this.items.get(key);
    const done = total > 0 ? bytes >= total : false;
    this.items.set(key, { bytes, total, first: prev?.first ?? bytes, unit, done });
    const now = this.clock();
    if (done && prev?.done !== true && !this.o.tty) {
      const l = this.o.doneLine?.(key, total);
      if (l !== undefined) this.out.write(`${l}\n`);
    }
    if (this.o.tty) {
      if (this.drawnAt !== undefined && now - this.drawnAt < 100 && !this.allDone()) return;
      this.drawnAt = now;
      this.shown = true;
      this.out.write(`\r\x1b[K${this.fit(this.line(now))}`);
      return;
    }
    const every = this.o.plainEvery ?? 10_000;
    if (now - (this.drawnAt ?? this.start) < every) return;
    this.drawnAt = now;
    this.out.write(`${this.line(now)}\n`);
  }

  /** A {@link BlobProgress} listener. */
  readonly blob = (p: BlobProgress): void => this.update(p.digest, p.bytes, p.total, "blob");

  /**
   * Writes a line of the command's own (a result, a log line) on `to` (default the progress
   * stream) without breaking the status line: it is erased first and drawn again after.
   */
  println(line: string, to: Writable = this.out): void {
    if (this.shown) this.out.write("\r\x1b[K");
    to.write(`${line}\n`);
    if (this.shown) this.out.write(this.fit(this.line(this.clock())));
  }

  /** An informational line (as {@link println}); nothing with quiet. */
  info(line: string): void {
    if (this.o.quiet !== true) this.println(line);
  }

  /** Ends the operation: a terminal's status line is erased. */
  end(): void {
    if (this.shown) this.out.write("\r\x1b[K");
    this.shown = false;
  }

  private allDone(): boolean {
    for (const i of this.items.values()) if (!i.done) return false;
    return true;
  }

  private fit(line: string): string {
    const c = this.o.columns;
    return c !== undefined && c > 1 && line.length >= c ? line.slice(0, c - 1) : line;
  }

  /** The status line (no newline). Pure given the events and `now`. */
  line(now = this.clock()): string {
    let bytes = 0;
    let total = 0;
    let moved = 0;
    let acis = 0;
    for (const i of this.items.values()) {
      bytes += i.bytes;
      total += i.total;
      moved += i.bytes - i.first;
      if (i.unit === "ACI") acis++;
    }
    const n = this.items.size;
    const what = acis === n && n > 0 ? (n === 1 ? "ACI" : `${n} ACIs`) : `${n} blob${n === 1 ? "" : "s"}`;
    let s = `${this.o.verb} ${what}: ${mib(bytes)} / ${mib(total)}`;
    const secs = (now - this.start) / 1000;
    if (moved > 0 && secs > 0) {
      const rate = moved / secs;
      s += `, ${mib(rate)}/s, ETA ${Math.ceil(Math.max(0, total - bytes) / rate)}s`;
    }
    return s;
  }
}

/** Whether `s` is a terminal progress can be redrawn on (TERM=dumb is not). */
export function isTerminal(s: unknown, env: Readonly<Record<string, string | undefined>>): boolean {
  return (s as { isTTY?: boolean } | null)?.isTTY === true && env["TERM"] !== "dumb";
}

/** A renderer on the command's stderr. */
export function progressFor(
  ctx: CommandContext,
  verb: string,
  o: Pick<ProgressOptions, "quiet" | "doneLine"> = {},
): Progress {
  const columns = (ctx.stderr as { columns?: number }).columns;
  return new Progress(ctx.stderr, { verb, tty: isTerminal(ctx.stderr, ctx.env), columns, ...o });
}
