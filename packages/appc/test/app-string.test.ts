import { ErrorCode, isRktError } from "@rkt/oci";
import { describe, expect, it } from "vitest";
import { formatAppString, parseAppString } from "@rkt/appc";

function labels(s: string): Record<string, string> {
  return Object.fromEntries(parseAppString(s).labels);
}

describe("parseAppString (appc NewAppFromString)", () => {
  // appc discovery/parse_test.go vectors.
  it.each<[string, string, Record<string, string>]>([
    ["example.com/reduce-worker:1.0.0", "example.com/reduce-worker", { version: "1.0.0" }],
    [
      "example.com/reduce-worker,channel=alpha,label=value",
      "example.com/reduce-worker",
      { channel: "alpha", label: "value" },
    ],
    [
      "example.com/reduce-worker:1.0.0,label=value",
      "example.com/reduce-worker",
      { version: "1.0.0", label: "value" },
    ],
    ["example.com/app", "example.com/app", {}],
    ["example.com/app,os=linux,arch=amd64", "example.com/app", { os: "linux", arch: "amd64" }],
    ["example.com/app:1.0+build.5", "example.com/app", { version: "1.0+build.5" }],
    ["example.com/app,v=a=b", "example.com/app", { v: "a=b" }],
    ["example.com/app,v=a&b%20c", "example.com/app", { v: "a&b%20c" }],
    ["example.com/app,empty=", "example.com/app", { empty: "" }],
    ["example.com/app,a%62=1", "example.com/app", { ab: "1" }],
  ])("%s", (s, name, want) => {
    const app = parseAppString(s);
    expect(app.name).toBe(name);
    expect(labels(s)).toEqual(want);
  });

  it.each<[string, string]>([
    ["example.com/app,os=linux:1.0", "malformed app string - colon may appear only right after the app name"],
    ["example.com/app:1.0:2.0", "malformed app string - colon may appear at most once"],
    [
      "example.com/app,linux",
      'malformed string "name=example.com/app,linux" - has a label without a value: linux',
    ],
    ["example.com/app,", 'malformed string "name=example.com/app," - has a label without a value: '],
    ["example.com/app:1.0,version=2.0", 'label version with multiple values ["1.0" "2.0"]'],
    ["example.com/app,os=linux,os=freebsd", 'label os with multiple values ["linux" "freebsd"]'],
    ["example.com/app,name=x", 'label name with multiple values ["example.com/app" "x"]'],
    [
      "Example.com/app",
      'name "Example.com/app": ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
    ],
    [":1.0", 'name "": ACIdentifier cannot be empty'],
    ["", 'name "": ACIdentifier cannot be empty'],
    [
      "example.com/app,OS=linux",
      'label "OS": ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
    ],
    [
      "example.com/app,-x=1",
      'label "-x": ACIdentifier must start and end with only lower case alphanumeric characters',
    ],
    ["example.com/app,a%zz=1", 'invalid URL escape "%zz"'],
    ["example.com/app,a;b=1", "invalid semicolon separator in query"],
  ])("refuses %j: %s", (s, why) => {
    try {
      parseAppString(s);
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidReference)).toBe(true);
      expect((e as Error).message).toBe(`invalid app string ${JSON.stringify(s)}: ${why}`);
    }
  });
});

describe("formatAppString", () => {
  it("puts version after a colon and other labels after commas", () => {
    const s = "example.com/app:1.0,os=linux,arch=amd64";
    expect(formatAppString(parseAppString(s))).toBe(s);
    expect(formatAppString({ name: "a", labels: new Map([["os", "linux"]]) })).toBe("a,os=linux");
  });
});
