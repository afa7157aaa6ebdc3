// File names inside a pod directory (rkt's where it has them) and the pod's GC root.

export const podFiles = {
  /** The appc pod manifest. */
  manifest: "pod",
  /** `appsinfo/<app>/{manifest,treeStoreID,pid}`. */
  appsinfo: "appsinfo",
  /** Marker: the apps' root filesystems are overlay mounts over the tree store. */
  overlayPrepared: "overlay-prepared",
  /** The stage1 kind chosen at prepare (rkt: `stage1TreeStoreID`). */
  stage1: "stage1-kind",
  /** Milliseconds since the epoch when the pod started. */
  started: "started",
  /** `stage1/rootfs/rkt/status/<app>`: an app's exit status (rkt's place). */
  status: "stage1/rootfs/rkt/status",
  /** `stage1/rootfs/opt/stage2/<app>/rootfs`: an app's root filesystem (rkt's place). */
  stage2: "stage1/rootfs/opt/stage2",
  /** Upper and work dirs of the overlay mounts: `overlay/<tree>/{upper,work}/<app>` (rkt). */
  overlay: "overlay",
  /** Directories of `empty` volumes. */
  volumes: "volumes",
} as const;

/** The GC root of a pod (a lease not tied to a process). */
export function podLeaseId(uuid: string): string {
  return `pod-${uuid}`;
}

/** Annotation names on each runtime app: the store image it runs (OCI images have no appc ID). */
export const annotationImageId = "rkt.dev/image-id";
export const annotationImageKind = "rkt.dev/image-kind";
export const annotationImageName = "rkt.dev/image-name";

export function imageAnnotation(id: string, kind: string, name: string): { name: string; value: string }[] {
  return [
    { name: annotationImageId, value: id },
    { name: annotationImageKind, value: kind },
    ...(name === "" ? [] : [{ name: annotationImageName, value: name }]),
  ];
}
