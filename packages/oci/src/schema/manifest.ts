import type { z } from "zod";
import { MediaType } from "../media-types.js";
import { commonSchemas, msg } from "./common.js";
import { descriptorSchemas, type Descriptor } from "./descriptor.js";
import { onFirstUse } from "./zod.js";

/**
 * An image manifest: the OCI image manifest (manifest.md) or the Docker schema2 manifest
 * (manifest-v2-2.md), which has the same shape minus `artifactType`, `subject` and annotations.
 * `mediaType` is the Docker type for schema2 and the OCI type or absent for OCI.
 */
export interface Manifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly artifactType?: string | undefined;
  readonly config: Descriptor;
  /** Base layer first, in stack order. At least one in an OCI manifest (artifacts: the empty one). */
  readonly layers: readonly Descriptor[];
  /** A weak reference to another manifest (referrers API); it need not exist. */
  readonly subject?: Descriptor | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/**
 * An image index (image-index.md) or Docker manifest list: descriptors of manifests, usually one
 * per platform. `manifests` may be empty.
 */
export interface Index {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly artifactType?: string | undefined;
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** Zod schemas of the image manifests and indexes, OCI and Docker. */
export const manifestSchemas = onFirstUse((z) => {
  const { annotationsSchema, mediaTypeSchema } = commonSchemas();
  const { descriptorSchema } = descriptorSchemas();
  const schemaVersion2 = z.literal(2, msg("schemaVersion must be 2"));

  const mediaTypeIs = (expected: string, what: string) =>
    z.literal(expected, msg(`mediaType must be ${expected} for ${what}`));

  /**
   * Zod schema of the OCI image manifest: the JSON schema (image-manifest-schema.json, whose
   * `layers` has minItems 1; an artifact without content uses the empty descriptor as its layer),
   * plus the prose where it is stricter: `artifactType` MUST be set when the config is the empty
   * descriptor.
   */
  const ociManifestSchema: z.ZodType<Manifest> = z
    .object({
      schemaVersion: schemaVersion2,
      mediaType: mediaTypeIs(MediaType.OciManifest, "an OCI image manifest").optional(),
      artifactType: mediaTypeSchema.optional(),
      config: descriptorSchema,
      layers: z.array(descriptorSchema).min(1, msg("an image manifest needs at least one layer")),
      subject: descriptorSchema.optional(),
      annotations: annotationsSchema.optional(),
    })
    .superRefine((m, ctx) => {
      if (m.config.mediaType === MediaType.OciEmpty && m.artifactType === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["artifactType"],
          message: `artifactType is required when config.mediaType is ${MediaType.OciEmpty}`,
        });
      }
    });

  /** Zod schema of the Docker schema2 manifest; `mediaType` is required there. */
  const dockerManifestSchema: z.ZodType<Manifest> = z.object({
    schemaVersion: schemaVersion2,
    mediaType: mediaTypeIs(MediaType.DockerManifest, "a Docker schema2 manifest"),
    config: descriptorSchema,
    layers: z.array(descriptorSchema),
  });

  /** Zod schema of the OCI image index. */
  const ociIndexSchema: z.ZodType<Index> = z.object({
    schemaVersion: schemaVersion2,
    mediaType: mediaTypeIs(MediaType.OciIndex, "an OCI image index").optional(),
    artifactType: mediaTypeSchema.optional(),
    manifests: z.array(descriptorSchema),
    subject: descriptorSchema.optional(),
    annotations: annotationsSchema.optional(),
  });

  /** Zod schema of the Docker manifest list; `mediaType` is required there. */
  const dockerManifestListSchema: z.ZodType<Index> = z.object({
    schemaVersion: schemaVersion2,
    mediaType: mediaTypeIs(MediaType.DockerManifestList, "a Docker manifest list"),
    manifests: z.array(descriptorSchema),
  });
  return { ociManifestSchema, dockerManifestSchema, ociIndexSchema, dockerManifestListSchema };
});
