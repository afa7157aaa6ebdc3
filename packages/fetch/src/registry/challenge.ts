// WWW-Authenticate parsing (RFC 9110 §11.6.1 / RFC 7235 auth-params) and token scopes
// (distribution auth/scope.md). Pure.

/** One challenge of a `WWW-Authenticate` header: a scheme (lowercased) and its parameters. */
export interface Challenge {
  /** `bearer`, `basic`, ... lowercased (schemes are case-insensitive). */
  readonly scheme: string;
  /** Parameter names lowercased; values unquoted and unescaped. */
  readonly params: Readonly<Record<string, string>>;
}

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const token68 = /^[A-Za-z0-9._~+/-]+=*/;

/**
 * Parses every challenge in one or more `WWW-Authenticate` header values. Tolerates extra spaces,
 * empty list elements and quoted strings with backslash escapes; a malformed tail ends parsing
 * without throwing (what parsed so far is returned), since a registry's odd header must not hide
 * the HTTP status from the caller. Pure.
 */
export function parseWwwAuthenticate(values: string | readonly string[] | undefined): Challenge[] {
  if (values === undefined) return [];
  const out: Challenge[] = [];
  for (const value of typeof values === "string" ? [values] : values) parseOne(value, out);
  return out;
}

function parseOne(s: string, out: Challenge[]): void {
  let i = 0;
  const skip = (chars: RegExp) => {
    while (i < s.length && chars.test(s[i]!)) i++;
  };
  let current: { scheme: string; params: Record<string, string> } | undefined;
  while (i < s.length) {
    skip(/[\s,]/);
    if (i >= s.length) break;
    const name = token.exec(s.slice(i))?.[0];
    if (name === undefined) return;
    const afterName = i + name.length;
    // `name =` starts an auth-param of the current challenge; anything else starts a new challenge.
    let j = afterName;
    while (j < s.length && (s[j] === " " || s[j] === "\t")) j++;
    if (current !== undefined && s[j] === "=" && s[j + 1] !== "=") {
      i = j + 1;
      skip(/[ \t]/);
      let value: string;
      if (s[i] === '"') {
        i++;
        value = "";
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        if (i >= s.length) return; // unterminated quote
        i++;
      } else {
        value = token.exec(s.slice(i))?.[0] ?? "";
        i += value.length;
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
    i = afterName;
    skip(/[ \t]/);
    // A token68 credential (`Negotiate abc==`) rather than auth-params: keep it, do not misparse it.
    const t68 = token68.exec(s.slice(i))?.[0];
    if (t68 !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*=[^=]/.test(s.slice(i)) && t68.length > 0) {
      // Look past the spaces without copying the rest: a header of many challenges stays linear.
      let k = i + t68.length;
      while (k < s.length && /\s/.test(s[k]!)) k++;
      if (k === s.length || s[k] === ",") {
        current.params["token68"] = t68;
        i += t68.length;
      }
    }
  }
}

/** The scope a pull of `repository` needs (distribution auth/scope.md). */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The scope a push to `repository` needs (pull is included: uploads check existence first). */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}
