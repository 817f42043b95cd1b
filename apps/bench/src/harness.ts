/**
 * What every benchmark runner of apps/bench shares: the C load generator
 * (`loadgen/loadgen.c`, compiled on demand into `apps/bench/.build/`), reading
 * a process's CPU time and RSS from /proc over a measured window, the health
 * check of a load generator result, and writing a Markdown section into
 * docs/benchmarks.md the way the repository's formatter (Biome) prints it.
 *
 * Used by `run.ts` (Switchboard against plain ws), `scaling.ts` (one
 * reactor against several) and `backplane.ts` (one server against two over
 * Redis).
 */
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort, LOOPBACK } from "../../../test-support/net.ts"
import { commandWorks, logTail, type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { clockTicks } from "./proc.ts"

export const benchDir = Path.resolve(import.meta.dirname, "..")
export const repoRoot = Path.resolve(benchDir, "../..")
export const buildDir = Path.join(benchDir, ".build")
export const logDir = Path.join(buildDir, "logs")
const loadgenSource = Path.join(benchDir, "loadgen", "loadgen.c")
const loadgenBinary = Path.join(buildDir, "loadgen")

export const fail = (message: string): never => {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(1)
}

/** Exits unless this runs on Node 24 or later. */
export const requireNode24 = (script: string): void => {
  const major = Number(process.versions.node.split(".")[0])
  if (major < 24) fail(`Node ${process.version}: run with Node 24 (pnpm exec node ${script})`)
}

/** Compiles the load generator when its binary is missing or older than its source. */
export const ensureLoadgen = (): void => {
  const sourceTime = Fs.statSync(loadgenSource).mtimeMs
  const binaryTime = Fs.existsSync(loadgenBinary) ? Fs.statSync(loadgenBinary).mtimeMs : -1
  if (binaryTime >= sourceTime) return
  if (!commandWorks("cc", ["--version"])) {
    fail("no C compiler: `cc` is needed to build loadgen/loadgen.c (Debian: apt-get install gcc)")
  }
  Fs.mkdirSync(buildDir, { recursive: true })
  process.stderr.write(`bench: compiling ${Path.relative(repoRoot, loadgenSource)}\n`)
  try {
    execFileSync("cc", ["-std=c11", "-O2", "-o", loadgenBinary, loadgenSource], { stdio: "inherit" })
  } catch {
    fail(`cc failed to compile ${loadgenSource}`)
  }
}

/** What `--quick` and `--write PATH` asked for (a relative path is resolved against the repository root). */
export interface RunArgs {
  readonly quick: boolean
  readonly write: string | undefined
}

/** Reads `[--quick] [--write PATH]`; `--help` prints `usage` and exits, anything else fails. */
export const parseRunArgs = (argv: ReadonlyArray<string>, usage: string): RunArgs => {
  let quick = false
  let write: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === "--") continue
    if (arg === "--quick") quick = true
    else if (arg === "--write") {
      const value = argv[++i]
      if (value === undefined) fail("--write takes a path, e.g. docs/benchmarks.md")
      else write = Path.resolve(repoRoot, value)
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(`usage: ${usage}\n`)
      process.exit(0)
    } else fail(`unknown argument ${arg}`)
  }
  return { quick, write }
}

export const cpuCount = Os.availableParallelism()
/** Whether processes can be pinned to CPUs (two or more, and `taskset`). */
export const canPin = cpuCount >= 2 && commandWorks("taskset", ["-V"])

// ---------------------------------------------------------------------------
// /proc sampling

export interface ProcSample {
  /** utime + stime of the whole process (every thread), in clock ticks. */
  readonly ticks: number
  readonly rssKb: number
  readonly at: number
}

export const readProc = (pid: number): ProcSample | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // fields after "(comm)": state is field 3, utime field 14, stime field 15
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)
    return {
      ticks: Number(fields[11]) + Number(fields[12]),
      rssKb: rss?.[1] !== undefined ? Number(rss[1]) : 0,
      at: performance.now()
    }
  } catch {
    return undefined
  }
}

/** CPU use between two samples, in % of one core (200 = two cores busy). */
export const cpuPercent = (from: ProcSample | undefined, to: ProcSample | undefined): number | undefined => {
  if (from === undefined || to === undefined || to.at <= from.at) return undefined
  return (((to.ticks - from.ticks) / clockTicks) * 100_000) / (to.at - from.at)
}

// ---------------------------------------------------------------------------
// servers under test

export interface BenchServerOptions {
  readonly script: string
  readonly env: Readonly<Record<string, string>>
  /** The line that says it listens; its first group is the port. */
  readonly ready: RegExp
  readonly label: string
  /** Where its output goes (under `logDir`). */
  readonly logFile: string
}

/** Starts a server on a free loopback port, its output into `logFile`. */
export const startBenchServer = async (options: BenchServerOptions): Promise<NodeProcess> => {
  Fs.mkdirSync(Path.dirname(options.logFile), { recursive: true })
  const port = await freePort()
  return startNodeProcess(
    options.script,
    { ...options.env, PORT: String(port), HOST: LOOPBACK },
    { cwd: repoRoot, readyWhen: options.ready, logFile: options.logFile, timeoutMs: 30_000, name: options.label }
  )
}

/**
 * Stops a server with SIGTERM and adds to `problems` what went wrong: it
 * exited by itself, it did not exit within 10 s, it logged errors or warnings.
 */
export const stopBenchServer = async (
  server: NodeProcess,
  options: Pick<BenchServerOptions, "label" | "logFile">,
  problems: Array<string>
): Promise<void> => {
  const exited = server.exitStatus()
  if (exited !== undefined) {
    problems.push(
      `${options.label} exited by itself during the run (code ${exited.code}, signal ${exited.signal}); log tail:\n${logTail(options.logFile)}`
    )
    return
  }
  if ((await server.stop({ graceMs: 10_000 })) === "killed") {
    problems.push(`${options.label} did not exit within 10 s of SIGTERM; killed`)
  }
  const bad = Fs.readFileSync(options.logFile, "utf8")
    .split("\n")
    .filter((line) => /error|warn|fatal|exception|leak|restarted/i.test(line))
  if (bad.length > 0) {
    problems.push(`${options.label} logged ${bad.length} error/warning line(s), first: ${bad[0]?.slice(0, 400)}`)
  }
}

// ---------------------------------------------------------------------------
// the load generator

/** One line of loadgen JSON. */
export type LoadgenResult = Readonly<Record<string, unknown>>

export interface LoadgenRun {
  readonly result: LoadgenResult
  readonly pid: number
}

export interface LoadgenOptions {
  /** Pins the load generator to these CPUs (taskset list, e.g. "1"); unpinned when absent. */
  readonly cpus?: string
  /** Sees each stderr line as it arrives ("phase measure", "phase end", …). */
  readonly onLine?: (line: string, pid: number) => void
}

/** Runs the load generator, killed after `budgetSeconds`; resolves with its JSON result. */
export const runLoadgen = (
  args: ReadonlyArray<string>,
  budgetSeconds: number,
  options: LoadgenOptions = {}
): Promise<LoadgenRun> =>
  new Promise((resolve, reject) => {
    const [command, argv] =
      options.cpus !== undefined && canPin
        ? ["taskset", ["-c", options.cpus, loadgenBinary, ...args]]
        : [loadgenBinary, [...args]]
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] })
    const pid = child.pid ?? 0
    let stdout = ""
    let stderr = ""
    let pending = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), budgetSeconds * 1000)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
      pending += chunk
      let newline = pending.indexOf("\n")
      while (newline >= 0) {
        options.onLine?.(pending.slice(0, newline), pid)
        pending = pending.slice(newline + 1)
        newline = pending.indexOf("\n")
      }
    })
    child.once("error", reject)
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      const line = stdout.trim().split("\n").pop() ?? ""
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        parsed = undefined
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        reject(
          new Error(
            `loadgen ${args.join(" ")} gave no result (code ${code}, signal ${signal}${signal === "SIGKILL" ? `, killed after ${budgetSeconds} s` : ""}):\n${stderr.trim()}`
          )
        )
        return
      }
      resolve({ result: parsed as LoadgenResult, pid })
    })
  })

export const num = (result: LoadgenResult, key: string): number => {
  const value = result[key]
  if (typeof value !== "number") throw new Error(`loadgen result has no number "${key}": ${JSON.stringify(result)}`)
  return value
}

/** Counters that must be zero on a healthy run. */
const healthKeys = [
  "conn_errors",
  "protocol_errors",
  "server_closes",
  "lost",
  "missing_at_end",
  "out_of_order",
  "bad_payload",
  "unanswered",
  "timeouts",
  "close_unanswered"
]

/** What was wrong with a run (an error, lost or reordered messages, …), or undefined for a healthy one. */
export const healthProblem = (args: ReadonlyArray<string>, result: LoadgenResult): string | undefined => {
  const bad = healthKeys.filter((key) => typeof result[key] === "number" && result[key] !== 0)
  const error = result.error
  if (typeof error === "string") return `loadgen ${args.join(" ")} failed: ${error}`
  if (bad.length === 0) return undefined
  const first = typeof result.first_error === "string" ? result.first_error : ""
  return `${bad.map((key) => `${key}=${String(result[key])}`).join(", ")}; first: ${first} (loadgen ${args.join(" ")})`
}

/** The value after `key` in a load generator command line. */
export const argValue = (args: ReadonlyArray<string>, key: string): string => args[args.indexOf(key) + 1] ?? "?"

/** How long a load generator command may take: its warm-up and measured seconds, plus a minute. */
export const budget = (args: ReadonlyArray<string>): number =>
  Number(argValue(args, "--seconds")) + Number(argValue(args, "--warmup")) + 60

// ---------------------------------------------------------------------------
// output

export const round = (value: number, decimals: number): number => Math.round(value * 10 ** decimals) / 10 ** decimals

export const mean = (values: ReadonlyArray<number>): number | undefined =>
  values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length

export const fmt = (value: number, decimals: number): string =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    : "n/a"

const width = (text: string): number => [...text].length

const pad = (text: string, to: number, right: boolean): string => {
  const fill = " ".repeat(Math.max(0, to - width(text)))
  return right ? fill + text : text + fill
}

const columnWidths = (lines: ReadonlyArray<ReadonlyArray<string>>, min: number): Array<number> =>
  (lines[0] ?? []).map((_, i) => Math.max(min, ...lines.map((line) => width(line[i] ?? ""))))

/** A Markdown table, padded the way the repository's formatter (Biome) prints it. */
export const markdownTable = (
  header: ReadonlyArray<string>,
  body: ReadonlyArray<ReadonlyArray<string>>,
  rightAligned: (column: number) => boolean
): Array<string> => {
  const lines = [header, ...body]
  const widths = columnWidths(lines, 3)
  const row = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => pad(c, widths[i] ?? 0, rightAligned(i))).join(" | ")} |`
  const rule = `| ${widths.map((w, i) => (rightAligned(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`
  return [row(header), rule, ...body.map(row)]
}

/** The same table for a terminal: no pipes, no bold. */
export const consoleTable = (
  header: ReadonlyArray<string>,
  body: ReadonlyArray<ReadonlyArray<string>>,
  rightAligned: (column: number) => boolean
): string => {
  const lines = [header, ...body.map((cells) => cells.map((c) => c.replaceAll("**", "")))]
  const widths = columnWidths(lines, 0)
  return lines.map((cells) => cells.map((c, i) => pad(c, widths[i] ?? 0, rightAligned(i))).join("  ")).join("\n")
}

/** The machine a run happened on, for the report. */
export const machine = (): Record<"cpus" | "cpu" | "memory" | "node" | "kernel" | "date", string> => {
  const cpuinfo = Fs.readFileSync("/proc/cpuinfo", "utf8")
  const meminfo = Fs.readFileSync("/proc/meminfo", "utf8")
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0)
  return {
    cpus: String(cpuCount),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memory: `${(memKb / 1024 / 1024).toFixed(1)} GiB`,
    node: process.version,
    kernel: `${Os.type()} ${Os.release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z")
  }
}

/**
 * Replaces the section that starts with `heading` (a "## " line) in the
 * Markdown file at `path` with `section`, keeping every other line; appends
 * it when the file has no such section.
 */
export const writeSection = (path: string, heading: string, section: string): void => {
  const current = Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : "# Benchmarks\n"
  const escaped = heading.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  const start = current.search(new RegExp(`^${escaped}[ \\t]*$`, "m"))
  let next: string
  if (start < 0) {
    next = `${current.trimEnd()}\n\n${section}`
  } else {
    const after = current.slice(start + 1)
    const end = after.search(/^## /m)
    const rest = end < 0 ? "" : after.slice(end)
    next = `${current.slice(0, start)}${section}${rest.length > 0 ? `\n${rest}` : ""}`
  }
  Fs.mkdirSync(Path.dirname(path), { recursive: true })
  Fs.writeFileSync(path, next.endsWith("\n") ? next : `${next}\n`)
}
