// Injected by bundle.mjs into the CommonJS bundle as the value of every `import.meta.url`, which
// CommonJS lacks: the bundle's own file URL (`__filename` is the bundle's there).
import { pathToFileURL } from "node:url";

export const rktBundleUrl = pathToFileURL(__filename).href;
