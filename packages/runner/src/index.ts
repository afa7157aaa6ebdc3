// Public entry of @rkt/runner: pods prepared from stored images and handed to a stage1.
export { preparePod } from "./prepare.js";
export type { AppRequest, PrepareOptions } from "./prepare.js";
export { runPreparedPod, readPod } from "./run.js";
export type { RunOptions, PodExit } from "./run.js";
export {
  PodState,
  listPods,
  podInfo,
  waitPod,
  stopPod,
  enterPod,
  catPodManifest,
  removePod,
  gcPods,
  defaultPodGracePeriodMs,
  defaultExpirePreparedMs,
} from "./lifecycle.js";
export type { PodInfo, PodAppInfo, GcPodsOptions, GcPodsReport } from "./lifecycle.js";
export { findPod, podsRoot, PodDir } from "./pod-dirs.js";
export type { PodLocation } from "./pod-dirs.js";
export {
  appFromAci,
  appFromOciConfig,
  applyOverrides,
  appEnvironment,
  appNameFor,
  volumeName,
  defaultPath,
} from "./app-spec.js";
export type { AppOverrides, OciProcessConfig } from "./app-spec.js";
export { parsePasswd, parseGroup, resolveCredentials } from "./passwd.js";
export type { PasswdEntry, GroupEntry, Credentials, CredentialsQuery } from "./passwd.js";
export { runtimeConfig } from "./oci-runtime.js";
export type { LaunchApp, LaunchPod, LaunchMount, NetMode } from "./launch.js";
export { defaultCapabilities } from "./launch.js";
export {
  stage1Names,
  stage1Preference,
  stage1Of,
  parseStage1,
  selectStage1,
  Stage1Kind,
  nspawnArgs,
  containerId,
} from "./stage1/index.js";
export type { Stage1, AppExit, LaunchIO, PodNeeds, PodRef } from "./stage1/index.js";
