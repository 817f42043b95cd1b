/**
 * Helpers for the fault and abuse suite (`abuse.integration.test.ts`): the
 * garbage a seeded PRNG (test-support/random.ts) makes, raw TCP clients that
 * misbehave on purpose (never read, send garbage, give up half-way; frames
 * and handshakes from test-support/wire.ts), a logger that records what the
 * server logs, and the process's open file descriptors. Everything targets
 * 127.0.0.1 and every wait is bounded (polling: test-support/poll.ts).
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import { Logger, type LogLevel } from "effect"
import { mulberry32 } from "../../../test-support/random.ts"
import { clientFrame, closeCodeOf, parseServerFrames, upgradeRequest } from "../../../test-support/wire.ts"

const int = (rng: () => number, below: number): number => Math.floor(rng() * below)

const randomBytes = (rng: () => number, length: number): Buffer => {
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = int(rng, 256)
  return bytes
}

/**
 * One frame header with random FIN, RSV bits, opcode (valid and reserved
 * ones), mask bit and length encoding (7, 16 and 64 bits, some far beyond
 * any limit), followed by a payload that is random bytes, invalid UTF-8 or
 * valid text, possibly shorter than the header claims.
 */
const randomFrame = (rng: () => number): Buffer => {
  const opcodes = [0x0, 0x1, 0x1, 0x2, 0x2, 0x3, 0x7, 0x8, 0x9, 0xa, 0xb, 0xf]
  const fin = rng() < 0.75 ? 0x80 : 0
  const rsv = rng() < 0.25 ? (1 + int(rng, 7)) << 4 : 0
  const opcode = opcodes[int(rng, opcodes.length)]!
  const masked = rng() < 0.85
  const kind = rng()
  let declared: number
  let lengthBytes: Buffer
  if (kind < 0.6) {
    declared = int(rng, 126)
    lengthBytes = Buffer.alloc(0)
  } else if (kind < 0.8) {
    declared = 126 + int(rng, 65536 - 126)
    lengthBytes = Buffer.alloc(2)
    lengthBytes.writeUInt16BE(declared)
  } else {
    // 64-bit lengths: some over any limit, some with the most significant bit set (invalid)
    const high = rng() < 0.3 ? 0x80000000 + int(rng, 0x7fffffff) : int(rng, 16)
    const low = int(rng, 0x100000000)
    declared = high * 0x100000000 + low
    lengthBytes = Buffer.alloc(8)
    lengthBytes.writeUInt32BE(high >>> 0, 0)
    lengthBytes.writeUInt32BE(low >>> 0, 4)
  }
  const second = (masked ? 0x80 : 0) | (lengthBytes.length === 0 ? declared : lengthBytes.length === 2 ? 126 : 127)
  const mask = masked ? randomBytes(rng, 4) : Buffer.alloc(0)
  const payloadKind = rng()
  const actual = Math.min(declared, rng() < 0.8 ? declared : int(rng, declared + 1), 2048)
  const payload =
    payloadKind < 0.5
      ? randomBytes(rng, actual)
      : payloadKind < 0.75
        ? Buffer.alloc(actual, 0xff) // never valid UTF-8
        : Buffer.from("é".repeat(Math.ceil(actual / 2))).subarray(0, actual)
  return Buffer.concat([Buffer.from([fin | rsv | opcode, second]), lengthBytes, mask, payload])
}

/**
 * The garbage one connection sends after its upgrade, from its own seed:
 * pure random bytes (a third of the connections), a run of random frame
 * headers, or a well-formed message followed by random frames.
 */
export const garbageFor = (seed: number): Buffer => {
  const rng = mulberry32(seed)
  const mode = int(rng, 3)
  if (mode === 0) return randomBytes(rng, 1 + int(rng, 1024))
  const frames: Array<Buffer> = mode === 2 ? [clientFrame(0x1, "well-formed first")] : []
  const count = 1 + int(rng, 4)
  for (let i = 0; i < count; i++) frames.push(randomFrame(rng))
  return Buffer.concat(frames)
}

/** How a misbehaving connection ended. */
export type Outcome =
  | { readonly _tag: "Closed"; readonly code: number }
  | { readonly _tag: "Destroyed" }
  | { readonly _tag: "Rejected"; readonly head: string }
  | { readonly _tag: "Hung" }

/**
 * Upgrades to `path`, sends `bytes`, then reads until the server ends the
 * connection, never answering a ping or a close frame (the socket is not
 * half-open: when the server ends its side, Node ends ours, like every TCP peer
 * would). `Hung` when the server kept it open for `timeoutMs`.
 */
export const garbageClient = (port: number, path: string, bytes: Buffer, timeoutMs: number): Promise<Outcome> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.write(upgradeRequest(path)))
    let received = Buffer.alloc(0)
    let bodyAt = -1
    let settled = false
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => settle({ _tag: "Hung" }), timeoutMs)
    socket.on("error", () => {})
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (bodyAt >= 0) return
      const end = received.indexOf("\r\n\r\n")
      if (end < 0) return
      const head = received.subarray(0, end).toString("latin1")
      if (!head.startsWith("HTTP/1.1 101")) return settle({ _tag: "Rejected", head })
      bodyAt = end + 4
      socket.write(bytes)
    })
    socket.on("close", () => {
      if (bodyAt < 0) return settle({ _tag: "Rejected", head: received.toString("latin1") })
      const code = closeCodeOf(parseServerFrames(received.subarray(bodyAt)))
      settle(code === undefined ? { _tag: "Destroyed" } : { _tag: "Closed", code })
    })
  })

/**
 * A client that upgrades, sends `bytes`, and then neither answers the
 * server's close frame nor closes its side of the TCP connection (it is
 * half-open: the server's FIN does not end it). `closeCode` is the code of
 * the server's close frame once it arrives.
 */
export const halfOpenClient = (
  port: number,
  path: string,
  bytes: Buffer
): Promise<{ readonly socket: Net.Socket; readonly closeCode: Promise<number | undefined> }> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () =>
      socket.write(upgradeRequest(path))
    )
    let received = Buffer.alloc(0)
    let bodyAt = -1
    let code: ((code: number | undefined) => void) | undefined
    const closeCode = new Promise<number | undefined>((done) => (code = done))
    socket.on("error", () => {})
    socket.on("end", () => code?.(closeCodeOf(parseServerFrames(received.subarray(Math.max(bodyAt, 0))))))
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (bodyAt >= 0) return
      const end = received.indexOf("\r\n\r\n")
      if (end < 0) return
      if (!received.toString("latin1", 0, end).startsWith("HTTP/1.1 101")) {
        socket.destroy()
        return reject(new Error(received.toString("latin1")))
      }
      bodyAt = end + 4
      socket.write(bytes)
      resolve({ socket, closeCode })
    })
  })

/** A client that completes the upgrade and then stops reading: the kernel's buffers fill, then the server's. */
export interface NonReader {
  readonly socket: Net.Socket
  readonly closed: Promise<void>
}

export const nonReadingUpgrade = (port: number, path: string, timeoutMs = 5_000): Promise<NonReader> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.write(upgradeRequest(path)))
    const closed = new Promise<void>((done) => socket.once("close", () => done()))
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error("no 101 in time"))
    }, timeoutMs)
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf("\r\n\r\n")
      if (end < 0) return
      clearTimeout(timer)
      socket.off("data", onData)
      // from here on nothing is consumed: once Node's own small buffer is full it stops reading the kernel's
      socket.pause()
      if (!head.toString("latin1").startsWith("HTTP/1.1 101")) return reject(new Error(head.toString("latin1")))
      resolve({ socket, closed })
    }
    socket.on("data", onData)
    socket.on("error", () => {})
  })

/** A log line the server emitted, as the capturing logger saw it. */
export interface LogLine {
  readonly level: LogLevel.LogLevel
  readonly message: string
}

/**
 * A logger that records every log line (and prints nothing), as a layer
 * that replaces the default loggers: provide it to the effect that builds
 * the server, whose fibers inherit it.
 */
export const captureLogs = () => {
  const lines: Array<LogLine> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    lines.push({ level: options.logLevel, message: parts.map(String).join(" ") })
  })
  return { lines, layer: Logger.layer([logger]) }
}

/** Open file descriptors of this process (the server runs in it). */
export const openFds = (): number => Fs.readdirSync("/proc/self/fd").length

/** One raw TCP connection that leaves in one of the ways a real client can, resolved once the socket is closed. */
export type ChurnKind =
  | "destroyBeforeRequest"
  | "destroyMidRequest"
  | "destroyAfterRequest"
  | "destroyAfterUpgrade"
  | "halfRequestThenWait"

export const churnOnce = (port: number, path: string, kind: ChurnKind, timeoutMs: number): Promise<"ok" | "hung"> =>
  new Promise((resolve) => {
    const request = upgradeRequest(path)
    const socket = Net.connect(port, "127.0.0.1")
    const timer = setTimeout(() => {
      socket.destroy()
      resolve("hung")
    }, timeoutMs)
    socket.on("error", () => {})
    socket.once("close", () => {
      clearTimeout(timer)
      resolve("ok")
    })
    socket.once("connect", () => {
      switch (kind) {
        case "destroyBeforeRequest":
          return void socket.destroy()
        case "destroyMidRequest":
          return void socket.write(request.slice(0, request.length >> 1), () => socket.destroy())
        case "destroyAfterRequest":
          return void socket.write(request, () => socket.destroy())
        case "destroyAfterUpgrade":
          socket.write(request)
          return void socket.on("data", (chunk: Buffer) => {
            if (chunk.toString("latin1").startsWith("HTTP/1.1 101")) socket.destroy()
          })
        case "halfRequestThenWait":
          // the server's handshake timeout must drop it
          return void socket.write(request.slice(0, request.length >> 1))
      }
    })
  })

/**
 * Writes `frame` over and over as fast as the server takes it (respecting
 * the socket's own backpressure, so the client buffers little), until the
 * server stops reading: no `drain` for `stallMs`. Bounded by `maxMs` and
 * `maxFrames`; `stalled` is false if a bound ended it.
 */
export const writeUntilStalled = (
  socket: Net.Socket,
  frame: Buffer,
  bounds: { readonly stallMs: number; readonly maxMs: number; readonly maxFrames: number }
): Promise<{ readonly frames: number; readonly stalled: boolean }> =>
  new Promise((resolve) => {
    const started = Date.now()
    let frames = 0
    const pump = (): void => {
      while (frames < bounds.maxFrames && Date.now() - started < bounds.maxMs && !socket.destroyed) {
        frames++
        if (!socket.write(frame)) {
          const onDrain = () => {
            clearTimeout(timer)
            pump()
          }
          const timer = setTimeout(() => {
            socket.off("drain", onDrain)
            resolve({ frames, stalled: true })
          }, bounds.stallMs)
          socket.once("drain", onDrain)
          return
        }
      }
      resolve({ frames, stalled: false })
    }
    pump()
  })
