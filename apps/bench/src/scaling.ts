/**
 * The scaling benchmark: the bench server (`server.ts`) with one reactor,
 * with two (`REACTORS=2`: reactor threads sharing the port through
 * `SO_REUSEPORT`), and — echo only — two single-reactor processes behind
 * `node:cluster`'s round-robin (`cluster.ts`), in the same run, driven by the
 * C load generator.
 *
 *   node apps/bench/src/scaling.ts [--quick] [--write docs/benchmarks.md]
 *   pnpm --filter @switchboard/app-bench scaling -- --write docs/benchmarks.md
 *
 * Nothing is pinned: the point is to let the server use every core, and the
 * load generator (one thread) shares them. So each row states the server's CPU
 * (every thread and, for the cluster, every process), the load generator's
 * and the whole machine's, and the server's CPU time per delivered message:
 * the per-core efficiency that shows what a second reactor costs when the
 * cores, not the server, are the limit. Scenarios run in rounds, each on
 * freshly started servers, setups alternating; rows report the mean. A
 * relative `--write` path is resolved against the repository root; the file's
 * "## Scaling" section is replaced and every other line kept.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { NodeProcess } from "../../../test-support/process.ts"
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

type ScenarioName = "echo" | "broadcast"

interface Setup {
  readonly key: "one" | "two" | "cluster"
  readonly label: string
  readonly script: string
  readonly env: Readonly<Record<string, string>>
  /** The line that says every reactor (or process) listens; its group is the port. */
  readonly ready: RegExp
  readonly scenarios: ReadonlyArray<ScenarioName>
}

const serverScript = Path.join(benchDir, "src", "server.ts")

const setups: ReadonlyArray<Setup> = [
  {
    key: "one",
    label: "1 reactor",
    script: serverScript,
    env: { REACTORS: "1" },
    ready: /switchboard listening on ws:\/\/[\d.]+:(\d+)/,
    scenarios: ["echo", "broadcast"]
  },
  {
    key: "two",
    label: "2 reactors (threads, reusePort)",
    script: serverScript,
    env: { REACTORS: "2" },
    ready: /switchboard: 2 reactors listening on ws:\/\/[\d.]+:(\d+)/,
    scenarios: ["echo", "broadcast"]
  },
  {
    key: "cluster",
    label: "node:cluster, 2 processes (round-robin)",
    script: Path.join(benchDir, "src", "cluster.ts"),
    env: { CLUSTER_WORKERS: "2" },
    ready: /switchboard cluster: 2 workers listening on ws:\/\/[\d.]+:(\d+)/,
    scenarios: ["echo"]
  }
]

interface Plan {
  readonly echo: ReadonlyArray<string>
  readonly broadcast: ReadonlyArray<string>
  readonly rounds: number
}

const args = (line: string): ReadonlyArray<string> => line.split(" ")

const plans: Readonly<Record<"full" | "quick", Plan>> = {
  full: {
    echo: args("echo --path /echo --conns 100 --inflight 16 --size 32 --seconds 10 --warmup 3"),
    broadcast: args("broadcast --path /broadcast --subs 1000 --size 64 --window 32 --seconds 10 --warmup 3"),
    rounds: 3
  },
  quick: {
    echo: args("echo --path /echo --conns 50 --inflight 16 --size 32 --seconds 3 --warmup 1"),
    broadcast: args("broadcast --path /broadcast --subs 200 --size 64 --window 32 --seconds 3 --warmup 1"),
    rounds: 1
  }
}

const problems: Array<string> = []
const raws: Array<string> = []

// ---------------------------------------------------------------------------
// sampling a server: every process of it, and its reactor threads

/** The pids of `pid` and of its descendants (a cluster's worker processes). */
const processTree = (pid: number): Array<number> => {
  const children: Array<number> = []
  try {
    for (const task of Fs.readdirSync(`/proc/${pid}/task`)) {
      const listed = Fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim()
      for (const child of listed.split(/\s+/)) if (child !== "") children.push(Number(child))
    }
  } catch {
    // the process is gone: no children
  }
  return [pid, ...children.flatMap(processTree)]
}

/** CPU ticks of every process of the tree, by pid (the tree is read at the first sample). */
const sampleTree = (pids: ReadonlyArray<number>): Map<number, ProcSample> => {
  const out = new Map<number, ProcSample>()
  for (const pid of pids) {
    const sample = readProc(pid)
    if (sample !== undefined) out.set(pid, sample)
  }
  return out
}

/** CPU ticks of each reactor thread (named `switchboard-reactor-N`, which /proc cuts to 15 characters). */
const reactorThreadTicks = (pid: number): Map<string, number> => {
  const out = new Map<string, number>()
  try {
    for (const task of Fs.readdirSync(`/proc/${pid}/task`)) {
      const stat = Fs.readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8")
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      if (!comm.startsWith("switchboard-rea")) continue
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      out.set(task, Number(fields[11]) + Number(fields[12]))
    }
  } catch {
    // gone
  }
  return out
}

interface Measured {
  readonly rate: number
  readonly p99Ms: number
  /** Every process and thread of the server, % of one core. */
  readonly serverCpu: number
  readonly loadgenCpu: number
  /** The whole machine, % of one core (200 = both cores of this machine busy). */
  readonly machineCpu: number
  /** CPU % of each server process (cluster) or reactor thread (threads), when there are several. */
  readonly split: ReadonlyArray<number>
  readonly result: LoadgenResult
}

const serverOptions = (setup: Setup, scenario: ScenarioName) => ({
  script: setup.script,
  env: setup.env,
  ready: setup.ready,
  label: `${setup.label} (${scenario})`,
  logFile: Path.join(logDir, `scaling-${scenario}-${setup.key}.log`)
})

const measure = async (server: NodeProcess, setup: Setup, scenario: ScenarioName, plan: Plan): Promise<Measured> => {
  const loadArgs = [...plan[scenario], "--port", String(server.port)]
  let pids: ReadonlyArray<number> = []
  let from: Map<number, ProcSample> = new Map()
  let to: Map<number, ProcSample> = new Map()
  let threadsFrom: Map<string, number> = new Map()
  let threadsTo: Map<string, number> = new Map()
  let loadgenFrom: ProcSample | undefined
  let loadgenTo: ProcSample | undefined
  let machineFrom = Number.NaN
  let machineTo = Number.NaN
  let window = { start: 0, end: 0 }
  const run = await runLoadgen(loadArgs, budget(loadArgs), {
    onLine: (line, pid) => {
      if (line === "phase measure") {
        pids = processTree(server.pid)
        from = sampleTree(pids)
        threadsFrom = reactorThreadTicks(server.pid)
        loadgenFrom = readProc(pid)
        machineFrom = machineBusyTicks()
        window = { start: performance.now(), end: 0 }
      } else if (line === "phase end") {
        to = sampleTree(pids)
        threadsTo = reactorThreadTicks(server.pid)
        loadgenTo = readProc(pid)
        machineTo = machineBusyTicks()
        window = { ...window, end: performance.now() }
      }
    }
  })
  const problem = healthProblem(plan[scenario], run.result)
  if (problem !== undefined) problems.push(`${setup.label} (${scenario}): ${problem}`)
  const perProcess = pids.map((pid) => cpuPercent(from.get(pid), to.get(pid)) ?? Number.NaN)
  const ms = window.end - window.start
  const pct = (ticks: number) => ((ticks / clockTicks) * 100_000) / ms
  const threadSplit = [...threadsTo].map(([task, ticks]) => pct(ticks - (threadsFrom.get(task) ?? ticks)))
  const measured: Measured = {
    rate: num(run.result, "rate"),
    p99Ms: num(run.result, "p99_us") / 1000,
    serverCpu: perProcess.reduce((a, b) => a + b, 0),
    loadgenCpu: cpuPercent(loadgenFrom, loadgenTo) ?? Number.NaN,
    machineCpu: pct(machineTo - machineFrom),
    // a cluster's primary only hands connections over: its workers are the reactors
    split: setup.key === "cluster" ? perProcess.slice(1) : threadSplit,
    result: run.result
  }
  raws.push(
    `${scenario} / ${setup.key}: ${JSON.stringify({
      ...run.result,
      server_cpu_pct: round(measured.serverCpu, 1),
      loadgen_cpu_pct: round(measured.loadgenCpu, 1),
      machine_cpu_pct: round(measured.machineCpu, 1),
      split_cpu_pct: measured.split.map((v) => round(v, 1))
    })}`
  )
  return measured
}

// ---------------------------------------------------------------------------
// the rows

interface Row {
  readonly scenario: ScenarioName
  readonly setup: Setup
  readonly rounds: ReadonlyArray<Measured>
}

const rows: Array<Row> = []

const avg = (row: Row, f: (m: Measured) => number): number => mean(row.rounds.map(f)) ?? Number.NaN

const baselineOf = (row: Row): Row | undefined =>
  rows.find((other) => other.scenario === row.scenario && other.setup.key === "one")

/** Server CPU time per delivered message, in µs: CPU % of one core × 10,000 / messages per second. */
const cpuPerMessage = (m: Measured): number => (m.serverCpu * 10_000) / m.rate

const unit = (scenario: ScenarioName) => (scenario === "echo" ? "round trips/s" : "deliveries/s")

const tableHeader = [
  "Scenario",
  "Setup",
  "Throughput",
  "vs 1 reactor",
  "p99 (ms)",
  "Server CPU %",
  "Split %",
  "Loadgen CPU %",
  "Machine CPU %",
  "Server CPU µs/msg"
]
const rightAligned = (column: number): boolean => column >= 2

const tableCells = (): Array<Array<string>> =>
  rows.map((row) => {
    const base = baselineOf(row)
    const rate = avg(row, (m) => m.rate)
    const splits = row.rounds.map((m) => m.split)
    const split =
      row.setup.key === "one" || splits.length === 0
        ? ""
        : (splits[0] ?? []).map((_, i) => fmt(mean(splits.map((s) => s[i] ?? Number.NaN)) ?? Number.NaN, 0)).join(" / ")
    return [
      row.scenario,
      row.setup.label,
      `${fmt(rate, 0)} ${unit(row.scenario)}`,
      base === undefined || base === row ? "1.00×" : `${fmt(rate / avg(base, (m) => m.rate), 2)}×`,
      fmt(
        avg(row, (m) => m.p99Ms),
        2
      ),
      fmt(
        avg(row, (m) => m.serverCpu),
        0
      ),
      split,
      fmt(
        avg(row, (m) => m.loadgenCpu),
        0
      ),
      fmt(
        avg(row, (m) => m.machineCpu),
        0
      ),
      fmt(avg(row, cpuPerMessage), 2)
    ]
  })

const perRoundLines = (): Array<string> =>
  rows.map(
    (row) =>
      `- ${row.scenario}, ${row.setup.label}: ${row.rounds.map((m) => fmt(m.rate, 0)).join(", ")} ${unit(row.scenario)} per round.`
  )

const targetLine = (): string => {
  const one = rows.find((r) => r.scenario === "echo" && r.setup.key === "one")
  const two = rows.find((r) => r.scenario === "echo" && r.setup.key === "two")
  if (one === undefined || two === undefined) return "- echo with 2 reactors: no result."
  const ratio = avg(two, (m) => m.rate) / avg(one, (m) => m.rate)
  const machineBusy = avg(two, (m) => m.machineCpu)
  return `- echo with 2 reactors: ${fmt(ratio, 2)}× one reactor against a target of ≥ 1.5×: ${ratio >= 1.5 ? "met" : "**missed**"}; the machine was ${fmt(machineBusy, 0)} % busy of ${machine().cpus}00 % (load generator included).`
}

// ---------------------------------------------------------------------------

const markdown = (options: RunArgs, info: ReturnType<typeof machine>): string =>
  [
    "## Scaling: several reactors on one port",
    "",
    `Run on ${info.date} with \`pnpm --filter @switchboard/app-bench scaling --${options.quick ? " --quick" : ""} --write docs/benchmarks.md\`${options.quick ? " (**quick** smoke-test settings, not the real numbers)" : ""}.`,
    "",
    `Machine: ${info.cpus} × ${info.cpu}, ${info.memory} RAM, ${info.kernel}, Node ${info.node}. ` +
      "**Nothing pinned**: server and load generator share the cores. Server CPU counts every thread (and every " +
      "process of the cluster); Split is each reactor's thread (or worker process); Machine is the whole machine " +
      `(${info.cpus}00 % = every core busy); µs/msg is the server's CPU time per round trip or delivery.`,
    "",
    ...markdownTable(tableHeader, tableCells(), rightAligned),
    "",
    targetLine(),
    ...perRoundLines(),
    "",
    problems.length === 0
      ? "No errors, lost messages, unexpected closes, restarts or server log errors were seen in this run."
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
    "node apps/bench/src/scaling.ts [--quick] [--write docs/benchmarks.md]"
  )
  requireNode24("apps/bench/src/scaling.ts")
  ensureLoadgen()
  const plan = plans[options.quick ? "quick" : "full"]
  const started = performance.now()
  for (const scenario of ["echo", "broadcast"] as const) {
    const taking = setups.filter((setup) => setup.scenarios.includes(scenario))
    const byKey = new Map<Setup["key"], Array<Measured>>()
    for (let roundNo = 1; roundNo <= plan.rounds; roundNo++) {
      for (const setup of taking) {
        process.stderr.write(`scaling: ${scenario} on ${setup.label}, round ${roundNo} of ${plan.rounds}\n`)
        let server: NodeProcess | undefined
        try {
          server = await startBenchServer(serverOptions(setup, scenario))
          const measured = await measure(server, setup, scenario, plan)
          byKey.set(setup.key, [...(byKey.get(setup.key) ?? []), measured])
        } catch (error) {
          problems.push(`${setup.label} (${scenario}): ${error instanceof Error ? error.message : String(error)}`)
        } finally {
          if (server !== undefined) await stopBenchServer(server, serverOptions(setup, scenario), problems)
        }
      }
    }
    for (const setup of taking) rows.push({ scenario, setup, rounds: byKey.get(setup.key) ?? [] })
  }
  const info = machine()
  process.stdout.write(`\n${consoleTable(tableHeader, tableCells(), rightAligned)}\n\n${targetLine()}\n`)
  process.stdout.write(
    `${info.cpus} × ${info.cpu}, Node ${info.node}, ${info.date}, ${Math.round((performance.now() - started) / 1000)} s, not pinned (${argValue(plan.echo, "--conns")} echo connections)\n`
  )
  if (problems.length > 0) process.stdout.write(`\nProblems:\n${problems.map((p) => `- ${p}`).join("\n")}\n`)
  if (options.write !== undefined) {
    writeSection(options.write, "## Scaling: several reactors on one port", markdown(options, info))
    process.stdout.write(`\nwrote "Scaling" to ${Path.relative(process.cwd(), options.write) || options.write}\n`)
  }
  if (problems.length > 0) process.exitCode = 1
}

await main()
