import type { z } from "zod";
import type { Digest } from "../digest.js";
import { commonSchemas, msg } from "./common.js";
import { onFirstUse } from "./zod.js";

/** The execution parameters of an image config (`config` in config.md; Docker's superset). */
export interface ContainerConfig {
  readonly User?: string | undefined;
  /** Keys are `port`, `port/tcp`, `port/udp` (Docker also `port/sctp`); values are `{}`. */
  readonly ExposedPorts?: Readonly<Record<string, object>> | undefined;
  /** `NAME=value` entries. */
  readonly Env?: readonly string[] | undefined;
  readonly Entrypoint?: readonly string[] | undefined;
  readonly Cmd?: readonly string[] | undefined;
  readonly Volumes?: Readonly<Record<string, object>> | undefined;
  readonly WorkingDir?: string | undefined;
  readonly Labels?: Readonly<Record<string, string>> | undefined;
  readonly StopSignal?: string | undefined;
  /** Deprecated by OCI (Windows only). */
  readonly ArgsEscaped?: boolean | undefined;
  /** Docker-only fields, reserved in OCI. */
  readonly Memory?: number | undefined;
  readonly MemorySwap?: number | undefined;
  readonly CpuShares?: number | undefined;
  readonly Healthcheck?: unknown;
  readonly OnBuild?: readonly string[] | undefined;
  readonly Shell?: readonly string[] | undefined;
}

/** One build step (config.md `history`), oldest first. */
export interface HistoryEntry {
  readonly created?: string | undefined;
  readonly author?: string | undefined;
  readonly created_by?: string | undefined;
  readonly comment?: string | undefined;
  /** True when the step changed no files and so has no entry in `rootfs.diff_ids`. */
  readonly empty_layer?: boolean | undefined;
}

/** An OCI image config (config.md) or Docker image config v1.2, the fields we use. */
export interface ImageConfig {
  /** RFC 3339 date-time. */
  readonly created?: string | undefined;
  readonly author?: string | undefined;
  readonly architecture: string;
  readonly os: string;
  readonly "os.version"?: string | undefined;
  readonly "os.features"?: readonly string[] | undefined;
  readonly variant?: string | undefined;
  readonly config?: ContainerConfig | undefined;
  /** `diff_ids[i]` is the digest of the uncompressed tar of `manifest.layers[i]`. */
  readonly rootfs: { readonly type: "layers"; readonly diff_ids: readonly Digest[] };
  readonly history?: readonly HistoryEntry[] | undefined;
}

// RFC 3339 section 5.6 date-time (the "T" may be lowercase; the RFC's note allows a space, which
// Go never writes, so it is refused).
const rfc3339 =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt](?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
// config.md: "<port>/tcp", "<port>/udp" or "<port>" (tcp); Docker adds sctp.
const portKey = /^(?:[1-9]\d{0,4})(?:\/(?:tcp|udp|sctp))?$/;

// config.md: "Any OPTIONAL field MAY also be set to null, which is equivalent to being absent",
// and Docker writes `"Cmd": null`, `"OnBuild": null` freely. Object members that are null are
// dropped before validation; array elements are kept (a null Env entry is an error).
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (typeof v !== "object" || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue;
    Object.defineProperty(out, k, {
      value: dropNulls(x),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Zod schema of {@link ImageConfig}: lenient about nulls and unknown fields, strict about rootfs. */
export const imageConfigSchema = onFirstUse((z) => {
  const { digestSchema } = commonSchemas();
  const dateTime = z.string().regex(rfc3339, msg("not an RFC 3339 date-time"));

  const strings = z.array(z.string());

  const containerConfigSchema = z.object({
    User: z.string().optional(),
    ExposedPorts: z
      .record(z.string(), z.object({}))
      .superRefine((ports, ctx) => {
        for (const k of Object.keys(ports)) {
          const n = Number.parseInt(k, 10);
          if (!portKey.test(k) || n > 65535) {
            ctx.addIssue({
              code: "custom",
              path: [k],
              message: `exposed port ${JSON.stringify(k)} is not port[/tcp|/udp|/sctp]`,
            });
          }
        }
      })
      .optional(),
    Env: z.array(z.string().regex(/^[^=]+=/, msg("Env entries must be NAME=value"))).optional(),
    Entrypoint: strings.optional(),
    Cmd: strings.optional(),
    Volumes: z.record(z.string(), z.object({})).optional(),
    WorkingDir: z.string().optional(),
    Labels: z.record(z.string(), z.string()).optional(),
    StopSignal: z.string().optional(),
    ArgsEscaped: z.boolean().optional(),
    Memory: z.number().int().optional(),
    MemorySwap: z.number().int().optional(),
    CpuShares: z.number().int().optional(),
    Healthcheck: z.unknown().optional(),
    OnBuild: strings.optional(),
    Shell: strings.optional(),
  });

  const historySchema = z.object({
    created: dateTime.optional(),
    author: z.string().optional(),
    created_by: z.string().optional(),
    comment: z.string().optional(),
    empty_layer: z.boolean().optional(),
  });

  const imageConfigSchema: z.ZodType<ImageConfig, unknown> = z.preprocess(
    dropNulls,
    z.object({
      created: dateTime.optional(),
      author: z.string().optional(),
      architecture: z.string().min(1, msg("architecture must not be empty")),
      os: z.string().min(1, msg("os must not be empty")),
      "os.version": z.string().optional(),
      "os.features": strings.optional(),
      variant: z.string().optional(),
      config: containerConfigSchema.optional(),
      rootfs: z.object({
        type: z.literal("layers", msg('rootfs.type must be "layers"')),
        diff_ids: z.array(digestSchema),
      }),
      history: z.array(historySchema).optional(),
    }),
  );
  return imageConfigSchema;
});
