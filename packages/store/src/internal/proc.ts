// Process identity for locks a killed process never leaves behind: a pid alone can be reused, so a
// holder is (pid, start time in clock ticks since boot: /proc/<pid>/stat field 22, proc(5)).
import { readFileSync } from "node:fs";

/** The start time of process `pid`, or undefined when no such process exists (or it is a zombie). */
export function processStartTime(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm (field 2) is in parentheses and may itself contain spaces or ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); field 22 is fields[19].
  if (fields[0] === "Z" || fields[0] === "X") return undefined;
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

let self: { pid: number; start: number } | undefined;

/** This process's identity (cached; pid and start time never change for a process). */
export function selfProcess(): { pid: number; start: number } {
  if (self === undefined) self = { pid: process.pid, start: processStartTime(process.pid) ?? 0 };
  return self;
}

/** True when the process that was (pid, start) is still running. */
export function isAlive(pid: number, start: number): boolean {
  const now = processStartTime(pid);
  return now !== undefined && now === start;
}

/** A name for a temp entry that GC can attribute to this process: `<pid>-<start>-<suffix>`. */
export function ownedTempName(suffix: string): string {
  const me = selfProcess();
  return `${me.pid}-${me.start}-${suffix}`;
}
