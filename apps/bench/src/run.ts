/**
 * The benchmark runner: the same scenarios, in the same run, against the
 * Switchboard bench server (`server.ts`), the plain-ws baseline
 * (`baseline-ws.ts`) and the tuned-ws baseline (`baseline-tuned.ts`), one
 * server at a time, driven by the C load generator
 * (`loadgen/loadgen.c`, compiled on demand into `apps/bench/.build/`).
 *
 *   node apps/bench/src/run.ts [--quick] [--scenario echo|broadcast|handshake|idle] [--write docs/benchmarks.md]
 *   pnpm --filter @switchboard/app-bench bench -- --quick
 *
 * Each server runs pinned to CPU 0 and the load generator to CPU 1 (taskset),
 * so one load generator core drives one server core; every scenario runs in two
 * rounds (one with --quick), each on freshly started servers, and reports the mean. The server's CPU time and
 * RSS are read from /proc/<pid>/stat and /proc/<pid>/status exactly over the
 * measured window, which the load generator announces on stderr. A relative
 * `--write` path is resolved against the repository root; the file's
 * "## Latest results" section is replaced and every other line kept.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { sleep } from "../../../test-support/poll.ts"
import { logTail, type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import {
  argValue,
  benchDir,
  budget,
  canPin,
  consoleTable,
  cpuCount,
  cpuPercent,
  ensureLoadgen,
  fail,
  fmt,
  healthProblem,
  type LoadgenResult,
  logDir,
  machine,
  markdownTable,
  mean,
  num,
  type ProcSample,
  readProc,
  repoRoot,
  requireNode24,
  round,
  runLoadgen,
  writeSection
} from "./harness.ts"

type ScenarioName = "echo" | "broadcast" | "handshake" | "idle"
const scenarioNames: ReadonlyArray<ScenarioName> = ["echo", "broadcast", "handshake", "idle"]

interface Options {
  readonly quick: boolean
  readonly scenarios: ReadonlyArray<ScenarioName>
  readonly write: string | undefined
}

interface Impl {
  readonly key: "switchboard" | "baseline" | "tuned"
  readonly label: string
  readonly script: string
}

const impls: ReadonlyArray<Impl> = [
  { key: "switchboard", label: "Switchboard", script: Path.join(benchDir, "src", "server.ts") },
  { key: "baseline", label: "ws baseline", script: Path.join(benchDir, "src", "baseline-ws.ts") },
  { key: "tuned", label: "tuned ws", script: Path.join(benchDir, "src", "baseline-tuned.ts") }
]

/** A target for Switchboard's value divided by a baseline's. */
interface Target {
  readonly op: ">=" | "<="
  readonly ratio: number
}

interface Measured {
  readonly result: LoadgenResult
  readonly serverCpu: number | undefined
  readonly loadgenCpu: number | undefined
  readonly serverRssKb: number | undefined
}

interface Row {
  readonly scenario: ScenarioName
  readonly metric: string
  readonly values: Readonly<Record<Impl["key"], number>>
  /** The value of each round, when there were several. */
  readonly perRound: Readonly<Partial<Record<Impl["key"], ReadonlyArray<number>>>>
  /** Against the plain-ws baseline and against the tuned one. */
  readonly targets: { readonly ws?: Target; readonly tuned?: Target }
  readonly serverCpu: Readonly<Partial<Record<Impl["key"], number>>>
  readonly loadgenCpu: Readonly<Partial<Record<Impl["key"], number>>>
  readonly decimals: number
}

interface Raw {
  readonly scenario: ScenarioName
  readonly impl: Impl["key"]
  readonly label: string
  readonly args: ReadonlyArray<string>
  readonly result: LoadgenResult
  readonly extra: Readonly<Record<string, number>>
}

const problems: Array<string> = []
const raws: Array<Raw> = []
const rows: Array<Row> = []

// ---------------------------------------------------------------------------
// arguments and environment

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  let quick = false
  let write: string | undefined
  const scenarios: Array<ScenarioName> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === "--") continue
    if (arg === "--quick") quick = true
    else if (arg === "--scenario") {
      const value = argv[++i]
      const found = scenarioNames.find((name) => name === value)
      if (found === undefined) fail(`--scenario takes one of ${scenarioNames.join(", ")}, got ${value ?? "nothing"}`)
      else scenarios.push(found)
    } else if (arg === "--write") {
      const value = argv[++i]
      if (value === undefined) fail("--write takes a path, e.g. docs/benchmarks.md")
      else write = Path.resolve(repoRoot, value)
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        "usage: node apps/bench/src/run.ts [--quick] [--scenario echo|broadcast|handshake|idle]... [--write docs/benchmarks.md]\n"
      )
      process.exit(0)
    } else fail(`unknown argument ${arg}`)
  }
  return { quick, scenarios: scenarios.length > 0 ? scenarios : scenarioNames, write }
}

const pinning = canPin

// ---------------------------------------------------------------------------
// processes

interface Server {
  readonly impl: Impl
  readonly pid: number
  readonly port: number
  readonly logPath: string
  readonly process: NodeProcess
}

const startServer = async (
  impl: Impl,
  scenario: ScenarioName,
  nodeArgs: ReadonlyArray<string> = []
): Promise<Server> => {
  Fs.mkdirSync(logDir, { recursive: true })
  const logPath = Path.join(logDir, `${scenario}-${impl.key}.log`)
  try {
    const server = await startNodeProcess(
      impl.script,
      {},
      {
        cwd: repoRoot,
        logFile: logPath,
        timeoutMs: 20_000,
        name: impl.label,
        nodeArgs,
        ...(pinning ? { prefix: ["taskset", "-c", "0"] } : {})
      }
    )
    return { impl, pid: server.pid, port: server.port, logPath, process: server }
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error))
  }
}

const stopServer = async (server: Server, scenario: ScenarioName): Promise<void> => {
  const before = server.process.exitStatus()
  if (before !== undefined) {
    problems.push(
      `${server.impl.label} (${scenario}) exited by itself during the run (code ${before.code}, signal ${before.signal}); log tail:\n${logTail(server.logPath)}`
    )
    return
  }
  if ((await server.process.stop({ graceMs: 5_000 })) === "killed") {
    problems.push(`${server.impl.label} (${scenario}) did not exit within 5 s of SIGTERM; killed`)
  }
  const log = Fs.readFileSync(server.logPath, "utf8")
  const bad = log.split("\n").filter((line) => /error|warn|fatal|exception|leak/i.test(line))
  if (bad.length > 0) {
    problems.push(
      `${server.impl.label} (${scenario}) logged ${bad.length} error/warning line(s), first: ${bad[0]?.slice(0, 400)} (log: ${Path.relative(repoRoot, server.logPath)})`
    )
  }
}

const checkHealth = (impl: Impl, scenario: ScenarioName, args: ReadonlyArray<string>, result: LoadgenResult): void => {
  const problem = healthProblem(args, result)
  if (problem !== undefined) problems.push(`${impl.label} (${scenario}): ${problem}`)
}

/** Runs the load generator on the CPU the servers do not use. */
const loadgen = (args: ReadonlyArray<string>, budgetSeconds: number, onLine?: (line: string, pid: number) => void) =>
  runLoadgen(args, budgetSeconds, { cpus: "1", ...(onLine ? { onLine } : {}) })

/** Runs one load generator command, sampling the server over its measured window. */
const measure = async (
  server: Server,
  scenario: ScenarioName,
  label: string,
  args: ReadonlyArray<string>,
  budgetSeconds: number
): Promise<Measured> => {
  let serverStart: ProcSample | undefined
  let serverEnd: ProcSample | undefined
  let loadgenStart: ProcSample | undefined
  let loadgenEnd: ProcSample | undefined
  const fullArgs = [...args, "--port", String(server.port)]
  const run = await loadgen(fullArgs, budgetSeconds, (line, pid) => {
    if (line === "phase measure") {
      serverStart = readProc(server.pid)
      loadgenStart = readProc(pid)
    } else if (line === "phase end") {
      serverEnd = readProc(server.pid)
      loadgenEnd = readProc(pid)
    }
  })
  checkHealth(server.impl, scenario, args, run.result)
  const measured: Measured = {
    result: run.result,
    serverCpu: cpuPercent(serverStart, serverEnd),
    loadgenCpu: cpuPercent(loadgenStart, loadgenEnd),
    serverRssKb: serverEnd?.rssKb
  }
  const extra: Record<string, number> = {}
  if (measured.serverCpu !== undefined) extra.server_cpu_pct = round(measured.serverCpu, 1)
  if (measured.loadgenCpu !== undefined) extra.loadgen_cpu_pct = round(measured.loadgenCpu, 1)
  if (measured.serverRssKb !== undefined) extra.server_rss_kb = measured.serverRssKb
  raws.push({ scenario, impl: server.impl.key, label, args, result: run.result, extra })
  return measured
}

// ---------------------------------------------------------------------------
// scenarios

interface Plan {
  /** Echo and broadcast run once with binary frames and once with text (JSON) frames. */
  readonly echo: ReadonlyArray<string>
  readonly broadcast: ReadonlyArray<string>
  /** Fixed-rate broadcasts (text), one run per rate. */
  readonly broadcastLatency: ReadonlyArray<string>
  readonly rates: ReadonlyArray<number>
  readonly handshake: ReadonlyArray<string>
  /** Rounds of every scenario (each server freshly started per round). */
  readonly rounds: number
  readonly idleConns: number
  readonly idleHold: number
  readonly idleWarmConns: number
  /** Messages each connection exchanges (text echo) before the RSS is read: one run per count. */
  readonly idleMessages: ReadonlyArray<number>
  /** The same, again with every server's young generation capped (`--max-semi-space-size`, MB), which leaves less garbage in the RSS. */
  readonly cappedMessages: ReadonlyArray<number>
  readonly settleMs: number
}

const args = (line: string): ReadonlyArray<string> => line.split(" ")

const plans: Readonly<Record<"full" | "quick", Plan>> = {
  full: {
    echo: args("echo --path /echo --conns 100 --inflight 16 --size 32 --seconds 10 --warmup 2"),
    broadcast: args("broadcast --path /broadcast --subs 1000 --size 64 --window 32 --seconds 10 --warmup 2"),
    broadcastLatency: args("broadcast --path /broadcast --subs 1000 --size 64 --frames text --seconds 5 --warmup 1"),
    rates: [50, 200],
    handshake: args("handshake --path /echo --concurrency 50 --seconds 8 --warmup 2"),
    rounds: 2,
    idleConns: 10_000,
    idleHold: 5,
    idleWarmConns: 500,
    idleMessages: [0, 1, 100],
    cappedMessages: [0, 1],
    settleMs: 2_000
  },
  quick: {
    echo: args("echo --path /echo --conns 50 --inflight 16 --size 32 --seconds 3 --warmup 1"),
    broadcast: args("broadcast --path /broadcast --subs 200 --size 64 --window 32 --seconds 3 --warmup 1"),
    broadcastLatency: args("broadcast --path /broadcast --subs 200 --size 64 --frames text --seconds 2 --warmup 1"),
    rates: [50],
    handshake: args("handshake --path /echo --concurrency 50 --seconds 3 --warmup 1"),
    rounds: 1,
    idleConns: 2_000,
    idleHold: 2,
    idleWarmConns: 200,
    idleMessages: [0, 1],
    cappedMessages: [],
    settleMs: 1_000
  }
}

type Frames = "binary" | "text"
const frameKinds: ReadonlyArray<Frames> = ["binary", "text"]
const withFrames = (line: ReadonlyArray<string>, frames: Frames): ReadonlyArray<string> => [...line, "--frames", frames]

type PerImpl<A> = Partial<Record<Impl["key"], A>>
type Rounds<A> = ReadonlyArray<PerImpl<A>>

/** The values of `f` per server, one per round. */
const each = <A>(rounds: Rounds<A>, f: (a: A) => number | undefined): PerImpl<ReadonlyArray<number>> => {
  const out: PerImpl<ReadonlyArray<number>> = {}
  for (const impl of impls) {
    out[impl.key] = rounds.flatMap((per) => {
      const a = per[impl.key]
      const value = a === undefined ? undefined : f(a)
      return value === undefined ? [] : [value]
    })
  }
  return out
}

/** The mean of `f` over the rounds, per server. */
const pick = <A>(rounds: Rounds<A>, f: (a: A) => number | undefined): PerImpl<number> => {
  const per = each(rounds, f)
  const out: PerImpl<number> = {}
  for (const impl of impls) {
    const average = mean(per[impl.key] ?? [])
    if (average !== undefined) out[impl.key] = average
  }
  return out
}

const all = (per: PerImpl<number>): Record<Impl["key"], number> => ({
  switchboard: per.switchboard ?? Number.NaN,
  baseline: per.baseline ?? Number.NaN,
  tuned: per.tuned ?? Number.NaN
})

/**
 * Runs `body` against each server in turn, each freshly started and stopped
 * afterwards, `count` times (Switchboard, ws, tuned ws, Switchboard, …).
 */
const rounds = async <A>(
  scenario: ScenarioName,
  count: number,
  body: (server: Server, round: number) => Promise<A>,
  nodeArgs: ReadonlyArray<string> = []
): Promise<Rounds<A>> => {
  const out: Array<PerImpl<A>> = []
  for (let round = 1; round <= count; round++) {
    const per: PerImpl<A> = {}
    for (const impl of impls) {
      process.stderr.write(`bench: ${scenario} on ${impl.label}${count > 1 ? `, round ${round} of ${count}` : ""}\n`)
      const server = await startServer(impl, scenario, nodeArgs)
      try {
        per[impl.key] = await body(server, round)
      } catch (error) {
        problems.push(`${impl.label} (${scenario}): ${error instanceof Error ? error.message : String(error)}`)
      } finally {
        await stopServer(server, scenario)
      }
    }
    out.push(per)
  }
  return out
}

const roundsNote = (count: number): string => (count > 1 ? `; mean of ${count} rounds` : "")

/** A saturating run's two rows: its rate, with the targets, and its p99 latency at that load. */
const pushSaturated = (
  scenario: ScenarioName,
  done: Rounds<Measured>,
  rateMetric: string,
  latencyMetric: string,
  targets: Row["targets"]
): void => {
  rows.push({
    scenario,
    metric: rateMetric,
    values: all(pick(done, (m) => num(m.result, "rate"))),
    perRound: each(done, (m) => num(m.result, "rate")),
    targets,
    serverCpu: pick(done, (m) => m.serverCpu),
    loadgenCpu: pick(done, (m) => m.loadgenCpu),
    decimals: 0
  })
  rows.push({
    scenario,
    metric: latencyMetric,
    values: all(pick(done, (m) => num(m.result, "p99_us") / 1000)),
    perRound: each(done, (m) => num(m.result, "p99_us") / 1000),
    targets: {},
    serverCpu: {},
    loadgenCpu: {},
    decimals: 2
  })
}

const runEcho = async (plan: Plan): Promise<void> => {
  for (const frames of frameKinds) {
    const line = withFrames(plan.echo, frames)
    const done = await rounds("echo", plan.rounds, (server, round) =>
      measure(server, "echo", `echo ${frames} round ${round}`, line, budget(line))
    )
    const conns = argValue(line, "--conns")
    const inflight = argValue(line, "--inflight")
    pushSaturated(
      "echo",
      done,
      `round trips/s, ${frames} (${conns} conns × ${inflight} in flight, ${argValue(line, "--size")} B${roundsNote(plan.rounds)})`,
      `p99 round-trip latency at that load, ${frames} (ms)`,
      frames === "text" ? { ws: { op: ">=", ratio: 3 }, tuned: { op: ">=", ratio: 0.9 } } : {}
    )
  }
}

const runBroadcast = async (plan: Plan): Promise<void> => {
  for (const frames of frameKinds) {
    const line = withFrames(plan.broadcast, frames)
    const done = await rounds("broadcast", plan.rounds, (server, round) =>
      measure(server, "broadcast", `broadcast ${frames} round ${round}`, line, budget(line))
    )
    pushSaturated(
      "broadcast",
      done,
      `deliveries/s, ${frames} (${argValue(line, "--subs")} subs, ${argValue(line, "--size")} B, window ${argValue(line, "--window")}${roundsNote(plan.rounds)})`,
      `p99 delivery latency at that load, ${frames} (ms)`,
      frames === "text" ? { ws: { op: ">=", ratio: 12 }, tuned: { op: ">=", ratio: 0.9 } } : {}
    )
  }
  for (const rate of plan.rates) {
    const line = [...plan.broadcastLatency, "--rate", String(rate)]
    const done = await rounds("broadcast", plan.rounds, (server, round) =>
      measure(server, "broadcast", `broadcast at ${rate}/s, round ${round}`, line, budget(line))
    )
    for (const [percentile, key] of [
      ["p50", "p50_us"],
      ["p99", "p99_us"],
      ["p99.9", "p999_us"]
    ] as const) {
      rows.push({
        scenario: "broadcast",
        metric: `${percentile} delivery latency at ${rate} broadcasts/s, text (${argValue(line, "--subs")} subs; ms)`,
        values: all(pick(done, (m) => num(m.result, key) / 1000)),
        perRound: each(done, (m) => num(m.result, key) / 1000),
        targets: percentile === "p99" ? { ws: { op: "<=", ratio: 1 } } : {},
        serverCpu: percentile === "p99" ? pick(done, (m) => m.serverCpu) : {},
        loadgenCpu: percentile === "p99" ? pick(done, (m) => m.loadgenCpu) : {},
        decimals: 2
      })
    }
  }
}

/** TCP sockets in TIME_WAIT on this machine (`/proc/net/sockstat`), or undefined where it cannot be read. */
const timeWaitCount = (): number | undefined => {
  try {
    const match = /TCP:.* tw (\d+)/.exec(Fs.readFileSync("/proc/net/sockstat", "utf8"))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/**
 * Waits (at most 65 s: Linux keeps a socket in TIME_WAIT for 60 s) until the
 * sockets closed by earlier runs have left TIME_WAIT, so that every server's
 * handshake run starts from the same state and not behind tens of thousands of
 * its predecessor's sockets.
 */
const settleTimeWait = async (): Promise<void> => {
  const deadline = performance.now() + 65_000
  while (performance.now() < deadline && (timeWaitCount() ?? 0) > 2_000) await sleep(1_000)
}

const runHandshake = async (plan: Plan): Promise<void> => {
  const done = await rounds("handshake", plan.rounds, async (server, round) => {
    await settleTimeWait()
    return measure(server, "handshake", `handshake round ${round}`, plan.handshake, budget(plan.handshake))
  })
  rows.push({
    scenario: "handshake",
    metric: `handshakes/s (${argValue(plan.handshake, "--concurrency")} concurrent; open, upgrade, close frame${roundsNote(plan.rounds)})`,
    values: all(pick(done, (m) => num(m.result, "rate"))),
    perRound: each(done, (m) => num(m.result, "rate")),
    targets: { ws: { op: ">=", ratio: 1 } },
    serverCpu: pick(done, (m) => m.serverCpu),
    loadgenCpu: pick(done, (m) => m.loadgenCpu),
    decimals: 0
  })
}

interface IdleResult {
  /** RSS of the freshly started server, before any connection. */
  readonly emptyKb: number
  readonly beforeKb: number
  readonly withKb: number
  readonly perConnBytes: number
  /** The server's CPU use while it only held the idle connections (timers, keepalive sweeps). */
  readonly idleCpu: number | undefined
}

/** Memory: a fresh server per message count; its RSS empty, then per connection after the count of echoes each. */
const semiSpaceMb = 8

const runIdle = async (plan: Plan): Promise<void> => {
  const runs = [
    ...plan.idleMessages.map((messages) => ({ messages, capped: false })),
    ...plan.cappedMessages.map((messages) => ({ messages, capped: true }))
  ]
  for (const { messages, capped } of runs) {
    const nodeArgs = capped ? [`--max-semi-space-size=${semiSpaceMb}`] : []
    const variant = capped ? `, young generation capped (--max-semi-space-size=${semiSpaceMb})` : ""
    const done = await rounds(
      "idle",
      plan.rounds,
      async (server, round): Promise<IdleResult> => {
        const port = String(server.port)
        await sleep(plan.settleMs)
        const empty = readProc(server.pid)
        if (empty === undefined) throw new Error(`cannot read /proc/${server.pid}`)
        // warm-up: the connection path runs (JIT, lazy modules), then everything closes and settles
        const warmArgs = ["idle", "--path", "/echo", "--conns", String(plan.idleWarmConns), "--hold", "0"]
        const warm = await loadgen([...warmArgs, "--port", port], 60)
        checkHealth(server.impl, "idle", warmArgs, warm.result)
        await sleep(plan.settleMs)
        const before = readProc(server.pid)
        if (before === undefined) throw new Error(`cannot read /proc/${server.pid}`)
        const args = [
          "idle",
          "--path",
          "/echo",
          "--conns",
          String(plan.idleConns),
          "--hold",
          String(plan.idleHold),
          ...(messages > 0 ? ["--messages", String(messages), "--frames", "text"] : [])
        ]
        const samples: Array<ProcSample> = []
        let sampler: ReturnType<typeof setInterval> | undefined
        const stopSampling = () => {
          if (sampler !== undefined) clearInterval(sampler)
          sampler = undefined
        }
        const run = await loadgen([...args, "--port", port], plan.idleHold + 120, (line) => {
          if (line.startsWith("ready")) {
            const take = () => {
              const sample = readProc(server.pid)
              if (sample !== undefined) samples.push(sample)
            }
            take()
            sampler = setInterval(take, 250)
          } else if (line.startsWith("phase closing")) stopSampling()
        }).finally(stopSampling)
        checkHealth(server.impl, "idle", args, run.result)
        const last = samples.at(-1)
        if (last === undefined) throw new Error("no RSS sample while the connections were open")
        const perConnBytes = ((last.rssKb - before.rssKb) * 1024) / plan.idleConns
        const first = samples[0]
        const idleCpu = first !== undefined && last !== first ? cpuPercent(first, last) : undefined
        raws.push({
          scenario: "idle",
          impl: server.impl.key,
          label: `idle after ${messages} message(s)${variant}, round ${round}`,
          args,
          result: run.result,
          extra: {
            rss_empty_kb: empty.rssKb,
            rss_before_kb: before.rssKb,
            rss_with_conns_kb: last.rssKb,
            rss_min_while_open_kb: Math.min(...samples.map((s) => s.rssKb)),
            rss_max_while_open_kb: Math.max(...samples.map((s) => s.rssKb)),
            ...(idleCpu === undefined ? {} : { server_cpu_while_idle_pct: Math.round(idleCpu * 100) / 100 }),
            samples: samples.length
          }
        })
        return { emptyKb: empty.rssKb, beforeKb: before.rssKb, withKb: last.rssKb, perConnBytes, idleCpu }
      },
      nodeArgs
    )
    if (messages === 0 && !capped) {
      rows.push({
        scenario: "idle",
        metric: `RSS of the empty server, ${fmt(plan.settleMs / 1000, 0)} s after start (MB${roundsNote(plan.rounds)})`,
        values: all(pick(done, (r) => r.emptyKb / 1024)),
        perRound: each(done, (r) => r.emptyKb / 1024),
        targets: { ws: { op: "<=", ratio: 1.3 } },
        serverCpu: {},
        loadgenCpu: {},
        decimals: 1
      })
    }
    const conns = plan.idleConns.toLocaleString("en-US")
    rows.push({
      scenario: "idle",
      metric:
        messages === 0
          ? `RSS per idle connection${variant} (${conns} conns, KB${roundsNote(plan.rounds)})`
          : `RSS per connection after ${messages} text echo(es) each${variant} (${conns} conns, KB${roundsNote(plan.rounds)})`,
      values: all(pick(done, (r) => r.perConnBytes / 1024)),
      perRound: each(done, (r) => r.perConnBytes / 1024),
      targets: capped
        ? {}
        : messages === 0
          ? { ws: { op: "<=", ratio: 1 } }
          : messages === 1
            ? { ws: { op: "<=", ratio: 1.1 } }
            : {},
      // the server's CPU while holding the idle connections: the cost of the timers
      serverCpu: pick(done, (r) => r.idleCpu),
      loadgenCpu: {},
      decimals: 2
    })
    rows.push({
      scenario: "idle",
      metric: `server RSS before → with the connections, after ${messages} message(s)${variant} (MB)`,
      values: all(pick(done, (r) => r.withKb / 1024)),
      perRound: {},
      targets: {},
      serverCpu: {},
      loadgenCpu: {},
      decimals: 1
    })
    rssBefore.set(
      rows.at(-1)!,
      pick(done, (r) => r.beforeKb / 1024)
    )
  }
}

/** The RSS before the connections, for the "before → with" rows. */
const rssBefore = new Map<Row, Partial<Record<Impl["key"], number>>>()

// ---------------------------------------------------------------------------
// output

const cell = (row: Row, key: Impl["key"]): string => {
  const before = rssBefore.get(row)
  if (before !== undefined) {
    const value = before[key]
    return `${value === undefined ? "n/a" : fmt(value, 1)} → ${fmt(row.values[key], 1)}`
  }
  return fmt(row.values[key], row.decimals)
}

type Baseline = "ws" | "tuned"
const baselineKey: Record<Baseline, Impl["key"]> = { ws: "baseline", tuned: "tuned" }

const ratioOf = (row: Row, against: Baseline): number => row.values.switchboard / row.values[baselineKey[against]]

const isMet = (ratio: number, target: Target): boolean =>
  target.op === ">=" ? ratio >= target.ratio : ratio <= target.ratio

const verdict = (row: Row, against: Baseline): string => {
  const target = row.targets[against]
  if (target === undefined) return ""
  const ratio = ratioOf(row, against)
  if (!Number.isFinite(ratio)) return "n/a"
  return isMet(ratio, target) ? "met" : "**missed**"
}

const cpuCell = (per: Readonly<Partial<Record<Impl["key"], number>>>): string =>
  Object.keys(per).length === 0
    ? ""
    : impls.map((impl) => (per[impl.key] === undefined ? "n/a" : fmt(per[impl.key]!, 0))).join(" / ")

const tableHeader = [
  "Scenario",
  "Metric",
  "Switchboard",
  "ws",
  "tuned ws",
  "SB / ws",
  "Target",
  "",
  "SB / tuned",
  "Target",
  "",
  "Server CPU % (SB / ws / tuned)",
  "Loadgen CPU % (SB / ws / tuned)"
]
const rightAligned = (column: number): boolean => column >= 2 && column !== 7 && column !== 10

const ratioCell = (row: Row, against: Baseline): string =>
  rssBefore.has(row) ? "" : `${fmt(ratioOf(row, against), 2)}×`
const targetCell = (row: Row, against: Baseline): string => {
  const target = row.targets[against]
  return target === undefined ? "" : `${target.op} ${target.ratio}×`
}

const tableCells = (): Array<Array<string>> =>
  rows.map((row) => [
    row.scenario,
    row.metric,
    cell(row, "switchboard"),
    cell(row, "baseline"),
    cell(row, "tuned"),
    ratioCell(row, "ws"),
    targetCell(row, "ws"),
    verdict(row, "ws"),
    ratioCell(row, "tuned"),
    targetCell(row, "tuned"),
    verdict(row, "tuned"),
    cpuCell(row.serverCpu),
    cpuCell(row.loadgenCpu)
  ])

const targetLines = (): Array<string> =>
  rows.flatMap((row) =>
    (["ws", "tuned"] as const).flatMap((against) => {
      const target = row.targets[against]
      if (target === undefined) return []
      const name = against === "ws" ? "plain ws" : "tuned ws"
      const ratio = ratioOf(row, against)
      const goal = `${target.op === ">=" ? "≥" : "≤"} ${target.ratio}×`
      if (!Number.isFinite(ratio))
        return [`- ${row.scenario}, ${row.metric}: no result against ${name} (target ${goal}).`]
      const gap =
        target.op === ">="
          ? `${fmt((1 - ratio / target.ratio) * 100, 0)} % short of it`
          : `${fmt((ratio / target.ratio - 1) * 100, 0)} % over it`
      const perRound = impls
        .filter((impl) => impl.key === "switchboard" || impl.key === baselineKey[against])
        .map((impl) => `${impl.label} ${(row.perRound[impl.key] ?? []).map((v) => fmt(v, row.decimals)).join(", ")}`)
        .join("; ")
      const rounds = (row.perRound.switchboard?.length ?? 0) > 1 ? ` Rounds: ${perRound}.` : ""
      return [
        `- ${row.scenario}, ${row.metric}: ${fmt(ratio, 2)}× ${name}, target ${goal}: ${isMet(ratio, target) ? "met" : `**missed**, ${gap}`}.${rounds}`
      ]
    })
  )

const markdown = (options: Options, info: ReturnType<typeof machine>): string => {
  const command = [
    "pnpm --filter @switchboard/app-bench bench --",
    ...(options.quick ? ["--quick"] : []),
    ...(options.scenarios.length < scenarioNames.length ? options.scenarios.flatMap((s) => ["--scenario", s]) : []),
    "--write docs/benchmarks.md"
  ].join(" ")
  const lines = [
    "## Latest results",
    "",
    `Run on ${info.date} with \`${command}\`${options.quick ? " (**quick** smoke-test settings, not the real numbers)" : ""}.`,
    "",
    `Machine: ${info.cpus} × ${info.cpu}, ${info.memory} RAM, ${info.kernel}, Node ${info.node}. ` +
      (pinning
        ? "Server pinned to CPU 0, load generator to CPU 1 (taskset)."
        : "**Not pinned** (taskset missing or a single CPU): server and load generator share the CPUs."),
    "",
    ...markdownTable(tableHeader, tableCells(), rightAligned),
    "",
    ...targetLines(),
    "",
    problems.length === 0
      ? "No errors, lost messages, unexpected closes or server log errors were seen in this run."
      : "**Problems seen in this run:**",
    ...problems.map((p) => `- ${p.replaceAll("\n", "\n  ")}`),
    "",
    "<details><summary>Raw load generator results</summary>",
    "",
    "```",
    ...raws.map(
      (raw) => `${raw.scenario} / ${raw.impl} / ${raw.label}: ${JSON.stringify({ ...raw.result, ...raw.extra })}`
    ),
    "```",
    "",
    "</details>",
    ""
  ]
  return lines.join("\n")
}

// ---------------------------------------------------------------------------

const main = async (): Promise<void> => {
  const options = parseArgs(process.argv.slice(2))
  requireNode24("apps/bench/src/run.ts")
  ensureLoadgen()
  if (!pinning) {
    process.stderr.write(
      `bench: not pinning CPUs (${cpuCount < 2 ? "only one CPU" : "taskset not found; apt-get install util-linux"})\n`
    )
  }
  const plan = plans[options.quick ? "quick" : "full"]
  const started = performance.now()
  for (const scenario of options.scenarios) {
    if (scenario === "echo") await runEcho(plan)
    else if (scenario === "broadcast") await runBroadcast(plan)
    else if (scenario === "handshake") await runHandshake(plan)
    else await runIdle(plan)
  }
  const info = machine()
  process.stdout.write(`\n${consoleTable(tableHeader, tableCells(), rightAligned)}\n\n`)
  process.stdout.write(
    `${info.cpus} × ${info.cpu}, ${info.memory}, Node ${info.node}, ${info.date}, ${Math.round((performance.now() - started) / 1000)} s${pinning ? ", pinned" : ", not pinned"}\n`
  )
  if (problems.length > 0) {
    process.stdout.write(`\nProblems:\n${problems.map((p) => `- ${p}`).join("\n")}\n`)
  }
  if (options.write !== undefined) {
    writeSection(options.write, "## Latest results", markdown(options, info))
    process.stdout.write(
      `\nwrote "Latest results" to ${Path.relative(process.cwd(), options.write) || options.write}\n`
    )
  }
  if (problems.length > 0) process.exitCode = 1
}

await main()
