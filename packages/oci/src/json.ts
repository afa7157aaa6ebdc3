import { formatJsonPath, type ParseResult } from "./result.js";

/**
 * Parses I-JSON (RFC 7493), which every OCI `+json` document must be: UTF-8 without a byte order
 * mark, no duplicate member names, no unpaired surrogates. `JSON.parse` silently keeps the last of
 * two duplicate keys, so a document could mean one thing to us and another to a registry; this
 * parser refuses it and names the path. Objects are plain, built with defineProperty so that a
 * `__proto__` member is an ordinary key. Pure; `raw` in the result is `bytes` itself.
 */
export function parseJsonStrict(bytes: Uint8Array | string): ParseResult<unknown> {
  let text: string;
  let raw: Uint8Array;
  if (typeof bytes === "string") {
    text = bytes;
    raw = new TextEncoder().encode(bytes);
  } else {
    raw = bytes;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      return fail("$", "document is not valid UTF-8");
    }
  }
  if (text.charCodeAt(0) === 0xfeff) return fail("$", "document starts with a byte order mark");
  const p = new Parser(text);
  try {
    p.ws();
    const value = p.value([]);
    p.ws();
    if (p.i !== text.length) p.error([], "unexpected data after the JSON value");
    return { ok: true, value, raw };
  } catch (e) {
    if (e instanceof JsonError) return fail(e.path, e.message);
    throw e;
  }
}

function fail(path: string, message: string): ParseResult<never> {
  return { ok: false, issues: [{ path, message }] };
}

class JsonError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

// Strings: unescaped characters other than `"`, `\` and controls (RFC 8259), or a valid escape.
// eslint-disable-next-line no-control-regex -- excluding the control range is the point
const stringToken = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const numberToken = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const unpairedSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// Nesting limit: manifests are shallow; this keeps hostile input from exhausting the stack.
const maxDepth = 256;

class Parser {
  i = 0;
  readonly s: string;
  constructor(s: string) {
    this.s = s;
  }

  error(path: readonly PropertyKey[], message: string): never {
    throw new JsonError(formatJsonPath(path), `${message} at offset ${this.i}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.i++;
    }
  }

  value(path: PropertyKey[]): unknown {
    if (path.length > maxDepth) this.error(path, `nesting deeper than ${maxDepth}`);
    const c: string | undefined = this.s[this.i];
    // eslint-disable-next-line @typescript-eslint/switch-exhaustiveness-check -- numbers and errors share the default
    switch (c) {
      case "{":
        return this.object(path);
      case "[":
        return this.array(path);
      case '"':
        return this.string(path);
      case "t":
        return this.literal(path, "true", true);
      case "f":
        return this.literal(path, "false", false);
      case "n":
        return this.literal(path, "null", null);
      default: {
        numberToken.lastIndex = this.i;
        const m = numberToken.exec(this.s);
        if (m === null) this.error(path, c === undefined ? "unexpected end of document" : "invalid JSON");
        this.i += m[0].length;
        return Number(m[0]);
      }
    }
  }

  literal(path: PropertyKey[], word: string, v: unknown): unknown {
    if (!this.s.startsWith(word, this.i)) this.error(path, "invalid JSON");
    this.i += word.length;
    return v;
  }

  string(path: PropertyKey[]): string {
    stringToken.lastIndex = this.i;
    const m = stringToken.exec(this.s);
    if (m === null) this.error(path, "invalid string");
    this.i += m[0].length;
    const v = JSON.parse(m[0]) as string;
    if (unpairedSurrogate.test(v)) this.error(path, "string contains an unpaired surrogate");
    return v;
  }

  array(path: PropertyKey[]): unknown[] {
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value([...path, out.length]));
      this.ws();
      const c = this.s[this.i++];
      if (c === "]") return out;
      if (c !== ",") {
        this.i--;
        this.error(path, "expected , or ] in array");
      }
    }
  }

  object(path: PropertyKey[]): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    const seen = new Set<string>();
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.error(path, "expected a member name");
      const key = this.string(path);
      if (seen.has(key)) this.error([...path, key], `duplicate key ${JSON.stringify(key)}`);
      seen.add(key);
      this.ws();
      if (this.s[this.i++] !== ":") {
        this.i--;
        this.error([...path, key], "expected : after member name");
      }
      this.ws();
      const v = this.value([...path, key]);
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.s[this.i++];
      if (c === "}") return out;
      if (c !== ",") {
        this.i--;
        this.error(path, "expected , or } in object");
      }
    }
  }
}
