import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  MediaType,
  isForeignLayerType,
  isIndexType,
  isLayerType,
  isManifestType,
  isRktError,
  isSchema1,
  layerCompression,
  manifestAcceptTypes,
  normalizeMediaType,
  refuseSchema1,
} from "@rkt/oci";

describe("media types", () => {
  it("classifies manifests and indexes, ignoring parameters and case", () => {
    expect(isManifestType(MediaType.OciManifest)).toBe(true);
    expect(isManifestType(MediaType.DockerManifest)).toBe(true);
    expect(isManifestType(`${MediaType.DockerManifest}; charset=utf-8`)).toBe(true);
    expect(isManifestType(MediaType.OciIndex)).toBe(false);
    expect(isManifestType(MediaType.DockerSchema1Signed)).toBe(false);
    expect(isIndexType(MediaType.OciIndex)).toBe(true);
    expect(isIndexType("Application/VND.docker.distribution.manifest.list.v2+json")).toBe(true);
    expect(isIndexType(MediaType.OciManifest)).toBe(false);
    expect(normalizeMediaType(" Application/JSON ; charset=utf-8")).toBe("application/json");
  });

  it("knows the compression of every layer type", () => {
    expect(layerCompression(MediaType.OciLayer)).toBe("none");
    expect(layerCompression(MediaType.OciLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.OciLayerZstd)).toBe("zstd");
    expect(layerCompression(MediaType.OciLayerNonDistributable)).toBe("none");
    expect(layerCompression(MediaType.OciLayerNonDistributableGzip)).toBe("gzip");
    expect(layerCompression(MediaType.OciLayerNonDistributableZstd)).toBe("zstd");
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.DockerForeignLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.DockerLayerZstd)).toBe("zstd");
    // Docker ".tar" layers are sometimes compressed anyway: the reader must sniff.
    expect(layerCompression(MediaType.DockerLayer)).toBe("unknown");
    expect(layerCompression(MediaType.DockerForeignLayer)).toBe("unknown");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")).toBe("unknown");
    expect(layerCompression(MediaType.OciConfig)).toBe("unknown");
  });

  it("recognises layers and foreign layers", () => {
    expect(isLayerType(MediaType.OciLayerGzip)).toBe(true);
    expect(isLayerType(MediaType.DockerForeignLayerGzip)).toBe(true);
    expect(isLayerType(MediaType.OciConfig)).toBe(false);
    expect(isLayerType("application/vnd.in-toto+json")).toBe(false);
    expect(isForeignLayerType(MediaType.DockerForeignLayerGzip)).toBe(true);
    expect(isForeignLayerType(MediaType.OciLayerNonDistributableZstd)).toBe(true);
    expect(isForeignLayerType(MediaType.OciLayerGzip)).toBe(false);
  });

  it("recognises schema1 and refuses it with one clear message", () => {
    expect(isSchema1(MediaType.DockerSchema1Signed)).toBe(true);
    expect(isSchema1(MediaType.DockerSchema1)).toBe(true);
    expect(isSchema1(MediaType.DockerManifest)).toBe(false);
    expect(() => refuseSchema1(MediaType.DockerManifest, "docker.io/library/busybox:1.0")).not.toThrow();
    let err: unknown;
    try {
      refuseSchema1(MediaType.DockerSchema1Signed, "docker.io/library/docker:1.0");
    } catch (e) {
      err = e;
    }
    expect(isRktError(err, ErrorCode.UnsupportedMediaType)).toBe(true);
    expect((err as Error).message).toMatch(
      /^docker\.io\/library\/docker:1\.0: schema1 manifests are not supported .*push the image again with a current client$/,
    );
  });

  it("never asks registries for schema1", () => {
    expect(manifestAcceptTypes.some(isSchema1)).toBe(false);
    expect(manifestAcceptTypes).toContain(MediaType.OciIndex);
  });
});
