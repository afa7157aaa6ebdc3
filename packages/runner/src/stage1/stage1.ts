// The one interface every stage1 implements, and what it is handed.
import type { Readable, Writable } from "node:stream";
import type { LaunchPod } from "../launch.js";

/** The stage1s, by the names `--stage1` takes. */
export const Stage1Kind = { Runc: "runc", Crun: "crun", Nspawn: "nspawn", Fly: "fly" } as const;
export type Stage1Kind = (typeof Stage1Kind)[keyof typeof Stage1Kind];

/** Where a pod's standard streams go: the caller's own descriptors, or streams to pipe through. */
export interface LaunchIO {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

/** How one app ended: its exit status, or 128 + the signal number that killed it (shells' rule). */
export interface AppExit {
  readonly app: string;
  readonly status: number;
}

/** A pod as the lifecycle commands know it after it started: directory, UUID, app names. */
export interface PodRef {
  readonly uuid: string;
  readonly dir: string;
  readonly apps: readonly string[];
}

/** What a pod asks of a stage1, to tell whether it can take it. */
export interface PodNeeds {
  readonly apps: number;
  readonly net: LaunchPod["net"];
  readonly hostnameSet: boolean;
  readonly interactive: boolean;
}

/** A stage1: starts a prepared pod's apps and manages them while they run. */
export interface Stage1 {
  readonly kind: Stage1Kind;
  /** Why it cannot run on this host (undefined: it can). */
  unavailable(): Promise<string | undefined>;
  /** Why it cannot run this pod (undefined: it can). */
  refuses(needs: PodNeeds): string | undefined;
  /** Runs every app to its end; `signal` stops them (SIGTERM). */
  run(pod: LaunchPod, io: LaunchIO, signal: AbortSignal): Promise<AppExit[]>;
  /** Runs `cmd` inside running app `app`; returns its exit status. */
  enter(pod: PodRef, app: string, cmd: readonly string[], io: LaunchIO): Promise<number>;
  /** Sends `sig` to every app of a running pod. */
  kill(pod: PodRef, sig: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Removes what a pod whose rkt died left behind: processes, runtime state. */
  cleanup(pod: PodRef): Promise<void>;
}
