/**
 * CPU time from Linux's `/proc`, shared by the benchmark scripts: the
 * kernel's clock tick rate and the whole machine's busy time.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"

/** Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc`'s CPU times; 100 if unknown. */
export const clockTicks = ((): number => {
  try {
    const value = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim())
    return value > 0 ? value : 100
  } catch {
    return 100
  }
})()

/** The machine's busy time so far, in clock ticks, from `/proc/stat`; NaN without `/proc`. */
export const machineBusyTicks = (): number => {
  try {
    const line = Fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
    // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)
  } catch {
    return Number.NaN
  }
}
