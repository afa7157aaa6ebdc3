// The appc pod manifest basics (spec/pods.md, schema/pod.go).
import { onFirstUse } from "@rkt/oci";
import type { z } from "zod";
import { appcSchemas, goObject, uniqueNamed } from "./common.js";
import { acKindSchema, imageManifestSchemas } from "./image-manifest.js";

const modeRe = /^0?[0-7]{3,4}$/;

/** Zod schemas of the pod manifest and its parts. */
export const podManifestSchemas = onFirstUse((z) => {
  const { acIdentifierSchema, acNameSchema, acVersionSchema, imageIdSchema, labelsSchema } = appcSchemas();
  const { annotationsSchema, appSchema, isolatorsSchema } = imageManifestSchemas();
  const mountSchema = goObject({
    volume: acNameSchema,
    path: z.string().min(1, { error: "mount path is required" }),
    appVolume: z.unknown().optional(),
  });

  /** One app of a pod. A pod template may leave `image.id` out; a reified pod has it. */
  const runtimeAppSchema = goObject({
    name: acNameSchema,
    image: goObject({
      name: acIdentifierSchema.optional(),
      id: imageIdSchema.optional(),
      labels: labelsSchema.optional(),
    }),
    app: appSchema.optional(),
    readOnlyRootFS: z.boolean().optional(),
    mounts: z.array(mountSchema).optional(),
    annotations: annotationsSchema.optional(),
  });

  /** A pod volume: `host` needs an absolute source; `empty` takes mode/uid/gid and no source. */
  const volumeSchema = goObject({
    name: acNameSchema,
    kind: z.enum(["host", "empty"], { error: 'volume kind must be "host" or "empty"' }),
    source: z.string().optional(),
    readOnly: z.boolean().optional(),
    recursive: z.boolean().optional(),
    mode: z.string().regex(modeRe, { error: "volume mode must be an octal string such as 0755" }).optional(),
    uid: z.number().int().nonnegative().optional(),
    gid: z.number().int().nonnegative().optional(),
  }).superRefine((v, ctx) => {
    if (v.kind === "host") {
      if (v.source === undefined || v.source === "")
        ctx.addIssue({ code: "custom", path: ["source"], message: "host volume needs a source" });
      else if (!v.source.startsWith("/"))
        ctx.addIssue({
          code: "custom",
          path: ["source"],
          message: "source for host volume must be absolute path",
        });
      for (const k of ["mode", "uid", "gid"] as const) {
        if (v[k] !== undefined)
          ctx.addIssue({ code: "custom", path: [k], message: `${k} is only for empty volumes` });
      }
    } else if (v.source !== undefined && v.source !== "") {
      ctx.addIssue({ code: "custom", path: ["source"], message: "source for empty volume must be empty" });
    }
  });

  const exposedPortSchema = goObject({
    name: acNameSchema,
    hostPort: z.number().int().min(0).max(65535),
    hostIP: z.string().optional(),
    podPort: z.unknown().optional(),
  });

  const stringMap = z.record(z.string(), z.string());

  /** The pod manifest. */
  const podManifestSchema = goObject({
    acVersion: acVersionSchema,
    acKind: acKindSchema("PodManifest"),
    apps: uniqueNamed(runtimeAppSchema, "apps")
      .optional()
      .transform((a) => a ?? []),
    volumes: uniqueNamed(volumeSchema, "volumes").optional(),
    isolators: isolatorsSchema.optional(),
    annotations: annotationsSchema.optional(),
    ports: z.array(exposedPortSchema).optional(),
    userAnnotations: stringMap.optional(),
    userLabels: stringMap.optional(),
  });
  return { runtimeAppSchema, volumeSchema, podManifestSchema };
});

type Schemas = ReturnType<typeof podManifestSchemas>;

/** A parsed pod manifest. */
export type PodManifest = z.output<Schemas["podManifestSchema"]>;
/** One app of a pod manifest. */
export type RuntimeApp = z.output<Schemas["runtimeAppSchema"]>;
/** One volume of a pod manifest. */
export type Volume = z.output<Schemas["volumeSchema"]>;
