// The appc image manifest (spec/aci.md, schema/image.go, schema/types/app.go, port.go). Messages follow
// appc's where it has one.
import { onFirstUse, zod } from "@rkt/oci";
import type { z } from "zod";
import { isolatorSetProblems, isolatorValueProblems } from "../isolators.js";
import { absolutePath, appcSchemas, goObject, uniqueNamed } from "./common.js";

/** acKind: required and exactly `kind`, with appc's messages. */
export function acKindSchema<K extends string>(kind: K) {
  const z = zod();
  return z.unknown().transform((v, ctx): K => {
    if (v === kind) return kind;
    const message =
      typeof v === "string" && v !== "" ? `bad ACKind: ${v}` : `missing or bad ACKind (must be "${kind}")`;
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  });
}

// appc >= 0.8.11 allows `.` and `-` after the first character (0.8.10 did not).
const envNameRe = /^[A-Za-z_][A-Za-z_0-9.-]*$/;
// RFC 3339 date-time, as Go's time.RFC3339 parses it.
const rfc3339Re = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** Zod schemas of the image manifest and its parts. Unknown keys are dropped and keys match case-insensitively, as in appc. */
export const imageManifestSchemas = onFirstUse((z) => {
  const { acIdentifierSchema, acNameSchema, acVersionSchema, imageIdSchema, labelsSchema } = appcSchemas();
  const stringList = z.array(z.string());

  /**
   * An isolator: an AC Identifier name and a value whose shape depends on the name; the values of
   * the names appc knows are checked as appc's types check them, others are kept as they are.
   */
  const isolatorSchema = goObject({ name: acIdentifierSchema, value: z.unknown() }).superRefine(
    (iso, ctx) => {
      for (const p of isolatorValueProblems(iso.name, iso.value)) {
        ctx.addIssue({ code: "custom", path: [...p.path], message: p.message });
      }
    },
  );

  /** A list of isolators: each checked, then the set (single-instance and conflicting names). */
  const isolatorsSchema = z.array(isolatorSchema).superRefine((list, ctx) => {
    for (const p of isolatorSetProblems(list)) {
      ctx.addIssue({ code: "custom", path: [p.index, "name"], message: p.message });
    }
  });

  const eventHandlerSchema = goObject({
    name: z.string().superRefine((n, ctx) => {
      if (n === "") ctx.addIssue({ code: "custom", message: 'eventHandler "name" cannot be empty' });
      else if (n !== "pre-start" && n !== "post-stop") {
        ctx.addIssue({ code: "custom", message: `bad eventHandler "name": ${JSON.stringify(n)}` });
      }
    }),
    exec: stringList.optional(),
  });

  const environmentVariableSchema = goObject({
    name: z
      .string()
      .regex(envNameRe, { error: "environment variable name must match [A-Za-z_][A-Za-z_0-9.-]*" }),
    value: z.string(),
  });

  const mountPointSchema = goObject({
    name: acNameSchema,
    path: z.string().min(1, { error: "mountPoint path is required" }),
    readOnly: z.boolean().optional(),
  });

  const portSchema = goObject({
    name: acNameSchema,
    protocol: z.string().min(1, { error: "port protocol is required" }),
    port: z
      .number()
      .int({ error: "port must be an integer" })
      .min(1, { error: "port must be in 1-65535 range" })
      .max(65535, {
        error: "port must be in 1-65535 range",
      }),
    // Absent or 0 means 1 (appc Port.UnmarshalJSON).
    count: z
      .number()
      .int({ error: "count must be a non-negative integer" })
      .nonnegative({ error: "count must be a non-negative integer" })
      .optional()
      .transform((c) => (c === undefined || c === 0 ? 1 : c)),
    socketActivated: z.boolean().optional(),
  }).superRefine((p, ctx) => {
    if (p.port + p.count > 65536) {
      ctx.addIssue({
        code: "custom",
        path: ["count"],
        message: "end of port range must be in 1-65535 range",
      });
    }
  });

  const stringMap = z.record(z.string(), z.string());

  /** The `app` section of an image manifest (also the `app` override of a pod's runtime app). */
  const appSchema = goObject({
    exec: stringList.optional(),
    user: z.string({ error: "user is required" }).min(1, { error: "user is required" }),
    group: z.string({ error: "group is required" }).min(1, { error: "group is required" }),
    supplementaryGIDs: z.array(z.number().int({ error: "supplementaryGIDs must be integers" })).optional(),
    eventHandlers: z
      .array(eventHandlerSchema)
      .superRefine((hs, ctx) => {
        const seen = new Set<string>();
        hs.forEach((h, i) => {
          if (seen.has(h.name)) {
            ctx.addIssue({
              code: "custom",
              path: [i, "name"],
              message: `Only one eventHandler of name ${JSON.stringify(h.name)} allowed`,
            });
          }
          seen.add(h.name);
        });
      })
      .optional(),
    workingDirectory: absolutePath("workingDirectory").optional(),
    // appc turns an absent environment into an empty list after unmarshalling.
    environment: uniqueNamed(environmentVariableSchema, "environment variables")
      .optional()
      .transform((e) => e ?? []),
    isolators: isolatorsSchema.optional(),
    mountPoints: uniqueNamed(mountPointSchema, "mountPoints").optional(),
    ports: uniqueNamed(portSchema, "ports").optional(),
    userAnnotations: stringMap.optional(),
    userLabels: stringMap.optional(),
  });

  const annotationSchema = goObject({ name: acIdentifierSchema, value: z.string() }).superRefine((a, ctx) => {
    if (a.name === "created" && (!rfc3339Re.test(a.value) || Number.isNaN(Date.parse(a.value)))) {
      ctx.addIssue({
        code: "custom",
        path: ["value"],
        message: `created annotation must be an RFC 3339 date: ${JSON.stringify(a.value)}`,
      });
    }
    if (a.name === "homepage" || a.name === "documentation") {
      let ok = false;
      try {
        const u = new URL(a.value);
        ok = u.protocol === "http:" || u.protocol === "https:";
      } catch {
        ok = false;
      }
      if (!ok) {
        ctx.addIssue({
          code: "custom",
          path: ["value"],
          message: `${a.name} annotation must be an http or https URL`,
        });
      }
    }
  });

  /** Annotations: `{name, value}` with unique AC Identifier names; well-known ones checked. */
  const annotationsSchema = uniqueNamed(annotationSchema, "annotations");

  /** A dependency: an image by name (and labels), optionally pinned by image ID and size. */
  const dependencySchema = goObject({
    imageName: acIdentifierSchema,
    imageID: imageIdSchema.optional(),
    labels: labelsSchema.optional(),
    size: z
      .number()
      .int({ error: "size must be a non-negative integer" })
      .nonnegative({ error: "size must be a non-negative integer" })
      .optional(),
  });

  /** The image manifest. Unknown keys are dropped and keys match case-insensitively, as in appc. */
  const imageManifestSchema = goObject({
    acKind: acKindSchema("ImageManifest"),
    acVersion: acVersionSchema,
    name: acIdentifierSchema,
    labels: labelsSchema.optional(),
    app: appSchema.optional(),
    annotations: annotationsSchema.optional(),
    dependencies: z.array(dependencySchema).optional(),
    pathWhitelist: z.array(absolutePath("pathWhitelist entry")).optional(),
  });
  return {
    isolatorSchema,
    isolatorsSchema,
    appSchema,
    annotationSchema,
    annotationsSchema,
    dependencySchema,
    imageManifestSchema,
  };
});

type Schemas = ReturnType<typeof imageManifestSchemas>;

/** A parsed image manifest. */
export type ImageManifest = z.output<Schemas["imageManifestSchema"]>;
/** The `app` section of an image manifest. */
export type App = z.output<Schemas["appSchema"]>;
/** One dependency of an image manifest. */
export type Dependency = z.output<Schemas["dependencySchema"]>;
/** One annotation. */
export type Annotation = z.output<Schemas["annotationSchema"]>;
/** One isolator. */
export type Isolator = z.output<Schemas["isolatorSchema"]>;
