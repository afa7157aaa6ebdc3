// The JSON configuration files rkt shares with other tools (docker's config.json, containers'
// auth.json, rkt's auth.d) are read as those tools read them (JSON.parse: a duplicate key keeps
// the last value); a syntax error is reported in one line.
import { ErrorCode, RktError, parseJsonStrict } from "@rkt/oci";

/**
 * Parses the text of configuration file `path`. Throws RKT_INVALID_ARGUMENT `<path>: not valid
 * JSON: <JSONPath>: <problem>`, on one line whatever the file holds (JSON.parse's own message
 * quotes the text, newlines included). Pure.
 */
export function parseJsonConfig(text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const r = parseJsonStrict(text);
    const first = r.ok ? undefined : r.issues[0];
    const why = first === undefined ? "syntax error" : `${first.path}: ${first.message}`;
    throw new RktError(ErrorCode.InvalidArgument, `${path}: not valid JSON: ${why}`, { cause: e });
  }
}
