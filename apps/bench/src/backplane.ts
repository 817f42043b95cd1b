/**
 * The backplane benchmark: one broadcast to 1,000 subscribers, on one bench
 * server with the in-memory backplane, on one server with the Redis
 * backplane, and split over two servers on one Redis (every second
 * subscriber on the second server; the publisher on the first), in the same
 * run, driven by the C load generator (`--port2`).
 *
 *   node apps/bench/src/backplane.ts [--quick] [--write docs/benchmarks.md]
 *   pnpm --filter @switchboard/app-bench backplane -- --write docs/benchmarks.md
 *
 * Two scenarios: at saturation (the publisher keeps 32 broadcasts in flight:
 * deliveries/s and their latency), and at a fixed 50 broadcasts/s (the
 * latency a chat room sees). Nothing is pinned: servers, redis-server and the
 * load generator share the machine's cores, so the rows state the CPU of
 * each. Redis is a real `redis-server` on loopback, started for the run
 * (`test-support/redis.ts`). Setups alternate within each round, each on
 * freshly started servers; rows report the mean of the rounds. The file's
 * "## Backplane: one server against two over Redis" section is replaced and
 * every other line kept.
 */
import * as Path from "node:path"
import type { NodeProcess } from "../../../test-support/process.ts"
import { type RedisServer, startRedisServer } from "../../../test-support/redis.ts"
import {
  argValue,
  benchDir,
  budget,
  consoleTable,
  cpuPercent,
  ensureLoadgen,
  fmt,
  healthProblem,
  type LoadgenResult,
  logDir,
  machine,
  markdownTable,
  mean,
  num,
  type ProcSample,
  parseRunArgs,
  type RunArgs,
  readProc,
  requireNode24,
  round,
  runLoadgen,
  startBenchServer,
  stopBenchServer,
  writeSection
} from "./harness.ts"
import { clockTicks, machineBusyTicks } from "./proc.ts"

const heading = "## Backplane: one server against two over Redis"

type SetupKey = "memory" | "redis-one" | "redis-two"

interface Setup {
  readonly key: SetupKey
  readonly label: string
  readonly servers: 1 | 2
  readonly backplane: "memory" | "redis"
}

const setups: ReadonlyArray<Setup> = [
  { key: "memory", label: "1 server, memory backplane", servers: 1, backplane: "memory" },
  { key: "redis-one", label: "1 server, Redis backplane", servers: 1, backplane: "redis" },
  { key: "redis-two", label: "2 servers over 1 Redis (500 + 500)", servers: 2, backplane: "redis" }
]

type ScenarioKey = "saturation" | "rate"

interface Plan {
  readonly scenarios: Readonly<Record<ScenarioKey, ReadonlyArray<string>>>
  readonly rounds: number
}

const args = (line: string): ReadonlyArray<string> => line.split(" ")

const plans: Readonly<Record<"full" | "quick", Plan>> = {
  full: {
    scenarios: {
      saturation: args("broadcast --path /broadcast --subs 1000 --size 64 --window 32 --seconds 10 --warmup 3"),
      rate: args("broadcast --path /broadcast --subs 1000 --size 64 --rate 50 --seconds 10 --warmup 2")
    },
    rounds: 3
  },
  quick: {
    scenarios: {
      saturation: args("broadcast --path /broadcast --subs 200 --size 64 --window 32 --seconds 3 --warmup 1"),
      rate: args("broadcast --path /broadcast --subs 200 --size 64 --rate 50 --seconds 3 --warmup 1")
    },
    rounds: 1
  }
}

const problems: Array<string> = []
const raws: Array<string> = []

interface Measured {
  readonly rate: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  /** Every server process, % of one core. */
  readonly serverCpu: number
  readonly redisCpu: number
  readonly loadgenCpu: number
  /** The whole machine, % of one core. */
  readonly machineCpu: number
  readonly result: LoadgenResult
}

const serverScript = Path.join(benchDir, "src", "server.ts")

const serverOptions = (setup: Setup, scenario: ScenarioKey, index: number, redis: RedisServer) => ({
  script: serverScript,
  env: { REACTORS: "1", BACKPLANE: setup.backplane, REDIS_URL: redis.url, REDIS_PREFIX: "bench:" },
  ready: /switchboard listening on ws:\/\/[\d.]+:(\d+)/,
  label: `${setup.label}, server ${index + 1} (${scenario})`,
  logFile: Path.join(logDir, `backplane-${scenario}-${setup.key}-${index + 1}.log`)
})

const sampleAll = (pids: ReadonlyArray<number>) => pids.map((pid) => readProc(pid))

const measure = async (
  servers: ReadonlyArray<NodeProcess>,
  redis: RedisServer,
  setup: Setup,
  scenario: ScenarioKey,
  plan: Plan
): Promise<Measured> => {
  const ports = servers.map((server) => server.port)
  const loadArgs = [
    ...plan.scenarios[scenario],
    "--port",
    String(ports[0]),
    ...(ports[1] === undefined ? [] : ["--port2", String(ports[1])])
  ]
  const serverPids = servers.map((server) => server.pid)
  const redisPid = redis.pid()
  let from: Array<ProcSample | undefined> = []
  let to: Array<ProcSample | undefined> = []
  let redisFrom: ProcSample | undefined
  let redisTo: ProcSample | undefined
  let loadgenFrom: ProcSample | undefined
  let loadgenTo: ProcSample | undefined
  let machineFrom = Number.NaN
  let machineTo = Number.NaN
  let window = { start: 0, end: 0 }
  const run = await runLoadgen(loadArgs, budget(loadArgs), {
    onLine: (line, pid) => {
      if (line === "phase measure") {
        from = sampleAll(serverPids)
        redisFrom = redisPid === undefined ? undefined : readProc(redisPid)
        loadgenFrom = readProc(pid)
        machineFrom = machineBusyTicks()
        window = { start: performance.now(), end: 0 }
      } else if (line === "phase end") {
        to = sampleAll(serverPids)
        redisTo = redisPid === undefined ? undefined : readProc(redisPid)
        loadgenTo = readProc(pid)
        machineTo = machineBusyTicks()
        window = { ...window, end: performance.now() }
      }
    }
  })
  const problem = healthProblem(loadArgs, run.result)
  if (problem !== undefined) problems.push(`${setup.label} (${scenario}): ${problem}`)
  const clockMs = window.end - window.start
  const measured: Measured = {
    rate: num(run.result, "rate"),
    p50Ms: num(run.result, "p50_us") / 1000,
    p99Ms: num(run.result, "p99_us") / 1000,
    p999Ms: num(run.result, "p999_us") / 1000,
    serverCpu: from.reduce((sum, sample, i) => sum + (cpuPercent(sample, to[i]) ?? Number.NaN), 0),
    // only the Redis setups use it; its idle CPU in the memory setup is noise, not a cost
    redisCpu: setup.backplane === "redis" ? (cpuPercent(redisFrom, redisTo) ?? Number.NaN) : 0,
    loadgenCpu: cpuPercent(loadgenFrom, loadgenTo) ?? Number.NaN,
    machineCpu: (((machineTo - machineFrom) / clockTicks) * 100_000) / clockMs,
    result: run.result
  }
  raws.push(
    `${scenario} / ${setup.key}: ${JSON.stringify({
      ...run.result,
      server_cpu_pct: round(measured.serverCpu, 1),
      redis_cpu_pct: round(measured.redisCpu, 1),
      loadgen_cpu_pct: round(measured.loadgenCpu, 1),
      machine_cpu_pct: round(measured.machineCpu, 1)
    })}`
  )
  return measured
}

interface Row {
  readonly scenario: ScenarioKey
  readonly setup: Setup
  readonly rounds: ReadonlyArray<Measured>
}

const rows: Array<Row> = []
const avg = (row: Row, f: (m: Measured) => number): number => mean(row.rounds.map(f)) ?? Number.NaN
const memoryRow = (scenario: ScenarioKey) => rows.find((r) => r.scenario === scenario && r.setup.key === "memory")

const scenarioLabel = (plan: Plan, scenario: ScenarioKey) =>
  scenario === "saturation"
    ? `saturation (window ${argValue(plan.scenarios.saturation, "--window")})`
    : `${argValue(plan.scenarios.rate, "--rate")} broadcasts/s`

const tableHeader = [
  "Scenario",
  "Setup",
  "Deliveries/s",
  "vs memory",
  "p50 (ms)",
  "p99 (ms)",
  "p99.9 (ms)",
  "Servers CPU %",
  "Redis CPU %",
  "Loadgen CPU %",
  "Machine CPU %"
]
const rightAligned = (column: number): boolean => column >= 2

const tableCells = (plan: Plan): Array<Array<string>> =>
  rows.map((row) => {
    const base = memoryRow(row.scenario)
    const rate = avg(row, (m) => m.rate)
    return [
      scenarioLabel(plan, row.scenario),
      row.setup.label,
      fmt(rate, 0),
      base === undefined || base === row ? "1.00×" : `${fmt(rate / avg(base, (m) => m.rate), 2)}×`,
      fmt(
        avg(row, (m) => m.p50Ms),
        2
      ),
      fmt(
        avg(row, (m) => m.p99Ms),
        2
      ),
      fmt(
        avg(row, (m) => m.p999Ms),
        2
      ),
      fmt(
        avg(row, (m) => m.serverCpu),
        0
      ),
      row.setup.backplane === "redis"
        ? fmt(
            avg(row, (m) => m.redisCpu),
            0
          )
        : "",
      fmt(
        avg(row, (m) => m.loadgenCpu),
        0
      ),
      fmt(
        avg(row, (m) => m.machineCpu),
        0
      )
    ]
  })

const perRoundLines = (): Array<string> =>
  rows.map(
    (row) =>
      `- ${row.scenario}, ${row.setup.label}: ${row.rounds.map((m) => `${fmt(m.rate, 0)} deliveries/s, p99 ${fmt(m.p99Ms, 2)} ms`).join("; ")} per round.`
  )

const markdown = (options: RunArgs, plan: Plan, info: ReturnType<typeof machine>): string =>
  [
    heading,
    "",
    `Run on ${info.date} with \`pnpm --filter @switchboard/app-bench backplane --${options.quick ? " --quick" : ""} --write docs/benchmarks.md\`${options.quick ? " (**quick** smoke-test settings, not the real numbers)" : ""}.`,
    "",
    `Machine: ${info.cpus} × ${info.cpu}, ${info.memory} RAM, ${info.kernel}, Node ${info.node}, redis-server on loopback. ` +
      `One publisher sends ${argValue(plan.scenarios.saturation, "--size")}-byte binary broadcasts to ` +
      `${argValue(plan.scenarios.saturation, "--subs")} subscribers (the publisher among them). With two servers, every ` +
      "second subscriber is on the second server: what it gets crossed Redis. **Nothing pinned**: the servers, " +
      "redis-server and the load generator share the cores, so two servers on this machine measure the cost of " +
      "crossing Redis, not the capacity of two machines. Servers CPU is the sum of the server processes; Machine " +
      `is the whole machine (${info.cpus}00 % = every core busy). Mean of ${plan.rounds} round(s), fresh servers each.`,
    "",
    ...markdownTable(tableHeader, tableCells(plan), rightAligned),
    "",
    ...perRoundLines(),
    "",
    problems.length === 0
      ? "No errors, lost or reordered messages, unexpected closes or server log errors were seen in this run."
      : "**Problems seen in this run:**",
    ...problems.map((p) => `- ${p.replaceAll("\n", "\n  ")}`),
    "",
    "<details><summary>Raw load generator results</summary>",
    "",
    "```",
    ...raws,
    "```",
    "",
    "</details>",
    ""
  ].join("\n")

const main = async (): Promise<void> => {
  const options = parseRunArgs(
    process.argv.slice(2),
    "node apps/bench/src/backplane.ts [--quick] [--write docs/benchmarks.md]"
  )
  requireNode24("apps/bench/src/backplane.ts")
  ensureLoadgen()
  const plan = plans[options.quick ? "quick" : "full"]
  const started = performance.now()
  const redis = await startRedisServer()
  try {
    for (const scenario of ["saturation", "rate"] as const) {
      const byKey = new Map<SetupKey, Array<Measured>>()
      for (let roundNo = 1; roundNo <= plan.rounds; roundNo++) {
        for (const setup of setups) {
          process.stderr.write(`backplane: ${scenario} on ${setup.label}, round ${roundNo} of ${plan.rounds}\n`)
          const servers: Array<NodeProcess> = []
          const each = Array.from({ length: setup.servers }, (_, i) => serverOptions(setup, scenario, i, redis))
          try {
            for (const one of each) servers.push(await startBenchServer(one))
            const measured = await measure(servers, redis, setup, scenario, plan)
            byKey.set(setup.key, [...(byKey.get(setup.key) ?? []), measured])
          } catch (error) {
            problems.push(`${setup.label} (${scenario}): ${error instanceof Error ? error.message : String(error)}`)
          } finally {
            await Promise.all(
              servers.map((server, i) => stopBenchServer(server, serverOptions(setup, scenario, i, redis), problems))
            )
          }
        }
      }
      for (const setup of setups) rows.push({ scenario, setup, rounds: byKey.get(setup.key) ?? [] })
    }
  } finally {
    await redis.stop()
  }
  const info = machine()
  process.stdout.write(`\n${consoleTable(tableHeader, tableCells(plan), rightAligned)}\n`)
  process.stdout.write(
    `${info.cpus} × ${info.cpu}, Node ${info.node}, ${info.date}, ${Math.round((performance.now() - started) / 1000)} s, not pinned\n`
  )
  if (problems.length > 0) process.stdout.write(`\nProblems:\n${problems.map((p) => `- ${p}`).join("\n")}\n`)
  if (options.write !== undefined) {
    writeSection(options.write, heading, markdown(options, plan, info))
    process.stdout.write(`\nwrote "Backplane" to ${Path.relative(process.cwd(), options.write) || options.write}\n`)
  }
  if (problems.length > 0) process.exitCode = 1
}

await main()
