/**
 * Does the event loop stay responsive while CPU-bound jobs run? One run
 * starts the echo app (`apps/echo/src/main.ts`) three times, each fresh:
 *
 * - `baseline`: no job load (WORKERS=1, the pool idle);
 * - `inline`: WORKERS=0, the jobs run on the event loop;
 * - `worker`: WORKERS=1, the jobs run on one worker thread (nice 10, the default);
 * - `worker-nice0`: the same with WORKER_NICENESS=0 (the thread at the main thread's priority).
 *
 * Each time, `--echo-clients` clients on `/echo` each send one small binary
 * message every 1/`--rate` s (open loop: the schedule does not wait for the
 * echo, so a stalled server shows up as latency, not as fewer sends), and
 * every round trip is timed from its send to its echo; in `inline` and
 * `worker`, `--job-clients` clients on `/jobs` each keep one Hash job
 * (JOB_ROUNDS sha256 rounds, about 20 ms) in flight, sending the next as
 * soon as the digest comes back. After `--warmup` s, `--seconds` s are
 * measured: /echo p50/p99/p99.9/max, round trips, jobs completed/s, and the
 * CPU (utime + stime from /proc) of the server (all threads; its main
 * thread; its `switchboard-job` threads) and of this process, which is the
 * load generator and shares the machine's cores with the server.
 *
 *   node apps/bench/src/jobs.ts [--seconds 10] [--warmup 2] [--echo-clients 20] [--rate 50]
 *                               [--job-clients 4] [--job-rounds 20000] [--quiet-wait 120] [--retries 2]
 *                               [--json path] [--raw] [--quick]
 *
 * The machine is shared: before each case the script waits (up to
 * `--quiet-wait` s) until the rest of the machine uses less than a tenth of a
 * core, and every case reports what other processes used during its window
 * (/proc/stat's busy time less the server's and the load generator's); a
 * case where that exceeded 10 % of a core is run again (up to `--retries`
 * times; the least contended attempt is reported, every attempt is in the
 * JSON) and flagged as contended if no attempt was clean.
 *
 * It prints a Markdown table and writes every number as JSON
 * (`apps/bench/.build/jobs.json` by default; `--raw` adds every measured
 * round trip, as [ms into the window at the send, ms]). Everything is on 127.0.0.1,
 * every phase is bounded in time, and a watchdog ends the run if it hangs.
 * The exit code is 1 if anything went wrong (a wrong echo or digest, an
 * error reply, a connection error, a server that logged an error or needed
 * SIGKILL).
 */

import { hash as digestOf } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import WebSocket from "ws"
import { pollUntil, sleep } from "../../../test-support/poll.ts"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { clockTicks, machineBusyTicks } from "./proc.ts"

const benchDir = Path.resolve(import.meta.dirname, "..")
const repoRoot = Path.resolve(benchDir, "../..")
const logDir = Path.join(benchDir, ".build", "logs")
const echoMain = Path.join(repoRoot, "apps", "echo", "src", "main.ts")

// ---------------------------------------------------------------------------
// options

interface Options {
  readonly seconds: number
  readonly warmup: number
  readonly echoClients: number
  readonly rate: number
  readonly jobClients: number
  readonly jobRounds: number
  readonly json: string
  readonly raw: boolean
  /** How long to wait, before each case, for the machine to be quiet (s). */
  readonly quietWait: number
  /** How many times a contended case is run again. */
  readonly retries: number
}

const fail = (message: string): never => {
  process.stderr.write(`jobs: ${message}\n`)
  process.exit(2)
}

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  const values: Record<string, number> = {
    seconds: 10,
    warmup: 2,
    "echo-clients": 20,
    rate: 50,
    "job-clients": 4,
    "job-rounds": 20_000,
    "quiet-wait": 120,
    retries: 2
  }
  const limits: Record<string, readonly [number, number]> = {
    seconds: [1, 600],
    warmup: [0, 60],
    "echo-clients": [1, 60],
    rate: [1, 1000],
    "job-clients": [1, 16],
    "job-rounds": [1, 10_000_000],
    "quiet-wait": [0, 600],
    retries: [0, 5]
  }
  let json = Path.join(benchDir, ".build", "jobs.json")
  let raw = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? ""
    if (arg === "--") continue
    if (arg === "--quick") {
      values.seconds = 3
      values.warmup = 1
    } else if (arg === "--raw") raw = true
    else if (arg === "--json") json = Path.resolve(repoRoot, argv[++i] ?? fail("--json takes a path"))
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        "usage: node apps/bench/src/jobs.ts [--seconds 10] [--warmup 2] [--echo-clients 20] [--rate 50] [--job-clients 4] [--job-rounds 20000] [--quiet-wait 120] [--retries 2] [--json path] [--raw] [--quick]\n"
      )
      process.exit(0)
    } else if (arg.startsWith("--") && arg.slice(2) in values) {
      const key = arg.slice(2)
      const given = argv[++i]
      const value = Number(given)
      const [min, max] = limits[key] ?? [0, 0]
      if (given === undefined || !Number.isFinite(value) || value < min || value > max) {
        fail(`${arg} takes a number in ${min}..${max}, got ${given ?? "nothing"}`)
      }
      values[key] = value
    } else fail(`unknown argument ${arg}`)
  }
  return {
    seconds: values.seconds!,
    warmup: values.warmup!,
    echoClients: Math.round(values["echo-clients"]!),
    rate: values.rate!,
    jobClients: Math.round(values["job-clients"]!),
    jobRounds: Math.round(values["job-rounds"]!),
    json,
    raw,
    quietWait: values["quiet-wait"]!,
    retries: Math.round(values.retries!)
  }
}

// ---------------------------------------------------------------------------
// /proc

/** utime + stime of a /proc stat file, in ticks. */
const statTicks = (path: string): { readonly comm: string; readonly ticks: number } | undefined => {
  try {
    const stat = Fs.readFileSync(path, "utf8")
    const close = stat.lastIndexOf(")")
    const comm = stat.slice(stat.indexOf("(") + 1, close)
    // after "(comm) ": state is field 3, utime field 14, stime field 15
    const fields = stat.slice(close + 2).split(" ")
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return undefined
  }
}

interface CpuSample {
  readonly at: number
  /** The whole process: every thread, live or exited. */
  readonly total: number
  readonly main: number
  /** Per live thread id: its comm and ticks. */
  readonly threads: ReadonlyMap<string, { readonly comm: string; readonly ticks: number }>
}

const sampleServer = (pid: number): CpuSample | undefined => {
  const total = statTicks(`/proc/${pid}/stat`)
  if (total === undefined) return undefined
  const threads = new Map<string, { comm: string; ticks: number }>()
  try {
    for (const tid of Fs.readdirSync(`/proc/${pid}/task`)) {
      const each = statTicks(`/proc/${pid}/task/${tid}/stat`)
      if (each !== undefined) threads.set(tid, each)
    }
  } catch {
    // the process is gone: the totals say so
  }
  return { at: performance.now(), total: total.ticks, main: threads.get(String(pid))?.ticks ?? 0, threads }
}

interface ServerCpu {
  /** % of one core over the window, all threads. */
  readonly total: number
  readonly main: number
  /** The pool's worker threads (comm `switchboard-job`). */
  readonly jobThreads: number
  /** Everything else: V8's GC and compiler threads, libuv. */
  readonly other: number
}

const pct = (ticks: number, ms: number): number => ((ticks / clockTicks) * 100_000) / ms

const serverCpu = (from: CpuSample | undefined, to: CpuSample | undefined): ServerCpu | undefined => {
  if (from === undefined || to === undefined || to.at <= from.at) return undefined
  const ms = to.at - from.at
  let job = 0
  for (const [tid, thread] of to.threads) {
    if (thread.comm !== "switchboard-job") continue
    // a thread born in the window counts from zero
    job += thread.ticks - (from.threads.get(tid)?.ticks ?? 0)
  }
  const total = pct(to.total - from.total, ms)
  const main = pct(to.main - from.main, ms)
  const jobThreads = pct(job, ms)
  return { total, main, jobThreads, other: Math.max(0, total - main - jobThreads) }
}

/** The whole machine's busy ticks (every CPU, every process) from /proc/stat. */
// ---------------------------------------------------------------------------
// statistics

const quantile = (sorted: Float64Array, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[index]!
}

interface Latency {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

const summarize = (samples: ReadonlyArray<number>): Latency => {
  const sorted = Float64Array.from(samples).sort()
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!
  }
}

// ---------------------------------------------------------------------------
// the clients

const hash = (data: Uint8Array, rounds: number): string => {
  let digest: Uint8Array = data
  for (let i = 0; i < rounds; i++) digest = digestOf("sha256", digest, "buffer")
  return Buffer.from(digest).toString("hex")
}

interface Run {
  measuring: boolean
  sending: boolean
  measureStart: number
  measureEnd: number
  readonly echoLatencies: Array<number>
  readonly jobLatencies: Array<number>
  /** With --raw: [ms since the window opened at the send, ms round trip] of every measured echo and job. */
  readonly echoRaw: Array<readonly [number, number]> | undefined
  readonly jobRaw: Array<readonly [number, number]> | undefined
  echoSent: number
  echoOutstanding: number
  jobsDone: number
  jobsDoneAll: number
  jobsOutstanding: number
  readonly errors: Array<string>
  /** One job's payload and digest, checked against a local hash after the run. */
  check: { readonly data: Uint8Array; readonly digest: string } | undefined
}

const round3 = (value: number): number => Math.round(value * 1000) / 1000

const problem = (run: Run, message: string): void => {
  if (run.errors.length < 20) run.errors.push(message)
}

const connect = (port: number, path: string, run: Run): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false })
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`${path}: no upgrade within 10 s`))
    }, 10_000)
    ws.once("open", () => {
      clearTimeout(timer)
      resolve(ws)
    })
    ws.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    ws.on("close", (code) => {
      if (run.sending) problem(run, `${path}: the server closed a connection during the run (code ${code})`)
    })
  })

/** An echo client: one 16-byte binary message every `period` ms, each echo checked and timed. */
const echoClient = (ws: WebSocket, index: number, clients: number, period: number, run: Run) => {
  const pending: Array<{ readonly seq: number; readonly at: number }> = []
  let seq = 0
  ws.on("error", (error) => problem(run, `/echo client ${index}: ${error.message}`))
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    const now = performance.now()
    const sent = pending.shift()
    run.echoOutstanding--
    if (!isBinary || data.length !== 16 || sent === undefined) {
      problem(run, `/echo client ${index}: an unexpected message (${data.length} B, binary ${isBinary})`)
      return
    }
    if (data.readUInt32LE(0) !== index || data.readUInt32LE(4) !== sent.seq) {
      problem(run, `/echo client ${index}: echo of ${data.readUInt32LE(4)} where ${sent.seq} was expected`)
      return
    }
    if (sent.at >= run.measureStart && sent.at < run.measureEnd) {
      run.echoLatencies.push(now - sent.at)
      run.echoRaw?.push([round3(sent.at - run.measureStart), round3(now - sent.at)])
    }
  })
  const send = () => {
    if (!run.sending || ws.readyState !== WebSocket.OPEN) return
    const message = Buffer.alloc(16)
    message.writeUInt32LE(index, 0)
    message.writeUInt32LE(seq, 4)
    const at = performance.now()
    pending.push({ seq, at })
    seq++
    run.echoOutstanding++
    if (run.measuring) run.echoSent++
    ws.send(message)
  }
  let interval: ReturnType<typeof setInterval> | undefined
  // the clients start spread over one period, so that their sends do not come in bursts
  const start = setTimeout(
    () => {
      send()
      interval = setInterval(send, period)
    },
    (index * period) / clients
  )
  return () => {
    clearTimeout(start)
    if (interval !== undefined) clearInterval(interval)
  }
}

/** A job client: one Hash job in flight, the next sent as soon as the digest arrives. */
const jobClient = (ws: WebSocket, index: number, run: Run) => {
  let sentAt = 0
  let payload: Uint8Array = new Uint8Array(0)
  ws.on("error", (error) => problem(run, `/jobs client ${index}: ${error.message}`))
  const send = () => {
    if (!run.sending || ws.readyState !== WebSocket.OPEN) return
    payload = new Uint8Array(32)
    crypto.getRandomValues(payload)
    sentAt = performance.now()
    run.jobsOutstanding++
    ws.send(payload)
  }
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    const now = performance.now()
    run.jobsOutstanding--
    const text = data.toString("utf8")
    if (isBinary || !/^[0-9a-f]{64}$/.test(text)) {
      problem(run, `/jobs client ${index}: not a digest: ${text.slice(0, 200)}`)
    } else {
      run.jobsDoneAll++
      if (run.check === undefined) run.check = { data: payload, digest: text }
      if (now >= run.measureStart && now < run.measureEnd) {
        run.jobsDone++
        run.jobLatencies.push(now - sentAt)
        run.jobRaw?.push([round3(sentAt - run.measureStart), round3(now - sentAt)])
      }
    }
    send()
  })
  send()
}

// ---------------------------------------------------------------------------
// one case

interface Case {
  readonly name: "baseline" | "inline" | "worker" | "worker-nice0"
  readonly workers: number
  readonly niceness?: number
  readonly jobs: boolean
  readonly label: string
}

const cases: ReadonlyArray<Case> = [
  { name: "baseline", workers: 1, jobs: false, label: "no jobs (WORKERS=1, pool idle)" },
  { name: "inline", workers: 0, jobs: true, label: "jobs inline (WORKERS=0)" },
  { name: "worker", workers: 1, jobs: true, label: "jobs on 1 worker (WORKERS=1)" },
  { name: "worker-nice0", workers: 1, niceness: 0, jobs: true, label: "jobs on 1 worker, WORKER_NICENESS=0" }
]

interface CaseResult {
  readonly case: Case["name"]
  readonly label: string
  readonly workers: number
  readonly jobClients: number
  readonly seconds: number
  readonly echo: Latency & { readonly sent: number; readonly perSecond: number }
  readonly jobs: Latency & { readonly completed: number; readonly perSecond: number }
  readonly serverCpu: ServerCpu | undefined
  /** This process (the load generator): % of one core over the window. */
  readonly loadgenCpu: number
  /**
   * Every other process on the machine over the window (% of one core):
   * /proc/stat's busy time less the server's and the load generator's. Near
   * 0 on a quiet machine; anything else competed for the same cores.
   */
  readonly otherCpu: number
  /** This process's event-loop delay over the window (ms, beyond the 5 ms sampling interval): how late it may have read an echo. */
  readonly loadgenLoopDelay: { readonly p99: number; readonly max: number }
  readonly unansweredEchoes: number
  readonly unansweredJobs: number
  readonly digestChecked: boolean
  readonly serverStop: string
  readonly errors: ReadonlyArray<string>
  readonly echoRaw?: ReadonlyArray<readonly [number, number]>
  readonly jobRaw?: ReadonlyArray<readonly [number, number]>
}

const serverLogProblems = (path: string): Array<string> => {
  try {
    return Fs.readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => /error|warn|fatal|exception|leak/i.test(line))
      .slice(0, 5)
  } catch {
    return ["no server log"]
  }
}

/** The load generator's event-loop delay sampling interval, ms. */
const loopResolution = 5

/** Waits until the machine (every process) is busy less than `limit` % of one core over a second, for up to `seconds`. */
const waitForQuiet = async (seconds: number, limit = 10): Promise<number> => {
  const deadline = performance.now() + seconds * 1000
  for (;;) {
    const before = machineBusyTicks()
    const at = performance.now()
    await sleep(1_000)
    const busy = pct(machineBusyTicks() - before, performance.now() - at)
    if (busy < limit || performance.now() >= deadline) return busy
  }
}

const runCase = async (options: Options, c: Case): Promise<CaseResult> => {
  Fs.mkdirSync(logDir, { recursive: true })
  const logPath = Path.join(logDir, `jobs-${c.name}.log`)
  const server: NodeProcess = await startNodeProcess(
    echoMain,
    {
      WORKERS: String(c.workers),
      JOB_ROUNDS: String(options.jobRounds),
      ...(c.niceness === undefined ? {} : { WORKER_NICENESS: String(c.niceness) })
    },
    { cwd: repoRoot, logFile: logPath, timeoutMs: 20_000, name: `echo app (${c.name})` }
  )
  const run: Run = {
    measuring: false,
    sending: true,
    measureStart: Number.POSITIVE_INFINITY,
    measureEnd: Number.POSITIVE_INFINITY,
    echoLatencies: [],
    jobLatencies: [],
    echoRaw: options.raw ? [] : undefined,
    jobRaw: options.raw ? [] : undefined,
    echoSent: 0,
    echoOutstanding: 0,
    jobsDone: 0,
    jobsDoneAll: 0,
    jobsOutstanding: 0,
    errors: [],
    check: undefined
  }
  const sockets: Array<WebSocket> = []
  const stops: Array<() => void> = []
  let serverStop = "not stopped"
  let result: Omit<CaseResult, "serverStop" | "errors"> | undefined
  try {
    const period = 1000 / options.rate
    const echoSockets = await Promise.all(
      Array.from({ length: options.echoClients }, () => connect(server.port, "/echo", run))
    )
    const jobSockets = c.jobs
      ? await Promise.all(Array.from({ length: options.jobClients }, () => connect(server.port, "/jobs", run)))
      : []
    sockets.push(...echoSockets, ...jobSockets)
    jobSockets.forEach((ws, index) => {
      jobClient(ws, index, run)
    })
    echoSockets.forEach((ws, index) => {
      stops.push(echoClient(ws, index, options.echoClients, period, run))
    })
    await sleep(options.warmup * 1000)

    const loop = monitorEventLoopDelay({ resolution: loopResolution })
    const cpuBefore = process.cpuUsage()
    const serverBefore = sampleServer(server.pid)
    const machineBefore = machineBusyTicks()
    run.measureStart = performance.now()
    run.measuring = true
    loop.enable()
    await sleep(options.seconds * 1000)
    run.measureEnd = performance.now()
    run.measuring = false
    const serverAfter = sampleServer(server.pid)
    const machineAfter = machineBusyTicks()
    const cpuAfter = process.cpuUsage(cpuBefore)
    loop.disable()
    const window = run.measureEnd - run.measureStart

    // stop sending and drain what is in flight (bounded)
    run.sending = false
    for (const stop of stops) stop()
    await pollUntil(() => run.echoOutstanding <= 0 && run.jobsOutstanding <= 0, 5_000, 10)

    let digestChecked = false
    if (c.jobs) {
      if (run.check === undefined) problem(run, "no job completed")
      else if (hash(run.check.data, options.jobRounds) !== run.check.digest) {
        problem(run, "a job's digest does not match the local sha256")
      } else digestChecked = true
    }
    const echo = summarize(run.echoLatencies)
    const jobs = summarize(run.jobLatencies)
    const cpu = serverCpu(serverBefore, serverAfter)
    const loadgenCpu = ((cpuAfter.user + cpuAfter.system) / 1000 / window) * 100
    result = {
      case: c.name,
      label: c.label,
      workers: c.workers,
      jobClients: c.jobs ? options.jobClients : 0,
      seconds: window / 1000,
      echo: { ...echo, sent: run.echoSent, perSecond: (echo.count * 1000) / window },
      jobs: { ...jobs, completed: run.jobsDone, perSecond: (run.jobsDone * 1000) / window },
      serverCpu: cpu,
      loadgenCpu,
      otherCpu: Math.max(0, pct(machineAfter - machineBefore, window) - (cpu?.total ?? 0) - loadgenCpu),
      // the histogram holds whole sampling intervals: the delay is what exceeds the interval
      loadgenLoopDelay: {
        p99: Math.max(0, loop.percentile(99) / 1e6 - loopResolution),
        max: Math.max(0, loop.max / 1e6 - loopResolution)
      },
      unansweredEchoes: run.echoOutstanding,
      unansweredJobs: run.jobsOutstanding,
      digestChecked
    }
    if (run.echoOutstanding > 0) problem(run, `${run.echoOutstanding} echo(es) unanswered 5 s after the run`)
    if (run.jobsOutstanding > 0) problem(run, `${run.jobsOutstanding} job(s) unanswered 5 s after the run`)
  } catch (error) {
    problem(run, error instanceof Error ? error.message : String(error))
  } finally {
    run.sending = false
    for (const stop of stops) stop()
    for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.close(1000)
    await pollUntil(() => sockets.every((ws) => ws.readyState === WebSocket.CLOSED), 3_000, 10)
    for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
    if (server.exitStatus() !== undefined) {
      const exit = server.exitStatus()
      problem(run, `the server exited by itself (code ${exit?.code}, signal ${exit?.signal})`)
      serverStop = "exited"
    } else {
      serverStop = await server.stop({ graceMs: 8_000 })
      if (serverStop === "killed") problem(run, "the server did not exit within 8 s of SIGTERM; killed")
    }
    for (const line of serverLogProblems(logPath)) problem(run, `server log: ${line.slice(0, 300)}`)
  }
  if (result === undefined) {
    return fail(`${c.name}: the run failed: ${run.errors.join("; ")}`)
  }
  return {
    ...result,
    serverStop,
    errors: run.errors,
    ...(run.echoRaw ? { echoRaw: run.echoRaw } : {}),
    ...(run.jobRaw ? { jobRaw: run.jobRaw } : {})
  }
}

// ---------------------------------------------------------------------------
// output

const fmt = (value: number | undefined, decimals: number): string =>
  value === undefined || !Number.isFinite(value)
    ? "n/a"
    : value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })

const header = [
  "Case",
  "/echo p50 (ms)",
  "p99 (ms)",
  "p99.9 (ms)",
  "max (ms)",
  "p99 / no-job p99",
  "echoes",
  "jobs/s",
  "job p50 / p99 (ms)",
  "server CPU % (main / job threads / other)",
  "loadgen CPU %",
  "other processes CPU %",
  "loadgen loop delay p99 / max (ms)"
]

const rowsOf = (results: ReadonlyArray<CaseResult>): Array<Array<string>> => {
  const base = results.find((r) => r.case === "baseline")?.echo.p99
  return results.map((r) => [
    r.label,
    fmt(r.echo.p50, 2),
    fmt(r.echo.p99, 2),
    fmt(r.echo.p999, 2),
    fmt(r.echo.max, 2),
    r.case === "baseline" || base === undefined ? "" : `${fmt(r.echo.p99 / base, 2)}×`,
    fmt(r.echo.count, 0),
    r.jobClients === 0 ? "" : fmt(r.jobs.perSecond, 1),
    r.jobClients === 0 ? "" : `${fmt(r.jobs.p50, 1)} / ${fmt(r.jobs.p99, 1)}`,
    r.serverCpu === undefined
      ? "n/a"
      : `${fmt(r.serverCpu.total, 0)} (${fmt(r.serverCpu.main, 0)} / ${fmt(r.serverCpu.jobThreads, 0)} / ${fmt(r.serverCpu.other, 0)})`,
    fmt(r.loadgenCpu, 0),
    fmt(r.otherCpu, 0),
    `${fmt(r.loadgenLoopDelay.p99, 1)} / ${fmt(r.loadgenLoopDelay.max, 1)}`
  ])
}

const width = (text: string): number => [...text].length
const pad = (text: string, to: number, right: boolean): string => {
  const fill = " ".repeat(Math.max(0, to - width(text)))
  return right ? fill + text : text + fill
}

const table = (results: ReadonlyArray<CaseResult>): string => {
  const lines = [header, ...rowsOf(results)]
  const widths = header.map((_, i) => Math.max(3, ...lines.map((line) => width(line[i] ?? ""))))
  const right = (i: number) => i > 0
  const row = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => pad(cell, widths[i] ?? 0, right(i))).join(" | ")} |`
  const rule = `| ${widths.map((w, i) => (right(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`
  return [row(header), rule, ...lines.slice(1).map(row)].join("\n")
}

const machine = () => {
  const cpuinfo = Fs.readFileSync("/proc/cpuinfo", "utf8")
  return {
    cpus: Os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    node: process.version,
    kernel: `${Os.type()} ${Os.release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z")
  }
}

// ---------------------------------------------------------------------------

const main = async (): Promise<void> => {
  const options = parseArgs(process.argv.slice(2))
  if (Number(process.versions.node.split(".")[0]) < 24) fail(`Node ${process.version}: run with Node 24`)
  // a watchdog: whatever happens, the run ends (the children are killed on exit)
  const budget =
    (options.warmup + options.seconds + options.quietWait + 60) * cases.length * (options.retries + 1) * 1000
  setTimeout(() => {
    process.stderr.write(`jobs: still running after ${budget / 1000} s; giving up\n`)
    process.exit(1)
  }, budget).unref()
  const info = machine()
  const results: Array<CaseResult> = []
  const contended: Array<string> = []
  /** Every attempt of a case, the discarded (contended) ones included. */
  const attempts: Array<CaseResult> = []
  for (const c of cases) {
    let result: CaseResult | undefined
    // a case that other processes competed with is run again (the choice depends on them, never on its numbers)
    for (let attempt = 0; attempt <= options.retries; attempt++) {
      const busy = await waitForQuiet(options.quietWait)
      if (busy >= 10) {
        process.stderr.write(`jobs: the machine is still busy (${Math.round(busy)} % of a core); running anyway\n`)
      }
      process.stderr.write(`jobs: ${c.label}: ${options.warmup} s warm-up, ${options.seconds} s measured\n`)
      const each = await runCase(options, c)
      attempts.push(each)
      if (result === undefined || each.otherCpu < result.otherCpu) result = each
      if (each.otherCpu <= 10) break
      process.stderr.write(`jobs: other processes used ${Math.round(each.otherCpu)} % of a core meanwhile\n`)
    }
    if (result === undefined) return fail(`${c.name}: no result`)
    if (result.otherCpu > 10) contended.push(`${c.name} (${Math.round(result.otherCpu)} %)`)
    results.push(result)
  }
  const baseline = results.find((r) => r.case === "baseline")
  const worker = results.find((r) => r.case === "worker")
  const inline = results.find((r) => r.case === "inline")
  const nice0 = results.find((r) => r.case === "worker-nice0")
  const ratio = baseline && worker ? worker.echo.p99 / baseline.echo.p99 : Number.NaN
  const met = ratio <= 2
  const errors = results.flatMap((r) => r.errors.map((e) => `${r.case}: ${e}`))
  process.stdout.write(`\n${table(results)}\n\n`)
  process.stdout.write(
    `Load: ${options.echoClients} /echo clients × ${options.rate} msgs/s (16 B binary), ${options.jobClients} /jobs clients × 1 job in flight (JOB_ROUNDS=${options.jobRounds}); ${options.warmup} s warm-up, ${options.seconds} s measured; server and load generator not pinned.\n`
  )
  process.stdout.write(
    `${info.cpus} × ${info.cpu}, ${info.kernel}, Node ${info.node}, ${info.date}\n` +
      `Target: /echo p99 with a worker ≤ 2× the no-job p99: ${fmt(ratio, 2)}× — ${met ? "met" : "MISSED"}` +
      (inline && baseline ? ` (inline: ${fmt(inline.echo.p99 / baseline.echo.p99, 1)}×` : "") +
      (nice0 && baseline ? `, worker at nice 0: ${fmt(nice0.echo.p99 / baseline.echo.p99, 2)}×` : "") +
      (inline && baseline ? ")" : "") +
      "\n"
  )
  if (contended.length > 0) {
    process.stdout.write(
      `CONTENDED: other processes used more than 10 % of a core during ${contended.join(", ")}: those numbers are not clean.\n`
    )
  }
  if (errors.length > 0) process.stdout.write(`\nProblems:\n${errors.map((e) => `- ${e}`).join("\n")}\n`)
  else process.stdout.write("No errors, wrong echoes or digests, unanswered messages or server log errors.\n")
  Fs.mkdirSync(Path.dirname(options.json), { recursive: true })
  Fs.writeFileSync(
    options.json,
    `${JSON.stringify({ machine: info, options: { ...options, json: undefined }, results, target: { ratio, met }, contended, errors, attempts }, null, 2)}\n`
  )
  process.stdout.write(`wrote ${Path.relative(process.cwd(), options.json) || options.json}\n`)
  process.exitCode = errors.length > 0 ? 1 : 0
}

await main()
process.exit()
