/**
 * What the worker pool costs per job, against a bare `worker_threads`
 * round trip, in the same run:
 *
 * - bare: a worker that posts every message back (`[id, payload]`, the
 *   least a caller with several jobs in flight needs), with 1 and with 64
 *   messages in flight;
 * - pool: `NodeWorkerPool.layer` with `size: 1` running a trivial job (the
 *   payload, a 16-character string, is the result) through
 *   `WorkerPool.run`, with 1 and 64 in flight (`Effect.forEach`, concurrency
 *   64), with the default 30 s job timeout and with `timeout: false`;
 * - inline: the same jobs with `size: 0` (on the event loop), for reference;
 * - harness: the same `Effect.forEach` loops over `Effect.succeed`, to show
 *   what the calling side alone costs.
 *
 * Each measurement runs `--warmup` jobs, then `--jobs` timed jobs, and the
 * whole set is repeated `--reps` times, interleaved (bare, pool, …, bare,
 * pool, …) so that drift on a shared machine hits every variant alike; the
 * table gives the median µs/job and every repetition's value.
 *
 *   node apps/bench/src/poolOverhead.ts [--jobs 20000] [--warmup 2000] [--reps 3] [--only key,…]
 *                                       [--quiet-wait 120] [--json path]
 *
 * The machine may be shared: before each repetition it waits (up to
 * `--quiet-wait` s) until the rest of the machine uses less than a tenth of
 * a core, and it reports what other processes used while it measured.
 *
 * Besides the time, it reads the CPU time each measurement used: the whole
 * process (`process.cpuUsage`: the main thread, the pool's worker, V8's
 * threads) and the main thread alone (/proc/self/task/<pid>/stat, in clock
 * ticks, so coarse), per job. `--only` runs some variants (keys: bare-1,
 * bare-64, pool-1, pool-64, pool-1-notimeout, pool-64-notimeout, inline-1,
 * inline-64, harness-1, harness-64), for a `--cpu-prof` run.
 *
 * This module is also its own worker entry: in a worker thread started with
 * `workerData.bare` it echoes messages, in any other (the pool's) it calls
 * `NodeWorkerPool.runWorker`.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { Job, WorkerPool } from "@switchboard/core/jobs"
import { NodeWorkerPool } from "@switchboard/node/jobs"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { clockTicks, machineBusyTicks } from "./proc.ts"

const Echo = Job.make("Echo", { payload: Schema.String, success: Schema.String })
const Handlers = Job.handlers([Echo], { Echo: (text) => Effect.succeed(text) })
const payload = "0123456789abcdef"

// ---------------------------------------------------------------------------
// the worker side

const isBareWorker = (data: unknown): boolean =>
  typeof data === "object" && data !== null && "bare" in data && data.bare === true

const serveBare = (): void => {
  const port = parentPort!
  port.on("message", (message: unknown) => port.postMessage(message))
}

// ---------------------------------------------------------------------------
// the main side

interface Options {
  readonly jobs: number
  readonly warmup: number
  readonly reps: number
  readonly json: string
  /** Only these variants (keys), e.g. for a profile. */
  readonly only: ReadonlyArray<string> | undefined
  /** How long to wait, before each repetition, for the machine to be quiet (s). */
  readonly quietWait: number
}

const benchDir = Path.resolve(import.meta.dirname, "..")
const repoRoot = Path.resolve(benchDir, "../..")

const fail = (message: string): never => {
  process.stderr.write(`pool-overhead: ${message}\n`)
  process.exit(2)
}

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  const values: Record<string, number> = { jobs: 20_000, warmup: 2_000, reps: 3, "quiet-wait": 120 }
  const limits: Record<string, readonly [number, number]> = {
    jobs: [100, 1_000_000],
    warmup: [0, 1_000_000],
    reps: [1, 20],
    "quiet-wait": [0, 600]
  }
  let json = Path.join(benchDir, ".build", "pool-overhead.json")
  let only: Array<string> | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? ""
    if (arg === "--") continue
    if (arg === "--json") json = Path.resolve(repoRoot, argv[++i] ?? fail("--json takes a path"))
    else if (arg === "--only") only = (argv[++i] ?? fail("--only takes variant keys, e.g. pool-64,bare-64")).split(",")
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        "usage: node apps/bench/src/poolOverhead.ts [--jobs 20000] [--warmup 2000] [--reps 3] [--only key,…] [--quiet-wait 120] [--json path]\n"
      )
      process.exit(0)
    } else if (arg.startsWith("--") && arg.slice(2) in values) {
      const key = arg.slice(2)
      const given = argv[++i]
      const value = Number(given)
      const [min, max] = limits[key] ?? [0, 0]
      if (given === undefined || !Number.isInteger(value) || value < min || value > max) {
        fail(`${arg} takes an integer in ${min}..${max}, got ${given ?? "nothing"}`)
      }
      values[key] = value
    } else fail(`unknown argument ${arg}`)
  }
  return {
    jobs: values.jobs!,
    warmup: values.warmup!,
    reps: values.reps!,
    json,
    only,
    quietWait: values["quiet-wait"]!
  }
}

/** A bare echo worker, with `[id, payload]` messages; `run(count, inflight)` resolves with the elapsed ms. */
const bareWorker = async () => {
  const worker = new Worker(new URL(import.meta.url), { workerData: { bare: true }, name: "bare-echo" })
  await new Promise<void>((resolve, reject) => {
    worker.once("online", () => resolve())
    worker.once("error", reject)
  })
  let onReply: (message: readonly [number, string]) => void = () => {}
  worker.on("message", (message: readonly [number, string]) => onReply(message))
  const run = (count: number, inflight: number): Promise<number> =>
    new Promise((resolve, reject) => {
      let sent = 0
      let received = 0
      const started = performance.now()
      const send = () => {
        worker.postMessage([sent++, payload])
      }
      onReply = (message) => {
        if (message[1] !== payload) reject(new Error(`bare: a wrong reply ${JSON.stringify(message)}`))
        received++
        if (received === count) resolve(performance.now() - started)
        else if (sent < count) send()
      }
      for (let i = 0; i < Math.min(inflight, count); i++) send()
    })
  // 1 in flight as callers usually write it: await each reply
  const runAwaited = async (count: number): Promise<number> => {
    const started = performance.now()
    for (let i = 0; i < count; i++) {
      const reply = await new Promise<readonly [number, string]>((resolve) => {
        onReply = resolve
        worker.postMessage([i, payload])
      })
      if (reply[0] !== i) throw new Error(`bare: reply ${reply[0]} to ${i}`)
    }
    return performance.now() - started
  }
  return { run, runAwaited, terminate: () => worker.terminate() }
}

type PoolService = WorkerPool.WorkerPool["Service"]

/** `count` jobs through `pool.run`, `inflight` at a time; the elapsed ms. */
const poolRun = (
  pool: PoolService,
  count: number,
  inflight: number,
  options: WorkerPool.SubmitOptions | undefined
): Effect.Effect<number, unknown> =>
  Effect.gen(function* () {
    const started = performance.now()
    const one = pool
      .run(Echo, payload, options)
      .pipe(
        Effect.flatMap((result) =>
          result === payload ? Effect.void : Effect.die(new Error(`pool: a wrong result ${result}`))
        )
      )
    if (inflight === 1) {
      for (let i = 0; i < count; i++) yield* one
    } else {
      yield* Effect.forEach(Array.from({ length: count }), () => one, { concurrency: inflight, discard: true })
    }
    return performance.now() - started
  })

/** The calling side only: the same loops over `Effect.succeed`. */
const harnessRun = (count: number, inflight: number): Effect.Effect<number> =>
  Effect.gen(function* () {
    const started = performance.now()
    const one = Effect.succeed(payload)
    if (inflight === 1) {
      for (let i = 0; i < count; i++) yield* one
    } else {
      yield* Effect.forEach(Array.from({ length: count }), () => one, { concurrency: inflight, discard: true })
    }
    return performance.now() - started
  })

interface Variant {
  readonly key: string
  readonly label: string
  readonly inflight: number
  /** Runs `count` jobs; the elapsed ms. */
  readonly run: (count: number) => Promise<number>
}

/** The main thread's utime + stime, µs (clock-tick resolution). */
const mainThreadCpuUs = (): number => {
  try {
    const stat = Fs.readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) / clockTicks) * 1e6
  } catch {
    return Number.NaN
  }
}

/** The whole machine's busy ticks (every CPU, every process) from /proc/stat. */
/** Waits until the machine is busy less than `limit` % of one core over a second, for up to `seconds`. */
const waitForQuiet = async (seconds: number, limit = 10): Promise<number> => {
  const deadline = performance.now() + seconds * 1000
  for (;;) {
    const before = machineBusyTicks()
    const at = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const busy = (((machineBusyTicks() - before) / clockTicks) * 100_000) / (performance.now() - at)
    if (busy < limit || performance.now() >= deadline) return busy
  }
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const fmt = (value: number, decimals: number): string =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    : "n/a"

const width = (text: string): number => [...text].length
const pad = (text: string, to: number, right: boolean): string => {
  const fill = " ".repeat(Math.max(0, to - width(text)))
  return right ? fill + text : text + fill
}

const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const lines = [header, ...rows]
  const widths = header.map((_, i) => Math.max(3, ...lines.map((line) => width(line[i] ?? ""))))
  const right = (i: number) => i > 0
  const row = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => pad(cell, widths[i] ?? 0, right(i))).join(" | ")} |`
  const rule = `| ${widths.map((w, i) => (right(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`
  return [row(header), rule, ...rows.map(row)].join("\n")
}

const main = async (): Promise<void> => {
  const options = parseArgs(process.argv.slice(2))
  if (Number(process.versions.node.split(".")[0]) < 24) fail(`Node ${process.version}: run with Node 24`)
  // a watchdog: the run ends whatever happens
  const watchdog = setTimeout(() => {
    process.stderr.write("pool-overhead: still running after 10 minutes; giving up\n")
    process.exit(1)
  }, 600_000)
  watchdog.unref()

  let otherCpu = Number.NaN
  const bare = await bareWorker()
  const runtime = async <A>(size: number, body: (pool: PoolService) => Promise<A>): Promise<A> =>
    Effect.runPromise(
      Effect.gen(function* () {
        const pool = yield* WorkerPool.WorkerPool
        return yield* Effect.promise(() => body(pool))
      }).pipe(
        Effect.provide(
          NodeWorkerPool.layer({
            handlers: Handlers,
            worker: new URL(import.meta.url),
            size,
            queueCapacity: 4096,
            maxJobsPerConnection: 4096
          })
        )
      )
    )

  const results = await runtime(1, (threads) =>
    runtime(0, async (inline) => {
      const run = (pool: PoolService, inflight: number, submit?: WorkerPool.SubmitOptions) => (count: number) =>
        Effect.runPromise(poolRun(pool, count, inflight, submit))
      const variants: ReadonlyArray<Variant> = [
        { key: "bare-1", label: "bare postMessage, 1 in flight", inflight: 1, run: (n) => bare.runAwaited(n) },
        { key: "bare-64", label: "bare postMessage, 64 in flight", inflight: 64, run: (n) => bare.run(n, 64) },
        { key: "pool-1", label: "pool size 1, WorkerPool.run, 1 in flight", inflight: 1, run: run(threads, 1) },
        { key: "pool-64", label: "pool size 1, WorkerPool.run, 64 in flight", inflight: 64, run: run(threads, 64) },
        {
          key: "pool-1-notimeout",
          label: "pool size 1, timeout: false, 1 in flight",
          inflight: 1,
          run: run(threads, 1, { timeout: false })
        },
        {
          key: "pool-64-notimeout",
          label: "pool size 1, timeout: false, 64 in flight",
          inflight: 64,
          run: run(threads, 64, { timeout: false })
        },
        { key: "inline-1", label: "inline (size 0), 1 in flight", inflight: 1, run: run(inline, 1) },
        { key: "inline-64", label: "inline (size 0), 64 in flight", inflight: 64, run: run(inline, 64) },
        {
          key: "harness-1",
          label: "harness only (Effect.succeed), 1 in flight",
          inflight: 1,
          run: (n) => Effect.runPromise(harnessRun(n, 1))
        },
        {
          key: "harness-64",
          label: "harness only (Effect.succeed), 64 in flight",
          inflight: 64,
          run: (n) => Effect.runPromise(harnessRun(n, 64))
        }
      ]
      const chosen = variants.filter((v) => options.only === undefined || options.only.includes(v.key))
      if (chosen.length === 0) fail(`--only matched no variant (${variants.map((v) => v.key).join(", ")})`)
      const perRep = new Map<string, Array<number>>(chosen.map((v) => [v.key, []]))
      const cpuPerRep = new Map<string, Array<{ process: number; main: number }>>(chosen.map((v) => [v.key, []]))
      let busyMs = 0
      let wallMs = 0
      for (let rep = 1; rep <= options.reps; rep++) {
        const busy = await waitForQuiet(options.quietWait)
        if (busy >= 10)
          process.stderr.write(`pool-overhead: the machine is busy (${Math.round(busy)} %); running anyway\n`)
        for (const variant of chosen) {
          if (options.warmup > 0) await variant.run(options.warmup)
          const cpuBefore = process.cpuUsage()
          const mainBefore = mainThreadCpuUs()
          const machineBefore = machineBusyTicks()
          const ms = await variant.run(options.jobs)
          const cpu = process.cpuUsage(cpuBefore)
          // other processes: the machine's busy time less this process's
          busyMs += Math.max(
            0,
            ((machineBusyTicks() - machineBefore) / clockTicks) * 1000 - (cpu.user + cpu.system) / 1000
          )
          wallMs += ms
          cpuPerRep.get(variant.key)!.push({
            process: (cpu.user + cpu.system) / options.jobs,
            main: (mainThreadCpuUs() - mainBefore) / options.jobs
          })
          perRep.get(variant.key)!.push((ms * 1000) / options.jobs)
          process.stderr.write(
            `pool-overhead: rep ${rep}/${options.reps} ${variant.label}: ${fmt((ms * 1000) / options.jobs, 2)} µs/job\n`
          )
        }
      }
      otherCpu = (busyMs / wallMs) * 100
      return chosen.map((v) => ({
        key: v.key,
        label: v.label,
        inflight: v.inflight,
        usPerJob: median(perRep.get(v.key)!),
        reps: perRep.get(v.key)!,
        cpuUsPerJob: median(cpuPerRep.get(v.key)!.map((c) => c.process)),
        mainCpuUsPerJob: median(cpuPerRep.get(v.key)!.map((c) => c.main))
      }))
    })
  )
  await bare.terminate()

  const byKey = new Map(results.map((r) => [r.key, r]))
  const us = (key: string) => byKey.get(key)?.usPerJob ?? Number.NaN
  const ratios = {
    "pool-1 / bare-1": us("pool-1") / us("bare-1"),
    "pool-64 / bare-64": us("pool-64") / us("bare-64"),
    "pool-64 / bare-1": us("pool-64") / us("bare-1")
  }
  const bareFor = (inflight: number) => us(inflight === 1 ? "bare-1" : "bare-64")
  const rows = results.map((r) => [
    r.label,
    fmt(r.usPerJob, 2),
    r.reps.map((v) => fmt(v, 2)).join(", "),
    r.key.startsWith("bare") || !Number.isFinite(bareFor(r.inflight))
      ? ""
      : `${fmt(r.usPerJob / bareFor(r.inflight), 2)}×`,
    fmt(r.cpuUsPerJob, 1),
    fmt(r.mainCpuUsPerJob, 1)
  ])
  const cpuinfo = Fs.readFileSync("/proc/cpuinfo", "utf8")
  const info = {
    cpus: Os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    node: process.version,
    kernel: `${Os.type()} ${Os.release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z")
  }
  process.stdout.write(
    `\n${markdownTable(
      [
        "Variant",
        "µs/job (median)",
        `per repetition (${options.reps})`,
        "vs bare, same in flight",
        "CPU µs/job, process",
        "CPU µs/job, main thread"
      ],
      rows
    )}\n\n`
  )
  process.stdout.write(
    `${options.jobs.toLocaleString("en-US")} jobs per measurement after ${options.warmup.toLocaleString("en-US")} warm-up; ` +
      `${info.cpus} × ${info.cpu}, ${info.kernel}, Node ${info.node}, ${info.date}; ` +
      `other processes used ${fmt(otherCpu, 0)} % of a core on average while measuring\n` +
      `Target pool ≤ 2× bare: 1 in flight ${fmt(ratios["pool-1 / bare-1"], 2)}× (${ratios["pool-1 / bare-1"] <= 2 ? "met" : "MISSED"}), ` +
      `64 in flight ${fmt(ratios["pool-64 / bare-64"], 2)}× (${ratios["pool-64 / bare-64"] <= 2 ? "met" : "MISSED"}); ` +
      `pool 64 in flight against bare 1 in flight (the pool keeps one job per worker on the wire): ${fmt(ratios["pool-64 / bare-1"], 2)}×\n`
  )
  Fs.mkdirSync(Path.dirname(options.json), { recursive: true })
  Fs.writeFileSync(
    options.json,
    `${JSON.stringify({ machine: info, options: { ...options, json: undefined }, results, ratios, otherCpu }, null, 2)}\n`
  )
  process.stdout.write(`wrote ${Path.relative(process.cwd(), options.json) || options.json}\n`)
  clearTimeout(watchdog)
}

if (isMainThread) await main()
else if (isBareWorker(workerData)) serveBare()
else NodeWorkerPool.runWorker(Handlers)
