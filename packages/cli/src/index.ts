// Public entry of @rkt/cli: the `rkt` command, callable in-process.
export {
  main,
  run,
  formatError,
  rktVersion,
  appcVersion,
  ExitCode,
  UsageError,
  commandTree,
  parseCommandArgs,
} from "./main.js";
export type { MainIO } from "./main.js";
export type { Command, CommandContext, GlobalOptions, InsecureOptions } from "./context.js";
export { parseInsecureOptions, splitGlobalFlags, defaultDataDir } from "./globals.js";
export type { SplitArgs } from "./globals.js";
export { globalFlags } from "./globals.js";
export { boolFlag, stringFlag, parseCommandLine, readFlag, parseGoBool, ParsedArgs } from "./flags.js";
export type { FlagSet, FlagSpec, ArgToken, ParseOptions } from "./flags.js";
export type { CommandSpec, ArgCompletion } from "./command-spec.js";
export { imageValidateCommand, formatText } from "./commands/image-validate.js";
