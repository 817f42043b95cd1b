/**
 * A Node script in a child process, for the tests and bench scripts that run
 * a real server (an app's `main.ts`, a test fixture, the bench server):
 * `startNodeProcess` starts it, waits until it is ready, and hands back its
 * port, its output and a `stop` that always ends it. A child never outlives
 * what started it: it is killed when it does not become ready, on `stop`,
 * and, as a last resort, when this process exits.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import { freePort, LOOPBACK, waitForPort } from "./net.ts"
import { pollUntil, within } from "./poll.ts"

/** How a child process ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface StartOptions {
  /** The working directory; the script's path may be relative to it. Default: this process's. */
  readonly cwd?: string
  /**
   * When the process is ready. `"listening"` (the default): a free port of
   * 127.0.0.1 is picked and passed as `PORT` and `HOST`, and the process is
   * ready once it accepts a connection there. A RegExp: the process picks
   * its own port and is ready once its output matches; the first group is
   * the port (`/port (\d+)/`).
   */
  readonly readyWhen?: "listening" | RegExp
  /** How long it may take to be ready. Default 15 s. */
  readonly timeoutMs?: number
  /** Node's own flags, before the script (`--inspect=127.0.0.1:0`). */
  readonly nodeArgs?: ReadonlyArray<string>
  /**
   * A command that runs node for it (`["taskset", "-c", "0"]`, `fdLimit(256)`).
   * It must exec node, so that the child's pid is node's.
   */
  readonly prefix?: ReadonlyArray<string>
  /**
   * Where the output (stdout and stderr) goes: kept in memory by default; a
   * path: written straight to that file (truncated first), which `output()`
   * reads. A file costs this process nothing while the child runs.
   */
  readonly logFile?: string
  /** With the output in memory, keep only its last this many characters. */
  readonly outputTail?: number
  /** What error messages call the process. Default: the script. */
  readonly name?: string
}

export interface StopOptions {
  /** The first signal. Default `SIGTERM`. */
  readonly signal?: NodeJS.Signals
  /** How long the process may take to exit before it gets SIGKILL. Default 8 s. */
  readonly graceMs?: number
}

export interface NodeProcess {
  readonly pid: number
  readonly port: number
  /** Its output so far, stdout and stderr interleaved. */
  readonly output: () => string
  /** How it ended, once it has. */
  readonly exitStatus: () => Exit | undefined
  readonly exited: Promise<Exit>
  /** Sends a signal (SIGKILL by default) and does not wait: for a callback that cannot. */
  readonly kill: (signal?: NodeJS.Signals) => void
  /**
   * Ends it: the signal, then SIGKILL if it has not exited within the grace
   * period. Says how it ended: `"exited"` (before `stop`), `"stopped"` (by
   * the signal) or `"killed"` (SIGKILL was needed).
   */
  readonly stop: (options?: StopOptions) => Promise<"exited" | "stopped" | "killed">
}

/** A `prefix` that runs node with at most `n` open file descriptors (`ulimit -n`, through bash). */
export const fdLimit = (n: number): ReadonlyArray<string> => {
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`fdLimit: ${n} is not a positive integer`)
  return ["bash", "-c", `ulimit -n ${n} && exec "$0" "$@"`]
}

// the children still running, killed if this process exits without stopping them
const running = new Set<ChildProcess>()
let guarding = false
const guard = (child: ChildProcess) => {
  running.add(child)
  if (guarding) return
  guarding = true
  process.once("exit", () => {
    for (const each of running) each.kill("SIGKILL")
  })
}

const readLog = (path: string): string => {
  try {
    return Fs.readFileSync(path, "utf8")
  } catch {
    return ""
  }
}

/**
 * Runs `node script` with `env` added to this process's environment and
 * resolves once it is ready (see `readyWhen`). It rejects, with the output
 * in the message, if the process exits first or is not ready in time (it
 * is killed then).
 */
export const startNodeProcess = async (
  script: string,
  env: Readonly<Record<string, string>> = {},
  options: StartOptions = {}
): Promise<NodeProcess> => {
  const name = options.name ?? script
  const readyWhen = options.readyWhen ?? "listening"
  const timeoutMs = options.timeoutMs ?? 15_000
  const listenPort = readyWhen === "listening" ? await freePort() : undefined
  const [command, ...args] = [...(options.prefix ?? []), process.execPath, ...(options.nodeArgs ?? []), script]
  const logFd = options.logFile === undefined ? undefined : Fs.openSync(options.logFile, "w")
  let child: ChildProcess
  try {
    child = spawn(command!, args, {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      env: {
        ...process.env,
        ...env,
        ...(listenPort === undefined ? {} : { PORT: String(listenPort), HOST: LOOPBACK })
      },
      stdio: logFd === undefined ? ["ignore", "pipe", "pipe"] : ["ignore", logFd, logFd]
    })
  } finally {
    // the child holds its own copy
    if (logFd !== undefined) Fs.closeSync(logFd)
  }

  let kept = ""
  let spawnError = ""
  const record = (chunk: string) => {
    kept += chunk
    if (options.outputTail !== undefined && kept.length > options.outputTail) kept = kept.slice(-options.outputTail)
  }
  child.stdout?.setEncoding("utf8").on("data", record)
  child.stderr?.setEncoding("utf8").on("data", record)
  const logFile = options.logFile
  const output = () => (logFile === undefined ? kept : readLog(logFile)) + spawnError

  let status: Exit | undefined
  const exited = new Promise<Exit>((resolve) => {
    const end = (exit: Exit) => {
      if (status !== undefined) return
      status = exit
      running.delete(child)
      resolve(exit)
    }
    child.once("exit", (code, signal) => end({ code, signal }))
    child.on("error", (error) => {
      spawnError += `\n${error.message}`
      // not spawned at all: there will be no "exit"
      if (child.pid === undefined) end({ code: null, signal: null })
    })
  })
  if (child.pid !== undefined && status === undefined) guard(child)

  const stop = async ({ signal = "SIGTERM", graceMs = 8_000 }: StopOptions = {}) => {
    if (status !== undefined) return "exited" as const
    child.kill(signal)
    if (await within(exited, graceMs)) return "stopped" as const
    child.kill("SIGKILL")
    await within(exited, 5_000)
    return "killed" as const
  }
  const notReady = async (why: string): Promise<never> => {
    const exit = status
    await stop({ signal: "SIGKILL" })
    const how = exit === undefined ? why : `exited before it was ready (code ${exit.code}, signal ${exit.signal})`
    throw new Error(`${name} ${how}:\n${output()}`)
  }

  let port: number
  if (listenPort !== undefined) {
    const listening = await waitForPort(listenPort, {
      timeoutMs,
      intervalMs: 50,
      giveUp: () => status !== undefined
    })
    if (!listening)
      return notReady(`did not accept connections on ${LOOPBACK}:${listenPort} within ${timeoutMs / 1000} s`)
    port = listenPort
  } else {
    const pattern = readyWhen as RegExp
    let match: RegExpExecArray | null = null
    const matched = await pollUntil(() => status !== undefined || (match = pattern.exec(output())) !== null, timeoutMs)
    if (!matched || status !== undefined) return notReady(`did not print ${pattern} within ${timeoutMs / 1000} s`)
    port = Number((match as RegExpExecArray | null)?.[1])
    if (!Number.isInteger(port) || port <= 0) return notReady(`printed no port in the first group of ${pattern}`)
  }

  return {
    pid: child.pid!,
    port,
    output,
    exitStatus: () => status,
    exited,
    kill: (signal = "SIGKILL") => void child.kill(signal),
    stop
  }
}

/** True when `command args` runs and exits 0 (for optional tools such as `taskset`). */
export const commandWorks = (command: string, args: ReadonlyArray<string>): boolean => {
  try {
    execFileSync(command, args, { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** The last `lines` lines of a log file, or "(no log)". */
export const logTail = (path: string, lines = 20): string => {
  try {
    return Fs.readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}
