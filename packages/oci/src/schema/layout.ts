import type { z } from "zod";
import { msg } from "./common.js";
import { onFirstUse } from "./zod.js";

/** The `oci-layout` file at the root of an OCI image layout (image-layout.md). */
export interface OciLayout {
  readonly imageLayoutVersion: "1.0.0";
}

/** Zod schema of {@link OciLayout}; other fields are allowed and dropped. */
export const ociLayoutSchema = onFirstUse((z): z.ZodType<OciLayout> =>
  z.object({ imageLayoutVersion: z.literal("1.0.0", msg('imageLayoutVersion must be "1.0.0"')) }),
);
