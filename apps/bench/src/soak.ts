/**
 * The soak: minutes of mixed, partly hostile load on the Switchboard bench
 * server (`server.ts`), watching whether the server's memory and file
 * descriptors drift. For the whole run, at once:
 *
 * - echo: a few clients on `/echo` at a modest rate, every reply checked;
 * - broadcast: subscribers on `/broadcast`, one of them publishing bursts,
 *   every delivery to a reading subscriber counted (a loss is an error);
 * - non-readers: raw clients that upgrade and never read, on `/broadcast`
 *   (the hub must drop for them) and on `/echo` after a burst (the echo
 *   sender must suspend), recycled now and then;
 * - churn: connections that close cleanly, are terminated after the
 *   upgrade, or are destroyed before, during or after the request, or send
 *   half a request and wait for the server's handshake timeout;
 * - garbage: clients that upgrade and send random bytes and random frame
 *   headers from a seeded PRNG (`SOAK_SEED`).
 *
 * Every few seconds it samples the server's VmRSS (/proc/<pid>/status) and
 * open descriptors (/proc/<pid>/fd) and prints a row; at the end it stops
 * the load, lets the server settle, and prints a verdict: RSS drift under
 * load, descriptors back at the idle baseline, and errors (server log lines
 * at ERROR/FATAL, an early exit, wrong echoes, lost broadcasts, unexpected
 * close codes). The exit code is 0 for PASS. Everything is on 127.0.0.1, the
 * number of open sockets is capped, and the run stops by itself (a watchdog
 * kills it SOAK_SECONDS + 90 s after the start whatever happens).
 *
 *   SOAK_SECONDS=120 SOAK_SAMPLE_SECONDS=5 SOAK_SEED=1 node apps/bench/src/soak.ts
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import WebSocket from "ws"
import { pollUntil, sleep } from "../../../test-support/poll.ts"
import { commandWorks, logTail, type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { mulberry32 } from "../../../test-support/random.ts"
import { clientFrame, closeCodeOf, parseServerFrames, upgradeRequest } from "../../../test-support/wire.ts"

const benchDir = Path.resolve(import.meta.dirname, "..")
const repoRoot = Path.resolve(benchDir, "../..")
const logDir = Path.join(benchDir, ".build", "logs")
const host = "127.0.0.1"

const envInt = (name: string, fallback: number, min: number, max: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`soak: ${name} must be an integer in ${min}..${max}, got ${raw}\n`)
    process.exit(2)
  }
  return value
}

const seconds = envInt("SOAK_SECONDS", 120, 10, 6 * 3600)
const sampleSeconds = envInt("SOAK_SAMPLE_SECONDS", 5, 1, 60)
const seed = envInt("SOAK_SEED", 1, 0, 2 ** 31)
/** SOAK_INSPECT=0 leaves the server's inspector off: no live-heap figures, RSS only. */
const inspectHeap = process.env.SOAK_INSPECT !== "0"

/** The load, per second unless said otherwise: modest, so that the server is soaked, not saturated. */
const load = {
  echoClients: 20,
  echoPerClient: 20,
  subscribers: 50,
  /** Each burst is this many 2 KiB messages, from one publisher. */
  burst: 20,
  bursts: 5,
  nonReadersBroadcast: 3,
  nonReadersEcho: 2,
  /** A non-reader is replaced after this many seconds. */
  nonReaderLifetime: 20,
  churn: 40,
  maxChurnOpen: 200,
  garbage: 10,
  maxGarbageOpen: 50
}

// ---------------------------------------------------------------------------
// counters

const errors: Array<string> = []
const error = (message: string): void => {
  if (errors.length < 50) errors.push(message)
  else if (errors.length === 50) errors.push("(more errors not shown)")
}

const counts = {
  echoSent: 0,
  echoReceived: 0,
  echoSkipped: 0,
  published: 0,
  delivered: 0,
  nonReaderCycles: 0,
  churnDone: 0,
  churnHung: 0,
  garbageDone: 0,
  garbageLingered: 0
}
const garbageOutcomes = new Map<string, number>()
let latencies: Array<number> = []
let stopping = false

// ---------------------------------------------------------------------------
// the server

const pinning = Os.availableParallelism() >= 2 && commandWorks("taskset", ["-V"])

interface Server {
  readonly process: NodeProcess
  readonly pid: number
  readonly port: number
  readonly logPath: string
}

const startServer = async (): Promise<Server> => {
  Fs.mkdirSync(logDir, { recursive: true })
  const logPath = Path.join(logDir, "soak-server.log")
  // the inspector (loopback, a free port) lets the soak force a GC and read the live heap
  const inspect = inspectHeap ? ["--inspect=127.0.0.1:0"] : []
  // extra node flags for the server only, e.g. SOAK_SERVER_FLAGS=--trace-gc
  const flags = (process.env.SOAK_SERVER_FLAGS ?? "").split(" ").filter((flag) => flag !== "")
  const server = await startNodeProcess(
    Path.join(benchDir, "src", "server.ts"),
    {},
    {
      cwd: repoRoot,
      logFile: logPath,
      timeoutMs: 20_000,
      name: "the server",
      nodeArgs: [...inspect, ...flags],
      ...(pinning ? { prefix: ["taskset", "-c", "0"] } : {})
    }
  )
  return { process: server, pid: server.pid, port: server.port, logPath }
}

/**
 * The server's live heap: through its inspector, a full GC and then
 * `Runtime.getHeapUsage`. RSS says what the process holds from the system,
 * which V8 grows in steps and returns late; the heap after a full GC is
 * what a leak would grow.
 */
interface Inspector {
  readonly liveHeap: () => Promise<number | undefined>
  readonly close: () => void
}

const inspectorUrl = async (logPath: string): Promise<string | undefined> => {
  const find = () => /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(logTail(logPath, 50))?.[1]
  return (await pollUntil(() => find() !== undefined, 5_000, 50)) ? find() : undefined
}

const connectInspector = async (url: string): Promise<Inspector | undefined> => {
  const ws = new WebSocket(url)
  const opened = await new Promise<boolean>((resolve) => {
    ws.once("open", () => resolve(true))
    ws.once("error", () => resolve(false))
  })
  if (!opened) return undefined
  let nextId = 0
  const pending = new Map<number, (result: unknown) => void>()
  ws.on("message", (data: Buffer) => {
    const reply: unknown = JSON.parse(data.toString())
    if (typeof reply !== "object" || reply === null || !("id" in reply) || typeof reply.id !== "number") return
    const done = pending.get(reply.id)
    pending.delete(reply.id)
    done?.("result" in reply ? reply.result : undefined)
  })
  const call = (method: string): Promise<unknown> =>
    new Promise((resolve) => {
      const id = ++nextId
      const timer = setTimeout(() => {
        pending.delete(id)
        resolve(undefined)
      }, 5_000)
      pending.set(id, (result) => {
        clearTimeout(timer)
        resolve(result)
      })
      ws.send(JSON.stringify({ id, method }))
    })
  return {
    liveHeap: async () => {
      if (ws.readyState !== WebSocket.OPEN) return undefined
      await call("HeapProfiler.collectGarbage")
      const usage = await call("Runtime.getHeapUsage")
      return typeof usage === "object" && usage !== null && "usedSize" in usage && typeof usage.usedSize === "number"
        ? usage.usedSize / 1024
        : undefined
    },
    close: () => ws.terminate()
  }
}

interface Sample {
  readonly at: number
  readonly rssKb: number
  readonly fds: number
  /** KiB of live heap after a forced full GC, when the inspector is on. */
  heapKb?: number | undefined
}

const sampleServer = (pid: number): Sample | undefined => {
  try {
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)
    return {
      at: performance.now(),
      rssKb: rss?.[1] === undefined ? 0 : Number(rss[1]),
      fds: Fs.readdirSync(`/proc/${pid}/fd`).length
    }
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------
// the garbage a seeded PRNG (test-support/random.ts) makes, as in packages/node/test/abuse-support.ts

const rng = mulberry32(seed)
const int = (below: number): number => Math.floor(rng() * below)
const randomBytes = (length: number): Buffer => {
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = int(256)
  return bytes
}

const randomFrame = (): Buffer => {
  const opcodes = [0x0, 0x1, 0x2, 0x3, 0x7, 0x8, 0x9, 0xa, 0xb, 0xf]
  const first = (rng() < 0.75 ? 0x80 : 0) | (rng() < 0.25 ? (1 + int(7)) << 4 : 0) | opcodes[int(opcodes.length)]!
  const masked = rng() < 0.85 ? 0x80 : 0
  const kind = rng()
  let declared: number
  let extended = Buffer.alloc(0)
  if (kind < 0.6) declared = int(126)
  else if (kind < 0.8) {
    declared = 126 + int(65536 - 126)
    extended = Buffer.alloc(2)
    extended.writeUInt16BE(declared)
  } else {
    const high = rng() < 0.3 ? 0x80000000 + int(0x7fffffff) : int(16)
    const low = int(0x100000000)
    declared = high * 0x100000000 + low
    extended = Buffer.alloc(8)
    extended.writeUInt32BE(high >>> 0, 0)
    extended.writeUInt32BE(low >>> 0, 4)
  }
  const second = masked | (extended.length === 0 ? declared : extended.length === 2 ? 126 : 127)
  const mask = masked === 0 ? Buffer.alloc(0) : randomBytes(4)
  const actual = Math.min(declared, rng() < 0.8 ? declared : int(declared + 1), 2048)
  const payload = rng() < 0.6 ? randomBytes(actual) : Buffer.alloc(actual, 0xff)
  return Buffer.concat([Buffer.from([first, second]), extended, mask, payload])
}

const garbage = (): Buffer => {
  if (rng() < 1 / 3) return randomBytes(1 + int(1024))
  const frames: Array<Buffer> = []
  const count = 1 + int(4)
  for (let i = 0; i < count; i++) frames.push(randomFrame())
  return Buffer.concat(frames)
}

// ---------------------------------------------------------------------------
// the workloads; each tracks its sockets so that the end of the run closes them all

const sockets = new Set<Net.Socket>()
const clients = new Set<WebSocket>()
const timers: Array<NodeJS.Timeout> = []
const every = (ms: number, run: () => void): void => {
  timers.push(setInterval(run, ms))
}

const track = (socket: Net.Socket): Net.Socket => {
  sockets.add(socket)
  socket.once("close", () => sockets.delete(socket))
  socket.on("error", () => {})
  return socket
}
const trackClient = (ws: WebSocket): WebSocket => {
  clients.add(ws)
  ws.once("close", () => clients.delete(ws))
  return ws
}

/** An echo client: sends text and binary in turn, checks every reply in order, reconnects if dropped. */
const echoClient = (port: number, id: number): void => {
  if (stopping) return
  const ws = trackClient(new WebSocket(`ws://${host}:${port}/echo`))
  const outstanding: Array<{ readonly body: string; readonly at: number }> = []
  let seq = 0
  let timer: NodeJS.Timeout | undefined
  ws.on("open", () => {
    timer = setInterval(() => {
      if (outstanding.length > 100) {
        counts.echoSkipped++
        return
      }
      const body = `e${id}:${seq++}:${"x".repeat(64)}`
      outstanding.push({ body, at: performance.now() })
      ws.send(seq % 2 === 0 ? body : Buffer.from(body))
      counts.echoSent++
    }, 1000 / load.echoPerClient)
  })
  ws.on("message", (data: Buffer) => {
    const expected = outstanding.shift()
    if (expected === undefined || data.toString() !== expected.body) {
      error(`echo ${id}: got ${data.toString().slice(0, 40)}, expected ${expected?.body.slice(0, 40) ?? "nothing"}`)
      return
    }
    counts.echoReceived++
    latencies.push(performance.now() - expected.at)
  })
  ws.on("error", (cause) => error(`echo ${id}: ${cause.message}`))
  ws.on("close", (code) => {
    clearInterval(timer)
    if (stopping) return
    error(`echo ${id}: closed by the server (${code}); reconnecting`)
    setTimeout(() => echoClient(port, id), 500)
  })
}

/** Subscribers on /broadcast; the first one publishes. Returns when all heard a probe. */
const broadcasters = async (port: number): Promise<void> => {
  const subscribers: Array<{ ws: WebSocket; last: number; probed: boolean }> = []
  for (let i = 0; i < load.subscribers; i++) {
    const ws = trackClient(new WebSocket(`ws://${host}:${port}/broadcast`))
    const subscriber = { ws, last: -1, probed: false }
    subscribers.push(subscriber)
    ws.on("message", (data: Buffer) => {
      const text = data.toString()
      if (text === "probe") return void (subscriber.probed = true)
      const n = Number(text.slice(2, text.indexOf(":", 2)))
      if (n !== subscriber.last + 1) error(`broadcast subscriber ${i}: got #${n} after #${subscriber.last}`)
      subscriber.last = n
      counts.delivered++
    })
    ws.on("error", (cause) => error(`broadcast subscriber ${i}: ${cause.message}`))
    ws.on("close", (code) => {
      if (!stopping) error(`broadcast subscriber ${i}: closed by the server (${code})`)
    })
  }
  await Promise.all(subscribers.map(({ ws }) => new Promise((resolve) => ws.once("open", resolve))))
  const publisher = subscribers[0]!.ws
  // subscribing happens in the actor's init, after the 101: wait until a probe reaches everyone
  const deadline = performance.now() + 10_000
  while (!subscribers.every((s) => s.probed) && performance.now() < deadline) {
    publisher.send("probe")
    await sleep(100)
  }
  if (!subscribers.every((s) => s.probed)) error("broadcast: not every subscriber heard the probe within 10 s")
  const filler = "b".repeat(2048)
  every(1000 / load.bursts, () => {
    if (publisher.readyState !== WebSocket.OPEN) return
    for (let i = 0; i < load.burst; i++) publisher.send(`b:${counts.published++}:${filler}`)
  })
  broadcastCheck = () => {
    const expected = counts.published - 1
    const behind = subscribers.filter((s) => s.last !== expected)
    if (behind.length > 0) {
      error(`broadcast: ${behind.length} subscriber(s) did not get every message (last #${expected})`)
    }
  }
}
let broadcastCheck: () => void = () => {}

/** A raw client that upgrades and never reads; on /echo it first sends a burst it will never read the answers to. */
const nonReader = (port: number, path: "/echo" | "/broadcast"): void => {
  if (stopping) return
  const socket = track(Net.connect(port, host, () => socket.write(upgradeRequest(path))))
  const onData = (chunk: Buffer) => {
    if (!chunk.toString("latin1").startsWith("HTTP/1.1 101")) {
      error(`non-reader on ${path}: ${chunk.toString("latin1").slice(0, 40)}`)
      return void socket.destroy()
    }
    socket.off("data", onData)
    socket.pause()
    if (path === "/echo") {
      const message = clientFrame(0x2, Buffer.alloc(125, 7))
      for (let i = 0; i < 20_000; i++) socket.write(message)
    }
  }
  socket.on("data", onData)
  const replace = setTimeout(() => {
    counts.nonReaderCycles++
    socket.destroy()
    nonReader(port, path)
  }, load.nonReaderLifetime * 1000)
  socket.once("close", () => clearTimeout(replace))
}

type ChurnKind = "clean" | "terminate" | "beforeRequest" | "midRequest" | "afterRequest" | "afterUpgrade" | "half"
const churnKinds: ReadonlyArray<ChurnKind> = [
  "clean",
  "clean",
  "terminate",
  "beforeRequest",
  "midRequest",
  "afterRequest",
  "afterUpgrade",
  "half"
]
let churnOpen = 0

const churnOnce = (port: number): void => {
  if (stopping || churnOpen >= load.maxChurnOpen) return
  churnOpen++
  const kind = churnKinds[int(churnKinds.length)]!
  let finished = false
  const finish = (hung: boolean) => {
    if (finished) return
    finished = true
    churnOpen--
    if (hung) counts.churnHung++
    else counts.churnDone++
  }
  if (kind === "clean" || kind === "terminate") {
    const ws = trackClient(new WebSocket(`ws://${host}:${port}/echo`))
    const timer = setTimeout(() => {
      ws.terminate()
      finish(true)
    }, 15_000)
    ws.on("open", () => {
      if (kind === "terminate") ws.terminate()
      else ws.send("hello")
    })
    ws.on("message", () => ws.close(1000))
    ws.on("error", (cause) => {
      if (!stopping) error(`churn ${kind}: ${cause.message}`)
    })
    ws.on("close", () => {
      clearTimeout(timer)
      finish(false)
    })
    return
  }
  const request = upgradeRequest("/echo")
  const socket = track(Net.connect(port, host))
  // "half" waits for the server's handshake timeout (10 s by default)
  const timer = setTimeout(() => {
    socket.destroy()
    finish(true)
  }, 15_000)
  socket.once("close", () => {
    clearTimeout(timer)
    finish(false)
  })
  socket.once("connect", () => {
    if (kind === "beforeRequest") socket.destroy()
    else if (kind === "midRequest") socket.write(request.slice(0, request.length >> 1), () => socket.destroy())
    else if (kind === "afterRequest") socket.write(request, () => socket.destroy())
    else if (kind === "half") socket.write(request.slice(0, request.length >> 1))
    else {
      socket.write(request)
      socket.on("data", () => socket.destroy())
    }
  })
}

let garbageOpen = 0
const garbageOnce = (port: number): void => {
  if (stopping || garbageOpen >= load.maxGarbageOpen) return
  garbageOpen++
  const bytes = garbage()
  const socket = track(Net.connect(port, host, () => socket.write(upgradeRequest("/echo"))))
  let received = Buffer.alloc(0)
  let bodyAt = -1
  let done = false
  const outcome = (what: string) => {
    if (done) return
    done = true
    garbageOpen--
    counts.garbageDone++
    garbageOutcomes.set(what, (garbageOutcomes.get(what) ?? 0) + 1)
  }
  // an incomplete frame leaves the server waiting for the rest: its keepalive (minutes) would end it
  const timer = setTimeout(() => {
    counts.garbageLingered++
    outcome("lingered (client gave up after 3 s)")
    socket.destroy()
  }, 3_000)
  socket.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk])
    if (bodyAt >= 0) return
    const end = received.indexOf("\r\n\r\n")
    if (end < 0) return
    if (!received.toString("latin1", 0, 12).startsWith("HTTP/1.1 101")) {
      error(`garbage: upgrade refused: ${received.toString("latin1", 0, 40)}`)
      return void socket.destroy()
    }
    bodyAt = end + 4
    socket.write(bytes)
  })
  socket.once("close", () => {
    clearTimeout(timer)
    if (bodyAt < 0) return outcome("no upgrade")
    const code = closeCodeOf(parseServerFrames(received.subarray(bodyAt)))
    if (code === undefined) return outcome("destroyed")
    // ws answers a well-formed close frame in the garbage with the peer's own code
    if (code !== 1002 && code !== 1007 && code !== 1009 && !bytes.includes(0x88)) {
      error(`garbage: unexpected close code ${code}`)
    }
    outcome(String(code))
  })
}

// ---------------------------------------------------------------------------
// reporting

const mib = (kb: number): string => (kb / 1024).toFixed(1)
const pad = (value: string | number, width: number): string => String(value).padStart(width)
const percentile = (values: Array<number>, p: number): number => {
  if (values.length === 0) return 0
  values.sort((a, b) => a - b)
  return values[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!
}

const columns = [
  ["t s", 5],
  ["rss MiB", 8],
  ["heap MiB", 9],
  ["fds", 6],
  ["open", 6],
  ["echo/s", 7],
  ["p99 ms", 7],
  ["deliv/s", 8],
  ["churn/s", 8],
  ["garb/s", 7],
  ["errors", 7]
] as const
const header = (): string => columns.map(([name, width]) => pad(name, width)).join(" ")

const main = async (): Promise<void> => {
  const started = performance.now()
  let server: Server | undefined
  const watchdog = setTimeout(
    () => {
      process.stderr.write("soak: watchdog: the run overran its bound; killing the server\n")
      server?.process.kill("SIGKILL")
      process.exit(3)
    },
    (seconds + 90) * 1000
  )
  watchdog.unref()
  server = await startServer()
  if (pinning && server.pid > 0) commandWorks("taskset", ["-a", "-pc", "1", String(process.pid)])
  const { port, pid } = server
  const url = inspectHeap ? await inspectorUrl(server.logPath) : undefined
  const inspector = url === undefined ? undefined : await connectInspector(url)
  if (inspectHeap && inspector === undefined) process.stderr.write("soak: no inspector on the server: RSS only\n")
  await sleep(500)
  const idle = sampleServer(pid)
  if (idle === undefined) throw new Error("cannot read /proc of the server")
  idle.heapKb = await inspector?.liveHeap()
  process.stdout.write(
    `soak: ${seconds} s on ws://${host}:${port} (server pid ${pid}${pinning ? ", pinned to CPU 0, driver CPU 1" : ""}), ` +
      `seed ${seed}; idle: ${mib(idle.rssKb)} MiB RSS, ${idle.heapKb === undefined ? "?" : mib(idle.heapKb)} MiB live heap, ` +
      `${idle.fds} fds${inspector === undefined ? "" : " (heap: after a full GC forced through the inspector at each sample)"}\n\n${header()}\n`
  )

  for (let i = 0; i < load.echoClients; i++) echoClient(port, i)
  await broadcasters(port)
  for (let i = 0; i < load.nonReadersBroadcast; i++) nonReader(port, "/broadcast")
  for (let i = 0; i < load.nonReadersEcho; i++) nonReader(port, "/echo")
  every(1000 / load.churn, () => churnOnce(port))
  every(1000 / load.garbage, () => garbageOnce(port))

  const samples: Array<Sample> = []
  let previous = { ...counts }
  let previousAt = performance.now()
  const end = started + seconds * 1000
  while (performance.now() < end && server.process.exitStatus() === undefined) {
    await sleep(Math.min(sampleSeconds * 1000, Math.max(0, end - performance.now())))
    const sample = sampleServer(pid)
    if (sample === undefined) break
    sample.heapKb = await inspector?.liveHeap()
    samples.push(sample)
    const dt = (sample.at - previousAt) / 1000
    const rate = (key: keyof typeof counts) => Math.round((counts[key] - previous[key]) / dt)
    const p99 = percentile(latencies, 99)
    latencies = []
    const row = [
      Math.round((sample.at - started) / 1000),
      mib(sample.rssKb),
      sample.heapKb === undefined ? "-" : mib(sample.heapKb),
      sample.fds,
      sockets.size + clients.size,
      rate("echoReceived"),
      p99.toFixed(1),
      rate("delivered"),
      rate("churnDone"),
      rate("garbageDone"),
      errors.length
    ]
    process.stdout.write(`${row.map((value, i) => pad(value, columns[i]![1])).join(" ")}\n`)
    previous = { ...counts }
    previousAt = sample.at
  }

  // stop the load, let the last replies and broadcasts arrive, then close everything
  stopping = true
  for (const timer of timers) clearInterval(timer)
  await sleep(1_000)
  if (server.process.exitStatus() === undefined) broadcastCheck()
  for (const ws of clients) ws.terminate()
  for (const socket of sockets) socket.destroy()
  // descriptors back at the idle baseline (closes are asynchronous: poll)
  let settled = sampleServer(pid)
  const settleDeadline = performance.now() + 15_000
  while (settled !== undefined && settled.fds > idle.fds + 5 && performance.now() < settleDeadline) {
    await sleep(250)
    settled = sampleServer(pid)
  }
  if (settled !== undefined) settled.heapKb = await inspector?.liveHeap()
  inspector?.close()

  const verdicts: Array<string> = []
  let pass = true
  const exited = server.process.exitStatus()
  if (exited !== undefined) {
    pass = false
    verdicts.push(`FAIL server exited during the run (code ${exited.code}, signal ${exited.signal})`)
  }
  // drift under load: the last third of the samples against the second (the first third warms up)
  const third = Math.floor(samples.length / 3)
  const drift = (
    what: string,
    value: (sample: Sample) => number | undefined,
    bound: (early: number) => number,
    note: string
  ): void => {
    const values = (xs: ReadonlyArray<Sample>) => xs.flatMap((x) => (value(x) === undefined ? [] : [value(x)!]))
    const mean = (xs: ReadonlyArray<number>) => xs.reduce((sum, x) => sum + x, 0) / xs.length
    const earlyValues = values(samples.slice(third, 2 * third))
    const lateValues = values(samples.slice(samples.length - third))
    if (third < 1 || earlyValues.length === 0 || lateValues.length === 0) {
      verdicts.push(`---- ${what} drift: too few samples (run longer)`)
      return
    }
    const early = mean(earlyValues)
    const late = mean(lateValues)
    const driftKb = late - early
    const minutes = (samples.at(-1)!.at - samples[third]!.at) / 60_000
    const limit = bound(early)
    const ok = driftKb <= limit
    if (!ok) pass = false
    const peak = Math.max(...values(samples))
    verdicts.push(
      `${ok ? "PASS" : "FAIL"} ${what} drift under load: ${mib(early)} → ${mib(late)} MiB (${driftKb >= 0 ? "+" : ""}${mib(driftKb)} MiB, ` +
        `${mib(driftKb / Math.max(minutes, 1 / 60))} MiB/min; bound +${mib(limit)} MiB); peak ${mib(peak)} MiB${note}`
    )
  }
  drift(
    "live heap",
    (sample) => sample.heapKb,
    (early) => Math.max(8 * 1024, early * 0.2),
    ""
  )
  // V8 grows the heap's reserve in steps and gives it back late: RSS gets a generous bound
  drift(
    "RSS",
    (sample) => sample.rssKb,
    (early) => Math.max(64 * 1024, early * 0.5),
    " (V8 reserves in steps)"
  )
  if (idle.heapKb !== undefined && settled?.heapKb !== undefined) {
    const grown = settled.heapKb - idle.heapKb
    const ok = grown <= 8 * 1024
    if (!ok) pass = false
    verdicts.push(
      `${ok ? "PASS" : "FAIL"} live heap after the load: ${mib(settled.heapKb)} MiB (idle ${mib(idle.heapKb)} MiB, ` +
        `${grown >= 0 ? "+" : ""}${mib(grown)} MiB; bound +8.0 MiB)`
    )
  }
  if (settled === undefined) {
    pass = false
    verdicts.push("FAIL fds: could not read the server's /proc after the load")
  } else {
    const ok = settled.fds <= idle.fds + 5
    if (!ok) pass = false
    verdicts.push(
      `${ok ? "PASS" : "FAIL"} fds after the load: ${settled.fds} (idle baseline ${idle.fds}, peak ${Math.max(...samples.map((s) => s.fds))}); ` +
        `RSS after the load ${mib(settled.rssKb)} MiB (idle ${mib(idle.rssKb)} MiB)`
    )
  }

  if ((await server.process.stop({ graceMs: 10_000 })) === "killed") {
    error("the server did not exit within 10 s of SIGTERM; killed")
  }
  const logLines = Fs.readFileSync(server.logPath, "utf8").split("\n")
  const logErrors = logLines.filter((line) => /\b(ERROR|FATAL)\b|Error:|exception/i.test(line))
  const logWarnings = logLines.filter((line) => /\bWARN/.test(line))
  for (const line of logErrors.slice(0, 5)) error(`server log: ${line.slice(0, 300)}`)
  if (errors.length > 0) pass = false
  verdicts.push(
    `${errors.length === 0 ? "PASS" : "FAIL"} errors: ${errors.length} (server log: ${logErrors.length} error line(s), ${logWarnings.length} warning(s); ` +
      `log ${Path.relative(repoRoot, server.logPath)})`
  )

  const wall = Math.round((performance.now() - started) / 1000)
  const outcomes = [...garbageOutcomes.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([what, n]) => `${what}: ${n}`)
    .join(", ")
  process.stdout.write(
    `\n${wall} s. Echo: ${counts.echoSent} sent, ${counts.echoReceived} checked, ${counts.echoSkipped} ticks skipped (100 in flight). ` +
      `Broadcast: ${counts.published} published, ${counts.delivered} delivered to ${load.subscribers} reading subscribers. ` +
      `Non-readers replaced: ${counts.nonReaderCycles}. Churn: ${counts.churnDone} connections (${counts.churnHung} hung). ` +
      `Garbage: ${counts.garbageDone} connections (${outcomes}).\n\n`
  )
  for (const verdict of verdicts) process.stdout.write(`${verdict}\n`)
  for (const message of errors) process.stdout.write(`  - ${message}\n`)
  process.stdout.write(`\nverdict: ${pass ? "PASS" : "FAIL"}\n`)
  clearTimeout(watchdog)
  process.exit(pass ? 0 : 1)
}

await main()
