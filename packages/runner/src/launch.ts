// What a stage1 is handed: a pod whose apps are fully resolved (root filesystem mounted, command,
// environment, credentials, mounts). Everything image- and store-specific is settled before.

/** One bind mount into an app's root filesystem. */
export interface LaunchMount {
  /** Host path. */
  readonly source: string;
  /** Absolute path inside the app. */
  readonly target: string;
  readonly readOnly: boolean;
}

/** One app, ready to start. */
export interface LaunchApp {
  readonly name: string;
  /** Host path of its root filesystem (an overlay mount or a flattened copy). */
  readonly rootfs: string;
  readonly args: readonly string[];
  /** `K=V` strings. */
  readonly env: readonly string[];
  readonly uid: number;
  /** The user's name in the image's /etc/passwd, when it has one. */
  readonly userName?: string | undefined;
  readonly gid: number;
  readonly additionalGids: readonly number[];
  readonly cwd: string;
  readonly mounts: readonly LaunchMount[];
  /** Capabilities it keeps (`CAP_…`). */
  readonly capabilities: readonly string[];
}

/** `--net`: `host` shares the host's network; `none` and `default` give the pod its own, loopback only. */
export type NetMode = "host" | "none" | "default";

/** A pod, ready to start. */
export interface LaunchPod {
  readonly uuid: string;
  /** The pod directory. */
  readonly dir: string;
  readonly apps: readonly LaunchApp[];
  readonly net: NetMode;
  readonly hostname: string;
  /** One app with the caller's terminal as its controlling terminal. */
  readonly interactive: boolean;
}

/** rkt's default capability set (the capabilities guide's list). */
export const defaultCapabilities: readonly string[] = [
  "CAP_AUDIT_WRITE",
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_KILL",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_NET_BIND_SERVICE",
  "CAP_SETUID",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_SETFCAP",
  "CAP_SYS_CHROOT",
];
