// Image locations in skopeo's transport syntax (`docker://`, `oci:`, `oci-archive:`,
// `docker-archive:`) plus `rkt:` for the local store, opened as sources or sinks.
import { basename, resolve } from "node:path";
import {
  ErrorCode,
  RktError,
  parseDockerReference,
  parseImageRef,
  type Digest,
  type DockerRef,
  type ImageOrIndex,
  type ImageSink,
} from "@rkt/oci";
import { getImage, isImageIdSyntax, resolveImage, type LocalStore } from "@rkt/store";
import { openOciLayout, refNameAnnotation } from "../oci-layout.js";
import type { RegistryClient } from "../registry/client.js";
import { archiveBase, nameAndTag, repoTagName } from "../local-import.js";
import { dockerArchiveSink, familiarRepoTag, openDockerArchive } from "./docker-archive.js";
import { layoutImage, layoutSink } from "./layout.js";
import { ociArchiveSink, openOciArchive } from "./oci-archive.js";
import { registryImage, registrySink } from "./registry.js";
import { storeImage, storeSink } from "./store.js";

/** Where an image is or goes. */
export type ImageLocation =
  | { readonly kind: "docker"; readonly ref: DockerRef; readonly raw: string }
  | {
      readonly kind: "oci" | "oci-archive";
      readonly path: string;
      readonly ref?: string | undefined;
      readonly index?: number | undefined;
      readonly raw: string;
    }
  | {
      readonly kind: "docker-archive";
      readonly path: string;
      readonly ref?: DockerRef | undefined;
      readonly digest?: Digest | undefined;
      readonly index?: number | undefined;
      readonly raw: string;
    }
  /** The store: an image by name or ID (a source), or the name to record (a sink; "" = the source's). */
  | { readonly kind: "store"; readonly image: string; readonly raw: string };

/**
 * Parses `spec`: `docker://REF`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
 * `docker-archive:FILE[:NAME:TAG]`, `rkt:[IMAGE]`; anything else names a stored image. Relative
 * paths resolve against `cwd`. RKT_INVALID_REFERENCE.
 */
export function parseImageLocation(spec: string, cwd = process.cwd()): ImageLocation {
  if (spec.startsWith("docker://"))
    return { kind: "docker", ref: parseDockerReference(spec.slice(9), spec), raw: spec };
  if (spec.startsWith("rkt:")) return { kind: "store", image: spec.slice(4), raw: spec };
  if (/^(?:oci|oci-archive|docker-archive):/.test(spec)) {
    const r = parseImageRef(spec);
    if (r.transport === "oci" || r.transport === "oci-archive") {
      return { kind: r.transport, path: resolve(cwd, r.path), ref: r.ref, index: r.index, raw: spec };
    }
    if (r.transport === "docker-archive") {
      const { ref, digest, index } = r;
      return { kind: "docker-archive", path: resolve(cwd, r.path), ref, digest, index, raw: spec };
    }
  }
  if (spec === "") throw new RktError(ErrorCode.InvalidReference, "empty image location");
  return { kind: "store", image: spec, raw: spec };
}

/** What opening a location needs. */
export interface TransportContext {
  /** The local store, for `rkt:` and bare image names. */
  readonly store?: LocalStore | undefined;
  /** A client for a registry host (credentials, TLS, proxies are the caller's); the caller closes it. */
  client(registry: string): RegistryClient;
  /** A directory a compressed archive may be unpacked into (created, then removed). */
  readonly unpackTo?: string | undefined;
}

/** An opened source: the image, what it is called, and what the copy may exploit. */
export interface OpenedSource {
  readonly image: ImageOrIndex;
  /** `registry/repository` or the stored name, and the tag, when the source names one. */
  readonly name: string | undefined;
  readonly tag: string | undefined;
  /** Set for a registry: a sink on the same registry mounts blobs instead of uploading them. */
  readonly origin?: { registry: string; repository: string } | undefined;
  /** The source reads blobs from an offset (a sink may resume a partial blob). */
  readonly ranged: boolean;
  close(): Promise<void>;
}

function needStore(ctx: TransportContext, raw: string): LocalStore {
  if (ctx.store === undefined) throw new RktError(ErrorCode.InvalidArgument, `${raw}: no store to read from`);
  return ctx.store;
}

const noop = (): Promise<void> => Promise.resolve();

/** Opens `loc` for reading. Errors name `loc.raw`. */
export async function openImageSource(loc: ImageLocation, ctx: TransportContext): Promise<OpenedSource> {
  try {
    switch (loc.kind) {
      case "docker": {
        const { registry, repository } = loc.ref;
        const image = await registryImage(
          ctx.client(registry),
          repository,
          loc.ref.digest ?? loc.ref.tag ?? "latest",
        );
        return {
          image,
          name: `${registry}/${repository}`,
          tag: loc.ref.tag,
          origin: { registry, repository },
          ranged: true,
          close: noop,
        };
      }
      case "oci": {
        const reader = await openOciLayout(loc.path);
        const image = await layoutImage(reader, loc, loc.raw);
        const { name, tag } = nameAndTag(loc.ref ?? refNameOf(image), basename(loc.path));
        return { image, name, tag, ranged: true, close: noop };
      }
      case "oci-archive": {
        const opened = await openOciArchive(loc.path, {
          ref: loc.ref,
          index: loc.index,
          unpackTo: ctx.unpackTo,
        });
        const { name, tag } = nameAndTag(loc.ref ?? refNameOf(opened.image), archiveBase(loc.path));
        return { image: opened.image, name, tag, ranged: true, close: () => opened.close() };
      }
      case "docker-archive": {
        const opened = await openDockerArchive(loc.path, { ...loc, what: loc.raw, unpackTo: ctx.unpackTo });
        const first = opened.repoTags[0];
        const { name, tag } =
          loc.ref !== undefined
            ? { name: `${loc.ref.registry}/${loc.ref.repository}`, tag: loc.ref.tag }
            : first !== undefined
              ? repoTagName(first)
              : { name: archiveBase(loc.path), tag: undefined };
        return { image: opened.image, name, tag, ranged: true, close: () => opened.close() };
      }
      case "store": {
        const store = needStore(ctx, loc.raw);
        const id = resolveImage(store, loc.image);
        // Named as the user named it: one image ID may be stored under several names.
        const given = isImageIdSyntax(loc.image) ? undefined : splitStoredName(loc.image);
        const rec = given === undefined ? getImage(store, id) : undefined;
        return {
          image: await storeImage(store, id),
          name: given?.name ?? (rec?.name === "" ? undefined : rec?.name),
          tag: given?.tag ?? rec?.labels["version"],
          ranged: true,
          close: noop,
        };
      }
    }
  } catch (e) {
    if (e instanceof RktError && !e.message.startsWith(loc.raw)) {
      throw new RktError(e.code, `${loc.raw}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/** `NAME[:TAG]` of a stored image (appc labels after a comma dropped); the tag defaults to latest. */
function splitStoredName(image: string): { name: string; tag: string } {
  const head = image.split(",")[0] ?? image;
  const colon = head.lastIndexOf(":");
  return colon > head.lastIndexOf("/")
    ? { name: head.slice(0, colon), tag: head.slice(colon + 1) }
    : { name: head, tag: "latest" };
}

function refNameOf(x: ImageOrIndex): string | undefined {
  return x.descriptor.annotations?.[refNameAnnotation];
}

/** Options of {@link openImageSink}. */
export interface OpenSinkOptions {
  /** Replace an existing archive file. */
  overwrite?: boolean | undefined;
  /** Upload blobs larger than this in chunks (registries). */
  chunkSize?: number | undefined;
}

/** An opened sink and the name the copied image gets there. */
export interface OpenedSink {
  readonly sink: ImageSink;
  readonly tag: string | undefined;
}

/**
 * Opens `loc` for writing an image from `src`. The name at the destination: the tag of a
 * `docker://` reference; the ref of `oci:`/`oci-archive:`; for `docker-archive:` the given
 * `NAME:TAG` or the source's; for `rkt:` the given name or the source's.
 */
export function openImageSink(
  loc: ImageLocation,
  ctx: TransportContext,
  src: Pick<OpenedSource, "name" | "tag">,
  o: OpenSinkOptions = {},
): OpenedSink {
  switch (loc.kind) {
    case "docker": {
      const sink = registrySink(ctx.client(loc.ref.registry), loc.ref.repository, { chunkSize: o.chunkSize });
      return { sink, tag: loc.ref.tag };
    }
    case "oci":
      return { sink: layoutSink(loc.path, { what: loc.raw }), tag: loc.ref };
    case "oci-archive":
      return { sink: ociArchiveSink(loc.path, { overwrite: o.overwrite, what: loc.raw }), tag: loc.ref };
    case "docker-archive": {
      const sink = dockerArchiveSink(loc.path, { overwrite: o.overwrite, what: loc.raw });
      const name = loc.ref === undefined ? src.name : `${loc.ref.registry}/${loc.ref.repository}`;
      const tag = loc.ref === undefined ? src.tag : loc.ref.tag;
      return { sink, tag: name === undefined ? undefined : familiarRepoTag(name, tag ?? "latest") };
    }
    case "store": {
      const store = needStore(ctx, loc.raw);
      if (loc.image === "")
        return { sink: storeSink(store, { name: src.name, what: loc.raw }), tag: src.tag };
      const { name, tag } = splitStoredName(loc.image);
      return { sink: storeSink(store, { name, what: loc.raw }), tag };
    }
  }
}
