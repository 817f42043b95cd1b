/**
 * What permessage-deflate costs: server memory per connection at 10,000
 * connections (idle, and after one compressed message each way), and
 * broadcast deliveries/s to 1,000 subscribers with 1 KiB JSON messages —
 * Switchboard (apps/bench/src/server.ts) and plain ws
 * (apps/bench/src/baseline-ws.ts) with compression off, on (ws's defaults:
 * context takeover) and `nocontext` (no context takeover either way), in
 * one run.
 *
 *   node apps/bench/src/compression.ts [--conns 10000] [--subscribers 1000] [--messages 200] [--quick] [--write docs/benchmarks.md]
 *
 * The clients are raw TCP sockets in this process: they offer
 * `permessage-deflate; client_max_window_bits`, send frames compressed once
 * with zlib (so the client side costs next to nothing) and count the
 * frames they receive without inflating them; one subscriber per case
 * inflates and checks every broadcast. Server RSS comes from
 * /proc/<pid>/status after a 2 s settle; CPU from /proc/<pid>/stat.
 */
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import type { NodeProcess } from "../../../test-support/process.ts"
import {
  benchDir,
  consoleTable,
  cpuPercent,
  fail,
  fmt,
  logDir,
  machine,
  markdownTable,
  readProc,
  repoRoot,
  requireNode24,
  startBenchServer,
  stopBenchServer,
  writeSection
} from "./harness.ts"

requireNode24("compression.ts")

const argv = process.argv.slice(2)
const flag = (name: string, fallback: number) => {
  const at = argv.indexOf(name)
  const value = at < 0 ? fallback : Number(argv[at + 1])
  if (!Number.isInteger(value) || value < 1) fail(`${name}: a positive integer, got ${argv[at + 1]}`)
  return value
}
const quick = argv.includes("--quick")
const writeAt = argv.indexOf("--write")
const write = writeAt < 0 ? undefined : Path.resolve(repoRoot, argv[writeAt + 1] ?? "docs/benchmarks.md")
const conns = flag("--conns", quick ? 1000 : 10_000)
const subscribers = flag("--subscribers", quick ? 200 : 1000)
const messages = flag("--messages", quick ? 50 : 200)

type Mode = "off" | "on" | "nocontext"
interface Setup {
  readonly label: string
  readonly script: string
  readonly ready: RegExp
  readonly mode: Mode
}
const setups: ReadonlyArray<Setup> = (["off", "on", "nocontext"] as const).flatMap((mode) => [
  {
    label: `Switchboard, compression ${mode}`,
    script: Path.join(benchDir, "src", "server.ts"),
    ready: /switchboard listening on ws:\/\/[\d.]+:(\d+)/,
    mode
  },
  {
    label: `plain ws, compression ${mode}`,
    script: Path.join(benchDir, "src", "baseline-ws.ts"),
    ready: /baseline ws listening on ws:\/\/[\d.]+:(\d+)/,
    mode
  }
])

// ---------------------------------------------------------------- raw clients

const TAIL_LENGTH = 4
const deflate = (payload: Buffer): Buffer =>
  Zlib.deflateRawSync(payload, { finishFlush: Zlib.constants.Z_SYNC_FLUSH }).subarray(0, -TAIL_LENGTH)

/** A masked client frame (mask 0: the bytes stay as they are). */
const clientFrame = (opcode: number, payload: Buffer, compressed: boolean): Buffer => {
  const length = payload.length
  const header = length < 126 ? 6 : length < 65536 ? 8 : 14
  const frame = Buffer.alloc(header + length)
  frame[0] = 0x80 | (compressed ? 0x40 : 0) | opcode
  if (length < 126) frame[1] = 0x80 | length
  else if (length < 65536) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(length, 6)
  }
  payload.copy(frame, header)
  return frame
}

/** Counts the server's frames; keeps the payloads only when asked (one checking subscriber per case). */
class Client {
  frames = 0
  compressed = false
  readonly kept: Array<{ readonly rsv1: boolean; readonly payload: Buffer }> = []
  private pending: Buffer = Buffer.alloc(0)
  private skip = 0
  private keeping: Array<Buffer> | undefined
  private keepingRsv1 = false
  private waiters: Array<() => void> = []
  readonly socket: Net.Socket
  readonly keep: boolean
  constructor(socket: Net.Socket, keep: boolean) {
    this.socket = socket
    this.keep = keep
  }
  push(chunk: Buffer): void {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length)
        this.keeping?.push(buf.subarray(0, n))
        this.skip -= n
        buf = buf.subarray(n)
        if (this.skip === 0) this.endFrame()
        if (buf.length === 0) break
        continue
      }
      if (buf.length < 2) break
      const short = buf[1]! & 0x7f
      const header = short < 126 ? 2 : short === 126 ? 4 : 10
      if (buf.length < header) break
      const length = short < 126 ? short : short === 126 ? buf.readUInt16BE(2) : buf.readUInt32BE(6)
      const rsv1 = (buf[0]! & 0x40) !== 0
      buf = buf.subarray(header)
      this.keeping = this.keep ? [] : undefined
      this.keepingRsv1 = rsv1
      this.skip = length
      if (length === 0) this.endFrame()
    }
    this.pending = Buffer.from(buf)
  }
  private endFrame(): void {
    this.frames++
    if (this.keeping !== undefined) this.kept.push({ rsv1: this.keepingRsv1, payload: Buffer.concat(this.keeping) })
    this.keeping = undefined
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }
  until(frames: number, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs
      const check = () => {
        if (this.frames >= frames) return resolve()
        if (Date.now() > deadline || this.socket.destroyed)
          return reject(new Error(`got ${this.frames} of ${frames} frames`))
        this.waiters.push(check)
        setTimeout(check, 1_000).unref()
      }
      check()
    })
  }
}

const open = (port: number, path: string, keep = false): Promise<Client> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ port, host: "127.0.0.1", noDelay: true })
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf("\r\n\r\n")
      if (end < 0) return
      socket.off("data", onData)
      const text = head.subarray(0, end).toString("latin1")
      if (!text.startsWith("HTTP/1.1 101")) return reject(new Error(text.split("\r\n")[0]))
      const client = new Client(socket, keep)
      client.compressed = /sec-websocket-extensions:\s*permessage-deflate/i.test(text)
      socket.on("data", (data: Buffer) => client.push(data))
      if (head.length > end + 4) client.push(head.subarray(end + 4))
      resolve(client)
    }
    socket.on("data", onData)
    socket.once("error", reject)
    socket.once("connect", () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
      )
    )
  })

const openMany = async (port: number, path: string, count: number): Promise<Array<Client>> => {
  const clients: Array<Client> = []
  for (let i = 0; i < count; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => open(port, path)))
    clients.push(...batch)
  }
  return clients
}

const closeAll = (clients: ReadonlyArray<Client>) => {
  for (const client of clients) client.socket.destroy()
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A JSON document of `bytes` bytes, as a chat or a dashboard sends. */
const json = (bytes: number, seed: number): Buffer => {
  const items: Array<unknown> = []
  let text = ""
  for (let i = 0; text.length < bytes; i++) {
    items.push({
      id: seed * 1000 + i,
      user: `user${(seed + i) % 97}`,
      text: "hello from the bench",
      at: 1733500000 + i
    })
    text = JSON.stringify(items)
  }
  return Buffer.from(`${text.slice(0, bytes - 1)}]`)
}

// ---------------------------------------------------------------- cases

interface Result {
  readonly setup: Setup
  readonly negotiated: boolean
  readonly baseKb: number
  readonly idleKbPerConn: number
  readonly activeKbPerConn: number
  readonly deliveriesPerSec: number
  readonly serverCpu: number
  readonly wireBytesPerMessage: number
}

const memory = async (server: NodeProcess) => {
  await sleep(2_000)
  const base = readProc(server.pid)!.rssKb
  const clients = await openMany(server.port, "/echo", conns)
  await sleep(2_000)
  const idle = readProc(server.pid)!.rssKb
  const message = json(2048, 1)
  const compressed = clients[0]!.compressed
  const frame = clientFrame(0x1, compressed ? deflate(message) : message, compressed)
  for (const client of clients) client.socket.write(frame)
  await Promise.all(clients.map((client) => client.until(1)))
  await sleep(2_000)
  const active = readProc(server.pid)!.rssKb
  closeAll(clients)
  return {
    negotiated: compressed,
    baseKb: base,
    idleKbPerConn: (idle - base) / conns,
    activeKbPerConn: (active - base) / conns
  }
}

const broadcast = async (server: NodeProcess) => {
  const checker = await open(server.port, "/broadcast", true)
  const clients = [checker, ...(await openMany(server.port, "/broadcast", subscribers - 1))]
  await sleep(1_000)
  const publisher = clients[1]!
  const compressed = publisher.compressed
  const documents = Array.from({ length: messages }, (_, i) => json(1024, i))
  const frames = documents.map((doc) => clientFrame(0x1, compressed ? deflate(doc) : doc, compressed))
  const wireBefore = checker.socket.bytesRead
  const from = readProc(server.pid)
  const started = performance.now()
  // at most 8 broadcasts ahead of the slowest... of the publisher's own copy
  for (let i = 0; i < frames.length; i++) {
    publisher.socket.write(frames[i]!)
    if (i >= 8) await publisher.until(i - 7)
  }
  await Promise.all(clients.map((client) => client.until(messages, 60_000)))
  const elapsed = performance.now() - started
  const to = readProc(server.pid)
  // the checking subscriber inflates each broadcast (in order, one stream: context takeover or not)
  const inflater = Zlib.createInflateRaw()
  const inflated: Array<Buffer> = []
  for (const { rsv1, payload } of checker.kept) {
    if (!rsv1) {
      inflated.push(payload)
      continue
    }
    inflated.push(
      await new Promise<Buffer>((resolve) => {
        const chunks: Array<Buffer> = []
        const onData = (chunk: Buffer) => chunks.push(chunk)
        inflater.on("data", onData)
        inflater.write(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]))
        inflater.flush(Zlib.constants.Z_SYNC_FLUSH, () => {
          inflater.off("data", onData)
          resolve(Buffer.concat(chunks))
        })
      })
    )
  }
  inflater.close()
  for (let i = 0; i < messages; i++) {
    if (!inflated[i]?.equals(documents[i]!)) fail(`broadcast ${i} arrived wrong at the checking subscriber`)
  }
  const wireBytesPerMessage = (checker.socket.bytesRead - wireBefore) / messages
  closeAll(clients)
  return {
    deliveriesPerSec: (subscribers * messages) / (elapsed / 1000),
    serverCpu: cpuPercent(from, to) ?? Number.NaN,
    wireBytesPerMessage
  }
}

const results: Array<Result> = []
const problems: Array<string> = []
for (const setup of setups) {
  const options = {
    script: setup.script,
    env: { COMPRESSION: setup.mode },
    ready: setup.ready,
    label: setup.label,
    logFile: Path.join(logDir, `compression-${setup.label.replaceAll(/[ ,]+/g, "-")}.log`)
  }
  process.stderr.write(`compression: ${setup.label}\n`)
  const server = await startBenchServer(options)
  try {
    const mem = await memory(server)
    const fan = await broadcast(server)
    if (mem.negotiated !== (setup.mode !== "off")) fail(`${setup.label}: compression negotiated: ${mem.negotiated}`)
    results.push({ setup, ...mem, ...fan })
  } finally {
    await stopBenchServer(server, options, problems)
  }
}
if (problems.length > 0) fail(problems.join("\n"))

const header = [
  "Server",
  "RSS before, MiB",
  `KB per idle connection (${conns})`,
  "KB per connection after one 2 KiB message each way",
  `broadcast deliveries/s (${subscribers} subscribers, 1 KiB JSON)`,
  "server CPU, % of a core",
  "bytes on the wire per broadcast"
]
const body = results.map((r) => [
  r.setup.label,
  fmt(r.baseKb / 1024, 1),
  fmt(r.idleKbPerConn, 1),
  fmt(r.activeKbPerConn, 1),
  fmt(r.deliveriesPerSec, 0),
  fmt(r.serverCpu, 0),
  fmt(r.wireBytesPerMessage, 0)
])
const right = (column: number) => column > 0
console.log(consoleTable(header, body, right))
const m = machine()
const pick = (mode: Mode) => results.find((r) => r.setup.mode === mode && r.setup.label.startsWith("Switchboard"))
const off = pick("off")
const on = pick("on")
const nocontext = pick("nocontext")
const zlibKb = off && on ? fmt(on.activeKbPerConn - off.activeKbPerConn, 0) : "?"
const wireShare = off && on ? fmt((100 * on.wireBytesPerMessage) / off.wireBytesPerMessage, 0) : "?"
const sharedWireShare = off && nocontext ? fmt((100 * nocontext.wireBytesPerMessage) / off.wireBytesPerMessage, 0) : "?"
const section = [
  "## Compression: what permessage-deflate costs",
  "",
  `Run ${m.date} on ${m.cpus} × ${m.cpu}, ${m.memory}, Node ${m.node} (\`node apps/bench/src/compression.ts\`${quick ? " --quick" : ""}).`,
  "",
  ...markdownTable(header, body, right),
  "",
  "- **Memory**: a compressed connection costs little until it sends or receives its first",
  "  compressed message; from then on it holds a zlib deflate and an inflate stream (here",
  `  ${zlibKb} KB more than uncompressed, at the defaults: window 15, memLevel 8), whether or not it`,
  "  takes over context. Lower `memLevel` and `serverMaxWindowBits` to shrink it, or leave",
  "  compression off on routes with many connections and small messages.",
  "- **Broadcasts with context takeover** compress once per subscriber on libuv's thread pool:",
  "  throughput falls to what zlib does on the machine, the same for Switchboard and plain `ws`.",
  "- **Broadcasts with `serverNoContextTakeover`**: the hub compresses once for every subscriber",
  "  (plain `ws` compresses once per client), at the price of a larger frame than with context",
  `  takeover, whose history makes repeated JSON shapes small (${sharedWireShare} % of the bytes against ${wireShare} %).`,
  "- Compression is worth it for large, compressible messages over slow links; for small or",
  "  binary messages it costs memory and CPU for little.",
  ""
].join("\n")
if (write !== undefined) writeSection(write, "## Compression: what permessage-deflate costs", section)
