// Public entry of @rkt/cli: the `rkt` command, callable in-process.
export { main, run, formatError, rktVersion, appcVersion, ExitCode, UsageError } from "./main.js";
export type { MainIO } from "./main.js";
export type { Command, CommandContext, GlobalOptions, InsecureOptions } from "./context.js";
export { parseInsecureOptions, splitGlobalFlags, defaultDataDir } from "./globals.js";
export type { SplitArgs } from "./globals.js";
export { imageValidateCommand, formatText } from "./commands/image-validate.js";
