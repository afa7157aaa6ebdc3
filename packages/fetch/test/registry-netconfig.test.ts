// The pure halves of the proxy and certs.d settings (their wire behaviour is in
// registry-proxy.slow.test.ts and registry-certs.slow.test.ts).
import { describe, expect, it } from "vitest";
import { proxyFromEnv } from "../src/registry/proxy.js";
import { defaultCertsDirs, planCertDir } from "../src/registry/tls-config.js";

describe("proxyFromEnv", () => {
  it("is undefined without HTTP_PROXY or HTTPS_PROXY, whatever NO_PROXY says", () => {
    expect(proxyFromEnv({})).toBeUndefined();
    expect(proxyFromEnv({ NO_PROXY: "*", HTTP_PROXY: "", https_proxy: "  " })).toBeUndefined();
  });

  it("reads both cases, lowercase first, and defaults the scheme to http", () => {
    expect(
      proxyFromEnv({ HTTPS_PROXY: "http://a:1", https_proxy: "proxy.corp:3128", no_proxy: ".corp,10.0.0.1" }),
    ).toEqual({ httpProxy: "", httpsProxy: "http://proxy.corp:3128/", noProxy: ".corp,10.0.0.1" });
    expect(proxyFromEnv({ HTTP_PROXY: "https://u:p@p:8443", NO_PROXY: "x" })).toEqual({
      httpProxy: "https://u:p@p:8443/",
      httpsProxy: "",
      noProxy: "x",
    });
    expect(proxyFromEnv({ HTTPS_PROXY: "socks5://127.0.0.1:1080" })?.httpsProxy).toBe(
      "socks5://127.0.0.1:1080",
    );
  });

  it("refuses values that are not proxy URLs, naming the variable, never the password", () => {
    expect(() => proxyFromEnv({ http_proxy: "ftp://u:secret@h:2121" })).toThrow(
      expect.objectContaining({
        code: "RKT_INVALID_ARGUMENT",
        message: 'HTTP_PROXY "ftp://u:…@h:2121/" is not an http, https or socks5 proxy URL',
      }),
    );
    expect(() => proxyFromEnv({ HTTPS_PROXY: "http://u:secret@[bad" })).toThrow(
      expect.objectContaining({
        code: "RKT_INVALID_ARGUMENT",
        message: 'HTTPS_PROXY "http://u:…@[bad" is not a URL',
      }),
    );
  });
});

describe("planCertDir", () => {
  it("sorts CAs and client pairs by extension and ignores other files", () => {
    expect(planCertDir("/d", ["b.crt", "client.key", "README", "a.crt", "client.cert", "x.pem"])).toEqual({
      cas: ["a.crt", "b.crt"],
      pairs: [{ cert: "client.cert", key: "client.key" }],
    });
    expect(planCertDir("/d", [])).toEqual({ cas: [], pairs: [] });
  });

  it("refuses a certificate without its key and a key without its certificate", () => {
    expect(() => planCertDir("/d/h:5000", ["client.cert"])).toThrow(
      expect.objectContaining({
        code: "RKT_INVALID_ARGUMENT",
        message:
          "/d/h:5000: client certificate client.cert has no client.key (CA certificates must end in .crt)",
      }),
    );
    expect(() => planCertDir("/d", ["a.cert", "a.key", "b.key"])).toThrow(
      expect.objectContaining({ message: "/d: key b.key has no client certificate b.cert" }),
    );
  });
});

describe("defaultCertsDirs", () => {
  it("is RKT_CERTS_D when set, else containers' and docker's directories", () => {
    expect(defaultCertsDirs({ RKT_CERTS_D: "/a::/b" })).toEqual(["/a", "/b"]);
    expect(defaultCertsDirs({ HOME: "/home/u" })).toEqual([
      "/home/u/.config/containers/certs.d",
      "/etc/containers/certs.d",
      "/etc/docker/certs.d",
    ]);
  });
});
