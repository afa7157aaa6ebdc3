// App strings as `rkt fetch` and `actool discover` take them: `name[:version][,label=value…]`
// (appc discovery/parse.go NewAppFromString). appc rewrites the string into a URL query
// (`name=…&version=…&label=…`, values escaped, keys not) and parses that; we do the same steps so
// that odd inputs (a key with `&` or `%41`, an empty value) mean what they mean to rkt.
import { ErrorCode, RktError } from "@rkt/oci";
import { acIdentifierProblem, type ACIdentifier } from "./names.js";

/** A parsed app string: an image name and the labels asked for (`version` from `:version`). */
export interface AppString {
  readonly name: ACIdentifier;
  readonly labels: Map<string, string>;
}

class AppStringError extends Error {}

// Go's url.QueryEscape: unreserved bytes kept, space as `+`, everything else %XX (upper case).
function queryEscape(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (b === 0x20) out += "+";
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

// Go's url.QueryUnescape: `+` is a space, %XX must be two hex digits, the result is bytes read
// as UTF-8 (invalid sequences become U+FFFD, as Go's string conversion would print them).
function queryUnescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new AppStringError(`invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}`);
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c === "+") bytes.push(0x20);
    else bytes.push(...new TextEncoder().encode(c));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// Go's url.ParseQuery (Go >= 1.17: `;` is an error, not a separator). Keys keep first-seen order.
function parseQuery(q: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const seg of q.split("&")) {
    if (seg.includes(";")) throw new AppStringError("invalid semicolon separator in query");
    if (seg === "") continue;
    const eq = seg.indexOf("=");
    const key = queryUnescape(eq < 0 ? seg : seg.slice(0, eq));
    const value = queryUnescape(eq < 0 ? "" : seg.slice(eq + 1));
    const list = m.get(key);
    if (list === undefined) m.set(key, [value]);
    else list.push(value);
  }
  return m;
}

function checkColon(app: string): void {
  const firstComma = app.indexOf(",");
  const firstColon = app.indexOf(":");
  if (firstColon > firstComma && firstComma > -1) {
    throw new AppStringError("malformed app string - colon may appear only right after the app name");
  }
  if (app.split(":").length - 1 > 1) {
    throw new AppStringError("malformed app string - colon may appear at most once");
  }
}

function toQuery(app: string): string {
  return app
    .split(",")
    .map((part) => {
      const eq = part.indexOf("=");
      if (eq < 0) {
        throw new AppStringError(
          `malformed string ${JSON.stringify(app)} - has a label without a value: ${part}`,
        );
      }
      return `${part.slice(0, eq)}=${queryEscape(part.slice(eq + 1))}`;
    })
    .join("&");
}

/**
 * Parses `name[:version][,label=value…]` exactly as appc's NewAppFromString: the colon may appear
 * once and only before the first comma, and `name:1.0` means label `version=1.0`; every part after
 * the name must be `label=value`; a label given twice (including `version` both ways) is an error;
 * the name and label names must be AC Identifiers; a label called `name` clashes with the name
 * (multiple values). Throws
 * RKT_INVALID_REFERENCE naming the input and the reason (appc's words). Pure.
 */
export function parseAppString(app: string): AppString {
  try {
    checkColon(app);
    const query = toQuery("name=" + app.replace(":", ",version="));
    let name = "";
    const labels = new Map<string, string>();
    for (const [key, values] of parseQuery(query)) {
      if (values.length > 1) {
        throw new AppStringError(
          `label ${key} with multiple values [${values.map((v) => JSON.stringify(v)).join(" ")}]`,
        );
      }
      const value = values[0]!;
      if (key === "name") {
        name = value;
        continue;
      }
      const why = acIdentifierProblem(key);
      if (why !== undefined) throw new AppStringError(`label ${JSON.stringify(key)}: ${why}`);
      labels.set(key, value);
    }
    const why = acIdentifierProblem(name);
    if (why !== undefined) throw new AppStringError(`name ${JSON.stringify(name)}: ${why}`);
    return { name: name as ACIdentifier, labels };
  } catch (e) {
    if (!(e instanceof AppStringError)) throw e;
    throw new RktError(ErrorCode.InvalidReference, `invalid app string ${JSON.stringify(app)}: ${e.message}`);
  }
}

/**
 * Formats an app as an app string: `name`, `:version` when there is a version label, then
 * `,label=value` for the others in map order. Parsing the result gives the same app as long as
 * no value contains `,` or `:`. Pure.
 */
export function formatAppString(app: { name: string; labels: ReadonlyMap<string, string> }): string {
  const version = app.labels.get("version");
  let out = version === undefined ? app.name : `${app.name}:${version}`;
  for (const [k, v] of app.labels) if (k !== "version") out += `,${k}=${v}`;
  return out;
}
