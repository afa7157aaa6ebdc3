// What a conversion reads: the image's manifest and config, and its layers as streams. Any source
// (the store, an OCI layout, a `docker save` archive, a registry) can provide this.
import type { Readable } from "node:stream";
import type { ImageConfig, Manifest } from "@rkt/oci";

/** One layer of the image to convert. */
export interface LayerInput {
  /** As in the manifest: `…tar`, `…tar+gzip`, `…tar+zstd`, Docker's `…rootfs.diff.tar.gzip`. */
  readonly mediaType: string;
  /** The layer's digest as the manifest names it (used in names and annotations). */
  readonly digest: string;
  /** The blob's size as the manifest gives it, for progress events. */
  readonly size?: number | undefined;
  /**
   * Opens the layer blob (compressed as stored). Called once per pass over the layer; a stream
   * from a source that verifies digests must fail at its end on a mismatch. The converter always
   * consumes or destroys what it opens.
   */
  open(): Promise<Readable>;
}

/** Where the image came from, for its ACI name, labels and annotations (docker2aci's ParsedDockerURL). */
export interface ImageNameInput {
  /** The registry host (`registry-1.docker.io`, `127.0.0.1:5000`); "" or absent when unknown (files). */
  readonly registry?: string | undefined;
  /** The repository, e.g. `library/busybox` or `myorg/app`. */
  readonly repository: string;
  /** The tag; absent when fetched by digest (no `version` label then). */
  readonly tag?: string | undefined;
  /** The reference as the user wrote it (`appc.io/docker/originalname`); absent for files without one. */
  readonly originalName?: string | undefined;
}

/** An image to convert. */
export interface ImageInput {
  readonly manifest: Manifest;
  readonly config: ImageConfig;
  /** Base layer first, as in the manifest. */
  readonly layers: readonly LayerInput[];
  readonly name: ImageNameInput;
  /** `appc.io/docker/manifesthash`: the manifest digest (or, for a `docker save` archive, the image ID). */
  readonly manifestHash: string;
  /** Releases what reading needed (a compressed archive's unpacked layers); call after converting. */
  readonly close?: (() => Promise<void>) | undefined;
}
