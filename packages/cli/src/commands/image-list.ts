// `rkt image list`: rkt's table (tabwriter with tab padding, humanized sizes and times), `--full`
// and JSON output, for ACI and OCI images alike.
import { ErrorCode, RktError } from "@rkt/oci";
import type { ImageRecord, ImageSortField } from "@rkt/store";
import type { CommandContext } from "../context.js";
import { withStore } from "./image-common.js";

/** Fields `--fields` accepts, in rkt's default order. */
export const listFields = ["id", "name", "size", "importtime", "lastused"] as const;
export type ListField = (typeof listFields)[number];
const sortFields: readonly ImageSortField[] = ["name", "importtime", "lastused", "size"];
const headers: Record<ListField, string> = {
  id: "ID",
  name: "NAME",
  size: "SIZE",
  importtime: "IMPORT TIME",
  lastused: "LAST USED",
};

function optionList<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const out: T[] = [];
  for (const v of value.split(",")) {
    if (!(allowed as readonly string[]).includes(v)) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `invalid argument ${JSON.stringify(value)} for "--${flag}" flag: unknown option ${JSON.stringify(v)}`,
      );
    }
    out.push(v as T);
  }
  return out;
}

/**
 * go-humanize `IBytes` (the version rkt vendors): below 10 `5B`; else one decimal below 10 units
 * and none above, IEC suffix without a space (`5.4MiB`, `12MiB`, `512B`). Pure.
 */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n}B`;
  const sizes = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  const e = Math.min(Math.floor(Math.log(n) / Math.log(1024)), sizes.length - 1);
  const val = Math.floor((n / 1024 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)}${sizes[e]}`;
}

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;
const week = 7 * day;
const month = 30 * day;
const year = 12 * month;
// go-humanize RelTime magnitudes: [upper bound, format, divisor].
const magnitudes: readonly [number, string, number][] = [
  [second, "now", 1],
  [2 * second, "1 second %s", 1],
  [minute, "%d seconds %s", second],
  [2 * minute, "1 minute %s", 1],
  [hour, "%d minutes %s", minute],
  [2 * hour, "1 hour %s", 1],
  [day, "%d hours %s", hour],
  [2 * day, "1 day %s", 1],
  [week, "%d days %s", day],
  [2 * week, "1 week %s", 1],
  [month, "%d weeks %s", week],
  [2 * month, "1 month %s", 1],
  [year, "%d months %s", month],
  [18 * month, "1 year %s", 1],
  [2 * year, "2 years %s", 1],
  [37 * year, "%d years %s", year],
  [Number.MAX_SAFE_INTEGER, "a long while %s", 1],
];

/** go-humanize `Time`: `now`, `3 seconds ago`, `1 week ago`, `2 days from now`. Times in ms. Pure. */
export function humanizeTime(then: number, now: number): string {
  let diff = now - then;
  let label = "ago";
  if (diff < 0) {
    diff = -diff;
    label = "from now";
  }
  const m = magnitudes.find(([d]) => d > diff) ?? magnitudes[magnitudes.length - 1]!;
  const [, format, divby] = m;
  return format.replace("%d", String(Math.floor(diff / divby))).replace("%s", label);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

/**
 * A time in Go's `2006-01-02 15:04:05.999 -0700 MST` layout, in the local zone (`.999` drops
 * trailing zeros and the dot). Pure apart from the zone of `Date`.
 */
export function formatGoTime(ms: number): string {
  const d = new Date(ms);
  const frac = String(d.getMilliseconds()).padStart(3, "0").replace(/0+$/, "");
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const zoneOffset = `${sign}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  const name =
    new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
      .formatToParts(d)
      .find((p) => p.type === "timeZoneName")?.value ?? "";
  // Go prints the abbreviation, or the numeric offset when the zone has none (`+01`).
  const abbr = /^[A-Z]{2,5}$/.test(name) ? name : off === 0 ? "UTC" : zoneOffset.slice(0, 3);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${frac === "" ? "" : `.${frac}`} ` +
    `${zoneOffset} ${abbr}`
  );
}

/**
 * Go's text/tabwriter with rkt's settings (minwidth 0, tabwidth 8, padding 1, padchar '\t'):
 * every tab-terminated cell is padded with tabs to its column's width rounded up to a multiple
 * of 8; the last cell of a line is not padded. Pure.
 */
export function tabwrite(rows: readonly (readonly string[])[]): string {
  // Go counts runes; UTF-16 length differs only for characters outside the BMP.
  const width = (c: string): number => (/[\ud800-\udfff]/.test(c) ? [...c].length : c.length);
  const widths: number[] = [];
  for (const r of rows) {
    for (let i = 0; i < r.length - 1; i++) widths[i] = Math.max(widths[i] ?? 0, width(r[i]!) + 1);
  }
  const cellw = widths.map((w) => Math.ceil(w / 8) * 8);
  const tabs = (n: number): string => "\t".repeat(n);
  let out = "";
  for (const r of rows) {
    let line = "";
    for (let i = 0; i < r.length; i++) {
      const c = r[i]!;
      line += i === r.length - 1 ? c : c + tabs(Math.ceil((cellw[i]! - width(c)) / 8));
    }
    out += `${line}\n`;
  }
  return out;
}

/** The NAME column: the name plus `:<version label>` when there is one (rkt). */
export function displayName(img: ImageRecord): string {
  const v = img.labels["version"];
  return v === undefined || v === "" ? img.name : `${img.name}:${v}`;
}

/** The ID as `image list` shows it: `sha512-`/`sha256:` + 12 hex unless `full`. */
export function displayId(id: string, full: boolean): string {
  return full ? id : id.slice(0, 7 + 12);
}

// Go's encoding/json escapes <, > and & (HTML safety) and U+2028/9.
function goJson(text: string): string {
  return text
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * rkt's JSON entries: `{"id","name","import_time","last_used_time","size"}` with times in
 * nanoseconds since the epoch (exact integers, beyond JS's safe range), `null` for none; with
 * `pretty` indented by tabs as Go's MarshalIndent. Pure.
 */
export function formatListJson(images: readonly ImageRecord[], pretty: boolean): string {
  if (images.length === 0) return "null\n";
  const ns = (ms: number): string => (BigInt(Math.trunc(ms)) * 1000000n).toString();
  const entries = images.map((i) => [
    ["id", JSON.stringify(i.id)],
    ["name", goJson(JSON.stringify(displayName(i)))],
    ["import_time", ns(i.importTime)],
    ["last_used_time", ns(i.lastUsed)],
    ["size", String(i.size + i.treeSize)],
  ]);
  if (!pretty)
    return `[${entries.map((e) => `{${e.map(([k, v]) => `"${k}":${v}`).join(",")}}`).join(",")}]\n`;
  const body = entries
    .map((e) => `\t{\n${e.map(([k, v]) => `\t\t"${k}": ${v}`).join(",\n")}\n\t}`)
    .join(",\n");
  return `[\n${body}\n]\n`;
}

/**
 * `rkt image list [--fields=…] [--sort=…] [--order=asc|desc] [--no-legend] [--full]
 * [--format=json|json-pretty]`: prints the table (or JSON) on stdout. Reads only the index.
 */
export async function imageListCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const { positionals } = a;
  const values = {
    fields: a.string("fields") ?? listFields.join(","),
    sort: a.string("sort") ?? "importtime",
    order: a.string("order") ?? "asc",
    "no-legend": a.bool("no-legend"),
    full: a.bool("full"),
    format: a.string("format") ?? "",
  };
  if (positionals.length > 0)
    throw new RktError(ErrorCode.InvalidArgument, `unexpected argument ${JSON.stringify(positionals[0])}`);
  const fields = optionList("fields", values.fields, listFields);
  const sort = optionList("sort", values.sort, sortFields);
  const order = optionList("order", values.order, ["asc", "desc"] as const)[0] ?? "asc";
  const format = optionList("format", values.format === "" ? "tabbed" : values.format, [
    "tabbed",
    "json",
    "json-pretty",
  ] as const)[0];
  const full = values.full;
  const images = await withStore(ctx, async (store) => {
    const { listImages } = await import("@rkt/store");
    return listImages(store, { sort, order });
  });
  if (format === "json" || format === "json-pretty") {
    ctx.stdout.write(formatListJson(images, format === "json-pretty"));
    return 0;
  }
  if (a.bool("quiet")) {
    for (const img of images) ctx.stdout.write(`${displayId(img.id, full)}\n`);
    return 0;
  }
  const now = Date.now();
  const rows: string[][] = [];
  if (!values["no-legend"]) rows.push(fields.map((f) => headers[f]));
  for (const img of images) {
    rows.push(
      fields.map((f) => {
        switch (f) {
          case "id":
            return displayId(img.id, full);
          case "name":
            return displayName(img);
          case "size":
            return full ? String(img.size + img.treeSize) : humanizeBytes(img.size + img.treeSize);
          case "importtime":
            return full ? formatGoTime(img.importTime) : humanizeTime(img.importTime, now);
          case "lastused":
            return full ? formatGoTime(img.lastUsed) : humanizeTime(img.lastUsed, now);
        }
      }),
    );
  }
  ctx.stdout.write(tabwrite(rows));
  return 0;
}
