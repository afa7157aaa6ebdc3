// The OCI runtime bundle `config.json` of one app (runtime-spec 1.0), for runc and crun. Pure.
import type { LaunchApp, LaunchPod } from "./launch.js";

/** Namespaces the app joins instead of creating (host paths such as /proc/<pid>/ns/net). */
export interface JoinNamespaces {
  readonly network?: string | undefined;
  readonly ipc?: string | undefined;
  readonly uts?: string | undefined;
}

const maskedPaths = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/proc/scsi",
];
const readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/**
 * runc's default mounts (proc, dev, devpts, shm, mqueue, sysfs, cgroup), then the app's volumes.
 * The pod's own network namespace gets a writable /sys; the host's, a read-only one (runc's rule).
 */
function mounts(app: LaunchApp, hostNet: boolean): object[] {
  const sys = hostNet
    ? {
        destination: "/sys",
        type: "bind",
        source: "/sys",
        options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
      }
    : { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] };
  return [
    { destination: "/proc", type: "proc", source: "proc" },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    sys,
    ...app.mounts.map((m) => ({
      destination: m.target,
      type: "bind",
      source: m.source,
      options: ["rbind", "rprivate", m.readOnly ? "ro" : "rw"],
    })),
  ];
}

/**
 * The runtime config of `app` in `pod`. `maxOpenFiles` is the host's hard RLIMIT_NOFILE: an app
 * may not be given more than rkt itself may have (the kernel refuses raising a hard limit).
 */
export function runtimeConfig(
  pod: LaunchPod,
  app: LaunchApp,
  join: JoinNamespaces = {},
  maxOpenFiles = 1048576,
): object {
  const caps = [...app.capabilities];
  const ns = (type: string, path: string | undefined) => (path === undefined ? { type } : { type, path });
  const namespaces = [
    { type: "pid" },
    { type: "mount" },
    ns("ipc", join.ipc),
    ns("uts", join.uts),
    ...(pod.net === "host" ? [] : [ns("network", join.network)]),
  ];
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: pod.interactive,
      user: { uid: app.uid, gid: app.gid, additionalGids: [...app.additionalGids] },
      args: [...app.args],
      env: [...app.env],
      cwd: app.cwd,
      // No inheritable or ambient set (CVE-2022-24769): a non-root app starts without capabilities.
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: maxOpenFiles, soft: maxOpenFiles }],
      noNewPrivileges: false,
    },
    root: { path: app.rootfs, readonly: false },
    hostname: pod.hostname,
    mounts: mounts(app, pod.net === "host"),
    linux: {
      namespaces,
      maskedPaths,
      readonlyPaths,
      resources: { devices: [{ allow: false, access: "rwm" }] },
    },
  };
}
