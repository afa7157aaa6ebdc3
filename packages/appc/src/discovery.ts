// appc discovery, the pure half (spec/discovery.md, discovery/discovery.go): the list of name
// prefixes to try, the discovery URL for each, the `<meta name="ac-…">` tags of the HTML served
// there, and the expansion of `ac-discovery` templates into ACI/ASC URLs. Fetching is
// @rkt/fetch's job.

/** One `<meta name="ac-…" content="prefix uri">` tag. */
export interface AcMeta {
  readonly name: string;
  readonly prefix: string;
  readonly uri: string;
}

/** Where to fetch an image and its signature. */
export interface AciEndpoint {
  readonly aci: string;
  readonly asc: string;
}

/** What one discovery document yields for an app. */
export interface DiscoveryResult {
  readonly aciEndpoints: AciEndpoint[];
  readonly publicKeys: string[];
}

/**
 * The prefixes discovery tries, longest first: `example.com/a/b` gives `example.com/a/b`,
 * `example.com/a`, `example.com` (appc splits on every `/`, so empty segments are kept). Pure.
 */
export function discoveryPrefixes(name: string): string[] {
  const parts = name.split("/");
  return parts.map((_, i) => parts.slice(0, parts.length - i).join("/"));
}

/**
 * The URL fetched for one prefix: `https://<prefix>?ac-discovery=1` (or `http` for the insecure
 * retry), with `port` added to the host when given. Pure.
 */
export function discoveryUrl(
  prefix: string,
  o: { insecureHttp?: boolean | undefined; port?: number | undefined } = {},
): string {
  const u = new URL(`${o.insecureHttp === true ? "http" : "https"}://${prefix}`);
  if (o.port !== undefined) u.port = String(o.port);
  u.search = "ac-discovery=1";
  return u.toString();
}

// HTML character references that matter in attribute values; numeric ones are decoded too.
const namedEntities: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

function decodeEntities(s: string): string {
  return s.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z]+);?/g, (m, ref: string) => {
    if (ref.startsWith("#")) {
      const cp = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : "\ufffd";
    }
    return Object.hasOwn(namedEntities, ref) ? namedEntities[ref]! : m;
  });
}

// Attributes of a start tag: name, then optionally `=` and a double-quoted, single-quoted or bare
// value (the HTML tokenizer's rules, lowercasing names).
const attrRe = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;

function attributesOf(tagBody: string): [string, string][] {
  const out: [string, string][] = [];
  for (const m of tagBody.matchAll(attrRe)) {
    out.push([m[1]!.toLowerCase(), decodeEntities(m[2] ?? m[3] ?? m[4] ?? "")]);
  }
  return out;
}

// Elements whose content is raw text to Go's HTML tokenizer: no tags inside, up to the end tag.
const rawText = new Set([
  "script",
  "style",
  "title",
  "textarea",
  "xmp",
  "iframe",
  "noembed",
  "noframes",
  "noscript",
]);

// Whitespace (HTML's: space, tab, LF, FF, CR), `/` and `>` end a tag name.
function endsTagName(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d || c === 0x2f || c === 0x3e;
}

// Longer than any name that matters here (`plaintext`): longer names are not looked at.
const maxTagName = 10;

// The tag name at `i` (just after `<`), lowercased, and where it ends: a name ends at whitespace,
// `/`, `>` or the end, as in Go's tokenizer. Only the first few characters are read, so that a
// run of `<` costs a constant each.
function tagNameAt(html: string, i: number): { name: string; end: number } {
  let end = i;
  while (end < html.length && end - i <= maxTagName && !endsTagName(html.charCodeAt(end))) end++;
  return { name: html.slice(i, end).toLowerCase(), end };
}

/**
 * Every `<meta>` tag whose `name` starts with `ac-` and whose `content` splits (after trimming, on
 * the first space) into a non-empty prefix and a non-empty URI, in document order. Comments and
 * the raw text of `<script>`, `<style>`, `<title>`, `<textarea>` and the other raw-text elements
 * of Go's HTML tokenizer are skipped, and nothing after `<plaintext>` is markup. One pass over the
 * document: its time is linear in its length, whatever a server sends. Pure.
 */
export function parseDiscoveryMeta(html: string): AcMeta[] {
  const out: AcMeta[] = [];
  let i = html.indexOf("<");
  while (i >= 0) {
    if (html.startsWith("<!--", i)) {
      const close = html.indexOf("-->", i + 4);
      if (close < 0) break;
      i = html.indexOf("<", close + 3);
      continue;
    }
    const { name, end } = tagNameAt(html, i + 1);
    if (name === "plaintext") break;
    if (name === "meta" || rawText.has(name)) {
      // A tag needs its `>`; with none left in the document, no tag can follow either.
      const gt = html.indexOf(">", end);
      if (gt < 0) break;
      if (name === "meta") {
        addMeta(html.slice(end, gt), out);
        i = html.indexOf("<", gt + 1);
        continue;
      }
      const closing = new RegExp(`</${name}\\s*>`, "gi");
      closing.lastIndex = gt + 1;
      const m = closing.exec(html);
      if (m === null) break;
      i = html.indexOf("<", m.index + m[0].length);
      continue;
    }
    i = html.indexOf("<", i + 1);
  }
  return out;
}

// As appc's appendMeta: the last `name` wins; a `content` without a space is ignored.
function addMeta(tagBody: string, out: AcMeta[]): void {
  let name = "";
  let prefix = "";
  let uri = "";
  for (const [k, v] of attributesOf(tagBody)) {
    if (k === "name") name = v;
    else if (k === "content") {
      const t = v.trim();
      const sp = t.indexOf(" ");
      if (sp < 0) continue;
      prefix = t.slice(0, sp);
      uri = t.slice(sp + 1).trim();
    }
  }
  if (name.startsWith("ac-") && prefix !== "" && uri !== "") out.push({ name, prefix, uri });
}

const unexpanded = /\{.*?\}/;

/**
 * Replaces each `{key}` of `vars` (in order) in `template`; returns undefined when any `{…}` is
 * left. Pure.
 */
export function renderTemplate(
  template: string,
  vars: readonly (readonly [string, string])[],
): string | undefined {
  let out = template;
  for (const [k, v] of vars) out = out.split(`{${k}}`).join(v);
  return unexpanded.test(out) ? undefined : out;
}

/**
 * The endpoints and public keys one discovery document gives for an app, as appc's doDiscover:
 * only tags whose prefix is a plain string prefix of the app name; `ac-discovery` templates get
 * `{name}`, then each label (`version` is `latest` when absent or empty, for templating only; a
 * label called `name` cannot override the name), then `{ext}` = `aci` / `aci.asc`; a template with
 * anything left unexpanded is skipped. `ac-discovery-pubkeys` URIs are taken as they are.
 * Document order is kept. Pure.
 */
export function discoverEndpoints(
  html: string,
  app: { name: string; labels?: ReadonlyMap<string, string> | undefined },
): DiscoveryResult {
  const labels = new Map(app.labels ?? []);
  if ((labels.get("version") ?? "") === "") labels.set("version", "latest");
  const vars: [string, string][] = [["name", app.name], ...labels];
  const aciEndpoints: AciEndpoint[] = [];
  const publicKeys: string[] = [];
  for (const m of parseDiscoveryMeta(html)) {
    if (!app.name.startsWith(m.prefix)) continue;
    if (m.name === "ac-discovery") {
      const withVars = m.uri.split("{name}").join(app.name);
      const rendered = vars.slice(1).reduce((t, [k, v]) => t.split(`{${k}}`).join(v), withVars);
      const asc = renderTemplate(rendered, [["ext", "aci.asc"]]);
      const aci = renderTemplate(rendered, [["ext", "aci"]]);
      if (asc === undefined || aci === undefined) continue;
      aciEndpoints.push({ aci, asc });
    } else if (m.name === "ac-discovery-pubkeys") {
      publicKeys.push(m.uri);
    }
  }
  return { aciEndpoints, publicKeys };
}
