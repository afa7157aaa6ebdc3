// Inputs for the converter from any source of the image model (@rkt/oci's `Image`): the store,
// a registry, an OCI layout or archive, a `docker save` archive. Every layer is opened lazily,
// once per pass, as a stream; the source verifies what it serves.
import { basename } from "node:path";
import {
  RegistryClient,
  defaultCredentials,
  layoutImage,
  openDockerArchive,
  openOciLayout,
  registryImage,
  storeImage,
} from "@rkt/fetch";
import {
  ErrorCode,
  RktError,
  hostPlatform,
  parseDockerReference,
  platformImage,
  type Abortable,
  type Image,
} from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import type { ImageInput, ImageNameInput, LayerInput } from "./input.js";
import { dockerHubIndex, parseDockerName, storedImageName } from "./names.js";

/**
 * Converter input from any image: its manifest, config and layers as the source serves them.
 * `manifestHash` defaults to the manifest digest. RKT_INVALID_ARGUMENT when the config is not an
 * image config (an artifact).
 */
export async function imageInput(
  img: Image,
  name: ImageNameInput,
  o: Abortable & { manifestHash?: string | undefined } = {},
): Promise<ImageInput> {
  const config = await img.config(o);
  if (config === undefined) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${img.descriptor.digest}: config ${img.manifest.config.mediaType} is not an image config`,
    );
  }
  const layers: LayerInput[] = (await img.layers(o)).map((l) => ({
    mediaType: l.descriptor.mediaType,
    digest: l.descriptor.digest,
    size: l.descriptor.size,
    open: () => l.open(),
  }));
  return {
    manifest: img.manifest,
    config,
    layers,
    name,
    manifestHash: o.manifestHash ?? img.descriptor.digest,
  };
}

/**
 * The OCI image `id` (a full ID, `sha256:…`) of `store` as converter input; its layers are read
 * from the store (verified blobs). RKT_NOT_FOUND; RKT_INVALID_ARGUMENT for an ACI.
 */
export async function storeImageInput(store: LocalStore, id: string): Promise<ImageInput> {
  const { getImage } = await import("@rkt/store");
  const rec = getImage(store, id);
  if (rec.kind !== "oci") {
    throw new RktError(ErrorCode.InvalidArgument, `image ${id} is already an ACI: nothing to convert`);
  }
  return imageInput(await storeImage(store, id), storedImageName(rec.name, rec.labels["version"]));
}

/** Options of {@link registryInput}. */
export interface RegistryInputOptions extends Abortable {
  /** docker2aci's `-insecure-skip-verify` (`tls`) and `-insecure-allow-http` (`http`). */
  insecure?: { tls?: boolean; http?: boolean } | undefined;
  /** Credentials (docker's config.json, containers auth.json) and proxies; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

/**
 * An image of a registry (`[REGISTRY/]NAME[:TAG|@DIGEST]`, docker2aci's `docker://` argument),
 * resolved to the host's platform, its layers streamed from the registry as they are converted.
 * Named as docker2aci names remote images: registry (`registry-1.docker.io` for Docker Hub),
 * repository, tag, and the reference as written as original name.
 */
export async function registryInput(ref: string, o: RegistryInputOptions = {}): Promise<ImageInput> {
  const r = parseDockerReference(ref);
  const client = new RegistryClient(r.registry, {
    insecure: { tls: o.insecure?.tls === true, http: o.insecure?.http === true },
    credentials: defaultCredentials({ env: o.env ?? process.env }),
    env: o.env,
  });
  try {
    const what = `docker://${ref}`;
    const top = await registryImage(client, r.repository, r.digest ?? r.tag ?? "latest");
    const img = await platformImage(top, hostPlatform(), what, o);
    const p = parseDockerName(ref);
    const input = await imageInput(
      img,
      { registry: p.registry, repository: p.repository, tag: p.tag, originalName: ref },
      o,
    );
    return { ...input, close: () => client.close() };
  } catch (e) {
    await client.close();
    throw e;
  }
}

/**
 * An image of an OCI layout directory: `ref` names it (its `org.opencontainers.image.ref.name`),
 * or the layout's only image; an index resolves to the host platform. Named like docker2aci names
 * OCI layouts: the directory's base name as repository, the ref as tag (default `latest`).
 */
export async function ociLayoutInput(dir: string, ref?: string): Promise<ImageInput> {
  const reader = await openOciLayout(dir);
  const what = `oci:${dir}`;
  const img = await platformImage(await layoutImage(reader, { ref }, what), hostPlatform(), what);
  const tag =
    ref === undefined || ref === "" ? (reader.index.manifests.length === 1 ? "latest" : undefined) : ref;
  const name: ImageNameInput = {
    repository: basename(dir.replace(/\/+$/, "")).split(".")[0] ?? "image",
    tag: tag ?? "latest",
  };
  return imageInput(img, name);
}

function repoTagName(tag: string): { repository: string; tag: string | undefined; registry: string } {
  const r = parseDockerReference(tag);
  return {
    repository: r.repository,
    tag: r.digest !== undefined ? undefined : (r.tag ?? "latest"),
    registry: r.registry === "docker.io" ? dockerHubIndex : r.registry,
  };
}

/** Options of {@link dockerArchiveInput}. */
export interface DockerArchiveInputOptions {
  /** docker2aci's `--image NAME[:TAG]`: which image of the archive (needed when it holds several). */
  image?: string | undefined;
}

/**
 * An image of a `docker save` archive (current `manifest.json` form, or the legacy
 * `repositories` form), named as docker2aci names them: the repository of its tag (`busybox` →
 * `library/busybox`) without registry, the tag; with `image`, that reference's registry and the
 * reference as original name. An uncompressed archive is read in place; a compressed one has its
 * layers unpacked to a temporary directory, removed by the input's `close`. RKT_NOT_FOUND /
 * RKT_AMBIGUOUS (with the images it holds), RKT_INVALID_ARCHIVE.
 */
export async function dockerArchiveInput(
  file: string,
  o: DockerArchiveInputOptions = {},
): Promise<ImageInput> {
  const want = o.image === undefined || o.image === "" ? undefined : parseDockerReference(o.image);
  const opened = await openDockerArchive(file, { ...(want === undefined ? {} : { ref: want }), what: file });
  let name: ImageNameInput;
  const tagged = want !== undefined ? undefined : opened.repoTags[0];
  if (want !== undefined) {
    const p = parseDockerName(o.image ?? "");
    // docker2aci: the requested tag, or the image's only tag when it has no such tag.
    name = { registry: p.registry, repository: p.repository, tag: p.tag, originalName: o.image };
  } else if (tagged !== undefined) {
    const t = repoTagName(tagged);
    name = { repository: t.repository, tag: t.tag };
  } else {
    name = { repository: basename(file).split(".")[0] ?? "image", tag: "latest" };
  }
  // docker2aci's manifest hash for an archive is Docker's image ID: the config digest.
  try {
    const input = await imageInput(opened.image, name, { manifestHash: opened.image.manifest.config.digest });
    return { ...input, close: () => opened.close() };
  } catch (e) {
    await opened.close();
    throw e;
  }
}
