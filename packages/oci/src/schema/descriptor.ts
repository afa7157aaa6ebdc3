import type { z } from "zod";
import type { Digest } from "../digest.js";
import { checkData, commonSchemas, msg } from "./common.js";
import { onFirstUse } from "./zod.js";

/**
 * The platform an image manifest runs on (image-index.md). Values are Go GOOS/GOARCH names as
 * written by the producer; compare them only after `normalizePlatform`.
 */
export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly "os.version"?: string | undefined;
  /** Mandatory OS features (e.g. `win32k`): a host lacking one cannot use the image. */
  readonly "os.features"?: readonly string[] | undefined;
  readonly variant?: string | undefined;
  /** Reserved by OCI (Docker put CPU features here); ignored by matching. */
  readonly features?: readonly string[] | undefined;
}

/**
 * A reference to content (descriptor.md): what it is, its digest and its size. The digest and
 * size are always checked against the bytes before the content is trusted.
 */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  /** Bytes of the raw (for layers: compressed) content. */
  readonly size: number;
  /** Other places the content may be fetched from (non-distributable / foreign layers). */
  readonly urls?: readonly string[] | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** The content itself, base64; already checked against size and digest when parsed. */
  readonly data?: string | undefined;
  readonly artifactType?: string | undefined;
  /** Only on index entries. */
  readonly platform?: Platform | undefined;
}

/** Zod schemas of {@link Platform} and {@link Descriptor}. */
export const descriptorSchemas = onFirstUse((z) => {
  const { annotationsSchema, dataSchema, digestSchema, mediaTypeSchema, sizeSchema, urlSchema } =
    commonSchemas();
  const nonEmpty = (what: string) => z.string().min(1, msg(`${what} must not be empty`));

  const platformSchema: z.ZodType<Platform> = z.object({
    architecture: nonEmpty("architecture"),
    os: nonEmpty("os"),
    "os.version": z.string().optional(),
    "os.features": z.array(z.string()).optional(),
    variant: z.string().optional(),
    features: z.array(z.string()).optional(),
  });

  // Unknown fields are dropped (raw bytes keep them).
  const descriptorSchema: z.ZodType<Descriptor> = z
    .object({
      mediaType: mediaTypeSchema,
      digest: digestSchema,
      size: sizeSchema,
      urls: z.array(urlSchema).optional(),
      annotations: annotationsSchema.optional(),
      data: dataSchema.optional(),
      artifactType: mediaTypeSchema.optional(),
      platform: platformSchema.optional(),
    })
    .superRefine(checkData);
  return { platformSchema, descriptorSchema };
});
