// Node has neither mknod(2) nor the xattr calls, so those go through the Debian tools, batched so
// that a layer with ten thousand whiteouts costs two process starts, not ten thousand:
//   - `xargs -0 -n5 mknod -m 0 -- …`: one spawn per batch (xargs starts mknod per node, which is
//     cheap next to a Node spawn and needs no shell quoting because every argument is NUL-separated);
//   - `setfattr -h --restore=-`: the getfattr dump format on stdin, values hex-encoded, names
//     octal-escaped as getfattr writes them; `-h` never follows a symlink;
//   - `getfattr -R -h -d -m - -e hex --absolute-names`: every xattr of a tree in one run.
import { spawn } from "node:child_process";
import { ErrorCode, RktError } from "@rkt/oci";

/** Runs a tool with `input` on stdin; resolves with stdout; RKT_IO naming `what` on failure. */
export async function runTool(
  cmd: string,
  args: readonly string[],
  input: Buffer | string | undefined,
  what: string,
  o: { cwd?: string | undefined } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], cwd: o.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      const hint = e.code === "ENOENT" ? ` (${cmd} is not installed; run scripts/setup.sh)` : "";
      reject(new RktError(ErrorCode.Io, `${what}: cannot run ${cmd}: ${e.message}${hint}`, { cause: e }));
    });
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else {
        const msg = Buffer.concat(err).toString("utf8").trim().split("\n").slice(0, 3).join("; ");
        reject(new RktError(ErrorCode.Io, `${what}: ${cmd} failed (exit ${code}): ${msg}`));
      }
    });
    child.stdin.on("error", () => undefined); // a tool that exits early reports through `close`
    child.stdin.end(input);
  });
}

/** A device node or FIFO to create. */
export interface NodeSpec {
  path: string;
  kind: "c" | "b" | "p";
  major: number;
  minor: number;
}

/** Creates device nodes and FIFOs (mode 0: the caller chowns and chmods afterwards). Needs root for devices. */
export async function makeNodes(nodes: readonly NodeSpec[], what: string): Promise<void> {
  const devs = nodes.filter((n) => n.kind !== "p");
  const fifos = nodes.filter((n) => n.kind === "p");
  const jobs: Promise<unknown>[] = [];
  if (devs.length > 0) {
    const input = devs.map((n) => `${n.path}\0${n.kind}\0${n.major}\0${n.minor}\0`).join("");
    jobs.push(runTool("xargs", ["-0", "-n4", "mknod", "-m", "0", "--"], input, what));
  }
  if (fifos.length > 0) {
    const input = fifos.map((n) => `${n.path}\0`).join("");
    jobs.push(runTool("xargs", ["-0", "mkfifo", "-m", "0", "--"], input, what));
  }
  await Promise.all(jobs);
}

// getfattr's escaping of a path: bytes outside printable ASCII, backslash and `=` as \ooo.
function escapePath(p: string): string {
  let s = "";
  for (const b of Buffer.from(p, "utf8")) {
    s +=
      b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d
        ? `\\${b.toString(8).padStart(3, "0")}`
        : String.fromCharCode(b);
  }
  return s;
}

function unescapePath(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, "utf8"));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Sets xattrs: path -> (name -> value). Never follows symlinks. */
export async function setXattrs(
  attrs: ReadonlyMap<string, ReadonlyMap<string, Buffer>>,
  what: string,
): Promise<void> {
  if (attrs.size === 0) return;
  let dump = "";
  for (const [path, kv] of attrs) {
    dump += `# file: ${escapePath(path)}\n`;
    for (const [name, value] of kv) dump += `${escapePath(name)}=0x${value.toString("hex")}\n`;
    dump += "\n";
  }
  await runTool("setfattr", ["-h", "--restore=-"], dump, what);
}

/** Every xattr under `root` (recursively, symlinks not followed): absolute path -> sorted (name, value). */
export async function readXattrsTree(root: string, what: string): Promise<Map<string, [string, Buffer][]>> {
  const out = await runTool(
    "getfattr",
    ["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", "--", root],
    undefined,
    what,
  );
  const res = new Map<string, [string, Buffer][]>();
  let cur: [string, Buffer][] | undefined;
  for (const line of out.toString("utf8").split("\n")) {
    if (line.startsWith("# file: ")) {
      cur = [];
      res.set(unescapePath(line.slice(8)), cur);
    } else if (cur !== undefined && line !== "" && !line.startsWith("#")) {
      // `name=0x…`, or a bare `name` for an empty value.
      const eq = line.indexOf("=");
      const name = eq < 0 ? line : line.slice(0, eq);
      const v = eq < 0 ? "" : line.slice(eq + 1);
      cur.push([unescapePath(name), v.startsWith("0x") ? Buffer.from(v.slice(2), "hex") : Buffer.alloc(0)]);
    }
  }
  for (const list of res.values()) list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return res;
}

/** Linux device number split (glibc gnu_dev_major/minor). */
export function devMajor(rdev: number): number {
  return (Math.floor(rdev / 256) & 0xfff) | ((Math.floor(rdev / 2 ** 32) & 0xfffff) * 4096);
}
/** Linux device minor (glibc gnu_dev_minor). */
export function devMinor(rdev: number): number {
  return (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
}
