import { describe, expect, it } from "vitest";
import {
  discoverEndpoints,
  discoveryPrefixes,
  discoveryUrl,
  parseDiscoveryMeta,
  renderTemplate,
} from "@rkt/appc";

const labels = (o: Record<string, string>) => new Map(Object.entries(o));

describe("discovery prefixes", () => {
  it("walks from the full name to the host", () => {
    expect(discoveryPrefixes("example.com/a/b")).toEqual(["example.com/a/b", "example.com/a", "example.com"]);
    expect(discoveryPrefixes("example.com")).toEqual(["example.com"]);
  });
  it("builds the discovery URL", () => {
    expect(discoveryUrl("example.com/a")).toBe("https://example.com/a?ac-discovery=1");
    expect(discoveryUrl("example.com/a", { insecureHttp: true, port: 8080 })).toBe(
      "http://example.com:8080/a?ac-discovery=1",
    );
  });
});

describe("meta tags", () => {
  it("collects ac- tags, splitting content on the first space", () => {
    const html = `<!DOCTYPE html><html><head>
      <META NAME="ac-discovery" CONTENT="  example.com   https://example.com/{name}-{version}.{ext}  ">
      <meta name='ac-discovery-pubkeys' content='example.com https://example.com/pubkeys.gpg'/>
      <meta name=ac-other content="example.com x">
      <meta name="go-import" content="example.com git https://x">
      <meta name="ac-discovery" content="nospace">
      <meta name="ac-discovery" content="example.com/a https://a/?x=1&amp;y={name}">
      <!-- <meta name="ac-discovery" content="example.com commented"> -->
      <script>var s = '<meta name="ac-discovery" content="example.com script">';</script>
      <title><meta name="ac-discovery" content="example.com title"></title>
      </head></html>`;
    expect(parseDiscoveryMeta(html)).toEqual([
      { name: "ac-discovery", prefix: "example.com", uri: "https://example.com/{name}-{version}.{ext}" },
      { name: "ac-discovery-pubkeys", prefix: "example.com", uri: "https://example.com/pubkeys.gpg" },
      { name: "ac-other", prefix: "example.com", uri: "x" },
      { name: "ac-discovery", prefix: "example.com/a", uri: "https://a/?x=1&y={name}" },
    ]);
  });

  const tag = '<meta name="ac-discovery" content="a b">';
  const found = [{ name: "ac-discovery", prefix: "a", uri: "b" }];

  it("ends markup at an unclosed comment, raw-text element or <plaintext>", () => {
    expect(parseDiscoveryMeta(`${tag}<!-- ${tag}`)).toEqual(found);
    expect(parseDiscoveryMeta(`${tag}<script>${tag}`)).toEqual(found);
    expect(parseDiscoveryMeta(`${tag}<style>${tag}</STYLE >${tag}`)).toEqual([...found, ...found]);
    expect(parseDiscoveryMeta(`${tag}<plaintext>${tag}`)).toEqual(found);
    // A name that only starts like a raw-text element is an ordinary tag.
    expect(parseDiscoveryMeta(`<scripts>${tag}<metadata>${tag}`)).toEqual([...found, ...found]);
  });

  // Found by test/fuzz (appc): a discovery server could make each tag start rescan the rest of
  // the document, minutes of CPU for the 1 MiB an answer may be.
  it("reads a megabyte of unterminated tags in one pass", () => {
    for (const run of ["<meta", "<script", "<a", "<!-"]) {
      expect(parseDiscoveryMeta(tag + run.repeat(1_000_000 / run.length))).toEqual(found);
    }
  });
});

describe("renderTemplate", () => {
  it("replaces every occurrence and refuses leftovers", () => {
    expect(
      renderTemplate("{a}/{a}.{b}", [
        ["a", "x"],
        ["b", "y"],
      ]),
    ).toBe("x/x.y");
    expect(renderTemplate("{a}/{os}", [["a", "x"]])).toBeUndefined();
  });
});

describe("discoverEndpoints", () => {
  const doc = `<meta name="ac-discovery" content="example.com https://example.com/images/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com hdfs://storage.example.com/{name}-{version}.{ext}">
<meta name="ac-discovery" content="other.com https://other.com/{name}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
<meta name="ac-discovery-pubkeys" content="example.com/hello https://example.com/{name}.gpg">`;

  it("expands the signing guide example", () => {
    const r = discoverEndpoints(doc, {
      name: "example.com/hello",
      labels: labels({ version: "0.0.1", os: "linux", arch: "amd64" }),
    });
    expect(r.aciEndpoints).toEqual([
      {
        aci: "https://example.com/images/example.com/hello-0.0.1-linux-amd64.aci",
        asc: "https://example.com/images/example.com/hello-0.0.1-linux-amd64.aci.asc",
      },
      {
        aci: "hdfs://storage.example.com/example.com/hello-0.0.1.aci",
        asc: "hdfs://storage.example.com/example.com/hello-0.0.1.aci.asc",
      },
    ]);
    // Public keys are not templated.
    expect(r.publicKeys).toEqual(["https://example.com/pubkeys.gpg", "https://example.com/{name}.gpg"]);
  });

  it("uses latest when no version is asked for, and skips templates with unknown variables", () => {
    const r = discoverEndpoints(doc, { name: "example.com/hello" });
    expect(r.aciEndpoints).toEqual([
      {
        aci: "hdfs://storage.example.com/example.com/hello-latest.aci",
        asc: "hdfs://storage.example.com/example.com/hello-latest.aci.asc",
      },
    ]);
    expect(
      discoverEndpoints(doc, { name: "example.com/hello", labels: labels({ version: "" }) }).aciEndpoints[0]
        ?.aci,
    ).toBe("hdfs://storage.example.com/example.com/hello-latest.aci");
  });

  it("matches prefixes as plain strings, not path segments", () => {
    expect(discoverEndpoints(doc, { name: "example.comet/x" }).publicKeys).toEqual([
      "https://example.com/pubkeys.gpg",
    ]);
    expect(discoverEndpoints(doc, { name: "example.org/x" })).toEqual({ aciEndpoints: [], publicKeys: [] });
  });

  it("does not let a label called name override the name", () => {
    const r = discoverEndpoints('<meta name="ac-discovery" content="a https://x/{name}.{ext}">', {
      name: "a/b",
      labels: labels({ name: "evil" }),
    });
    expect(r.aciEndpoints).toEqual([{ aci: "https://x/a/b.aci", asc: "https://x/a/b.aci.asc" }]);
  });
});
