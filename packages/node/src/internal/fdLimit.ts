/**
 * The process's file-descriptor limit, from which the default connection
 * limits are derived: every WebSocket holds one descriptor, and a process
 * that runs out of them cannot accept, open files or resolve names.
 */
import { readFileSync } from "node:fs"

/** The soft `RLIMIT_NOFILE` of this process (Linux: /proc/self/limits); undefined when unknown or unlimited. */
export const openFileLimit = (): number | undefined => {
  try {
    const limits = readFileSync("/proc/self/limits", "latin1")
    const match = /^Max open files\s+(\d+)/m.exec(limits)
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/** Descriptors left to the rest of the process below the WebSocket limit: a tenth of the limit, at least 128. */
export const reserveFor = (limit: number): number => Math.max(128, Math.ceil(limit / 10))
