// /etc/passwd and /etc/group of an image: parsing (pure) and resolving the user and group an app
// runs as, the way runc and rkt's stage1 do.
import { ErrorCode, RktError } from "@rkt/oci";

/** One /etc/passwd line. */
export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** One /etc/group line. */
export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

const numeric = /^[0-9]+$/;

/** Parses /etc/passwd text; malformed lines are skipped (as glibc does). Pure. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !numeric.test(f[2]!) || !numeric.test(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

/** Parses /etc/group text; malformed lines are skipped. Pure. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !numeric.test(f[2]!)) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(",").filter((m) => m !== "") });
  }
  return out;
}

/** Who an app runs as. */
export interface Credentials {
  readonly uid: number;
  /** The user's name, when /etc/passwd has the user. */
  readonly userName?: string | undefined;
  readonly gid: number;
  /** Supplementary groups: the user's groups in /etc/group plus the app's supplementaryGIDs. */
  readonly additionalGids: readonly number[];
  /** The user's home from /etc/passwd, "/" when unknown. */
  readonly home: string;
}

/** Inputs of {@link resolveCredentials}. */
export interface CredentialsQuery {
  /** The app's user: a name or a number. */
  readonly user: string;
  /** The app's group: a name or a number; "" means the user's primary group (Docker's rule). */
  readonly group: string;
  readonly supplementaryGids?: readonly number[] | undefined;
  /** What the error names: `app "web"`. */
  readonly what: string;
}

/**
 * Resolves user and group names against the image's passwd and group files (undefined: the file is
 * absent). A number needs no entry (runc's rule); a name that is not there is an error naming the
 * app and the file. Pure.
 */
export function resolveCredentials(
  q: CredentialsQuery,
  passwd: readonly PasswdEntry[] | undefined,
  group: readonly GroupEntry[] | undefined,
): Credentials {
  const user = q.user === "" ? "0" : q.user;
  const entry = numeric.test(user)
    ? passwd?.find((p) => p.uid === Number(user))
    : passwd?.find((p) => p.name === user);
  if (!numeric.test(user) && entry === undefined) {
    throw new RktError(
      ErrorCode.NotFound,
      `${q.what}: user ${JSON.stringify(user)} is not in the image's /etc/passwd${passwd === undefined ? " (the image has none)" : ""}`,
    );
  }
  const uid = entry?.uid ?? Number(user);
  let gid: number;
  if (q.group === "") gid = entry?.gid ?? 0;
  else if (numeric.test(q.group)) gid = Number(q.group);
  else {
    const g = group?.find((e) => e.name === q.group);
    if (g === undefined) {
      throw new RktError(
        ErrorCode.NotFound,
        `${q.what}: group ${JSON.stringify(q.group)} is not in the image's /etc/group${group === undefined ? " (the image has none)" : ""}`,
      );
    }
    gid = g.gid;
  }
  const extra = new Set<number>(q.supplementaryGids ?? []);
  if (entry !== undefined) for (const g of group ?? []) if (g.members.includes(entry.name)) extra.add(g.gid);
  extra.delete(gid);
  return {
    uid,
    userName: entry?.name,
    gid,
    additionalGids: [...extra].sort((a, b) => a - b),
    home: entry?.home ?? "/",
  };
}
