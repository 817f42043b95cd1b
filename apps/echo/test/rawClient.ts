/**
 * A deliberately tiny WebSocket client for protocol tests: raw TCP
 * (`node:net`), a hand-written opening handshake and hand-built frames, so a
 * test can put any FIN/RSV/opcode/mask/length combination on the wire, and a
 * frame parser that reports exactly what the server sent (length encoding,
 * mask bit, RSV bits) instead of hiding it behind a WebSocket API.
 */
import { createHash, randomBytes } from "node:crypto"
import * as Net from "node:net"

/** The GUID of RFC 6455 §1.3, appended to the key to compute Sec-WebSocket-Accept. */
export const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** Frame opcodes of RFC 6455 §5.2. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa
} as const

/** What to put on the wire: every header field is under the test's control. */
export interface FrameSpec {
  readonly opcode: number
  readonly payload?: Uint8Array | string
  /** Default true. */
  readonly fin?: boolean
  readonly rsv1?: boolean
  readonly rsv2?: boolean
  readonly rsv3?: boolean
  /** Default true (RFC 6455 §5.3: a client masks every frame). */
  readonly masked?: boolean
}

/** A frame as the server sent it. */
export interface Frame {
  readonly fin: boolean
  readonly rsv1: boolean
  readonly rsv2: boolean
  readonly rsv3: boolean
  readonly opcode: number
  readonly masked: boolean
  /** How the payload length was encoded: 7-bit, 16-bit or 64-bit. */
  readonly lengthBits: 7 | 16 | 64
  readonly payload: Buffer
}

/** A data message reassembled from one or more frames. */
export interface Message {
  readonly opcode: number
  readonly payload: Buffer
  readonly frames: ReadonlyArray<Frame>
  /** Control frames that arrived between the message's fragments. */
  readonly controls: ReadonlyArray<Frame>
}

const toBytes = (payload: Uint8Array | string | undefined): Uint8Array =>
  payload === undefined ? new Uint8Array(0) : typeof payload === "string" ? Buffer.from(payload, "utf8") : payload

/** Encodes one frame; the payload length always uses the minimal encoding. */
export const encodeFrame = (spec: FrameSpec): Buffer => {
  const payload = toBytes(spec.payload)
  const masked = spec.masked ?? true
  const length = payload.byteLength
  const lengthBytes = length < 126 ? 0 : length <= 0xffff ? 2 : 8
  const headerLength = 2 + lengthBytes + (masked ? 4 : 0)
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame.writeUInt8(
    ((spec.fin ?? true) ? 0x80 : 0) |
      (spec.rsv1 === true ? 0x40 : 0) |
      (spec.rsv2 === true ? 0x20 : 0) |
      (spec.rsv3 === true ? 0x10 : 0) |
      (spec.opcode & 0x0f),
    0
  )
  const maskBit = masked ? 0x80 : 0
  if (lengthBytes === 0) {
    frame.writeUInt8(maskBit | length, 1)
  } else if (lengthBytes === 2) {
    frame.writeUInt8(maskBit | 126, 1)
    frame.writeUInt16BE(length, 2)
  } else {
    frame.writeUInt8(maskBit | 127, 1)
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  frame.set(payload, headerLength)
  if (masked) {
    const mask = randomBytes(4)
    mask.copy(frame, headerLength - 4)
    applyMask(frame.subarray(headerLength), mask)
  }
  return frame
}

/** XORs `data` in place with the 4-byte `mask` (RFC 6455 §5.3). */
export const applyMask = (data: Buffer, mask: Buffer): void => {
  const m0 = mask[0]!
  const m1 = mask[1]!
  const m2 = mask[2]!
  const m3 = mask[3]!
  const end = data.length - (data.length % 4)
  let i = 0
  for (; i < end; i += 4) {
    data[i] = data[i]! ^ m0
    data[i + 1] = data[i + 1]! ^ m1
    data[i + 2] = data[i + 2]! ^ m2
    data[i + 3] = data[i + 3]! ^ m3
  }
  for (; i < data.length; i++) data[i] = data[i]! ^ mask[i % 4]!
}

/** The payload of a close frame: a 2-byte code and an optional reason. */
export const closePayload = (code: number, reason: Uint8Array | string = ""): Buffer => {
  const reasonBytes = toBytes(reason)
  const payload = Buffer.allocUnsafe(2 + reasonBytes.byteLength)
  payload.writeUInt16BE(code, 0)
  payload.set(reasonBytes, 2)
  return payload
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export const acceptFor = (key: string): string =>
  createHash("sha1")
    .update(key + GUID)
    .digest("base64")

/** Parses server frames out of a byte stream that arrives in arbitrary TCP chunks. */
export class FrameParser {
  private chunks: Array<Buffer> = []
  private buffered = 0

  /** Adds a chunk and returns every frame it completed. */
  push(chunk: Buffer): Array<Frame> {
    if (chunk.length > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.length
    }
    const frames: Array<Frame> = []
    for (let frame = this.next(); frame !== undefined; frame = this.next()) frames.push(frame)
    return frames
  }

  /** Bytes received that do not form a complete frame yet. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** Copies the first `n` buffered bytes without consuming them. */
  private peek(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let offset = 0
    for (const chunk of this.chunks) {
      if (offset >= n) break
      const part = chunk.subarray(0, n - offset)
      out.set(part, offset)
      offset += part.length
    }
    return out
  }

  /** Consumes the first `n` buffered bytes. */
  private take(n: number): Buffer {
    const parts: Array<Buffer> = []
    let remaining = n
    while (remaining > 0) {
      const chunk = this.chunks[0]!
      if (chunk.length <= remaining) {
        parts.push(chunk)
        this.chunks.shift()
        remaining -= chunk.length
      } else {
        parts.push(chunk.subarray(0, remaining))
        this.chunks[0] = chunk.subarray(remaining)
        remaining = 0
      }
    }
    this.buffered -= n
    return parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, n)
  }

  private next(): Frame | undefined {
    if (this.buffered < 2) return undefined
    const head = this.peek(Math.min(this.buffered, 14))
    const b0 = head.readUInt8(0)
    const b1 = head.readUInt8(1)
    const masked = (b1 & 0x80) !== 0
    let length = b1 & 0x7f
    let lengthBits: 7 | 16 | 64 = 7
    let offset = 2
    if (length === 126) {
      if (head.length < 4) return undefined
      length = head.readUInt16BE(2)
      lengthBits = 16
      offset = 4
    } else if (length === 127) {
      if (head.length < 10) return undefined
      const big = head.readBigUInt64BE(2)
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`frame length ${big} is not supported`)
      length = Number(big)
      lengthBits = 64
      offset = 10
    }
    let mask: Buffer | undefined
    if (masked) {
      if (head.length < offset + 4) return undefined
      mask = head.subarray(offset, offset + 4)
      offset += 4
    }
    if (this.buffered < offset + length) return undefined
    const payload = this.take(offset + length).subarray(offset)
    if (mask !== undefined) applyMask(payload, mask)
    return {
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      rsv2: (b0 & 0x20) !== 0,
      rsv3: (b0 & 0x10) !== 0,
      opcode: b0 & 0x0f,
      masked,
      lengthBits,
      payload
    }
  }
}

/** Rejects with `label` when `promise` does not settle within `ms`. */
export const withTimeout = <A>(promise: Promise<A>, ms: number, label: string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The server's answer to the opening handshake. */
export interface HandshakeResponse {
  readonly statusLine: string
  readonly status: number
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>
  readonly key: string
}

export interface ConnectOptions {
  readonly port: number
  readonly host: string
  /** Default "/echo". */
  readonly path?: string
  /** Default 5000 ms. */
  readonly timeoutMs?: number
  /** A `Sec-WebSocket-Extensions` offer (e.g. `permessage-deflate; client_max_window_bits`); none by default. */
  readonly extensions?: string
}

interface Waiter {
  readonly resolve: (frame: Frame) => void
  readonly reject: (error: Error) => void
}

/** One raw WebSocket connection. */
export class RawClient {
  readonly socket: Net.Socket
  readonly handshake: HandshakeResponse
  /** The path it connected to. */
  readonly path: string
  /** Resolves when the server half-closes TCP (its FIN arrived). */
  readonly ended: Promise<void>
  /** Resolves when the TCP socket is fully closed. */
  readonly closed: Promise<void>
  /** The first socket error, if any (a reset after the close handshake, say). */
  error: Error | undefined = undefined
  private readonly parser = new FrameParser()
  private readonly queue: Array<Frame> = []
  private readonly waiters: Array<Waiter> = []
  private isClosed = false

  private constructor(socket: Net.Socket, handshake: HandshakeResponse, rest: Buffer, path: string) {
    this.socket = socket
    this.handshake = handshake
    this.path = path
    this.ended = new Promise<void>((resolve) => socket.once("end", () => resolve()))
    this.closed = new Promise<void>((resolve) => {
      socket.once("close", () => {
        this.isClosed = true
        for (const waiter of this.waiters.splice(0)) {
          waiter.reject(new Error("the connection closed before the expected frame arrived"))
        }
        resolve()
      })
    })
    socket.on("error", (error) => {
      this.error ??= error
    })
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    if (rest.length > 0) this.onData(rest)
  }

  /** Opens TCP, performs the opening handshake and checks the 101 answer. */
  static connect(options: ConnectOptions): Promise<RawClient> {
    const key = randomBytes(16).toString("base64")
    const path = options.path ?? "/echo"
    const timeoutMs = options.timeoutMs ?? 5000
    return new Promise<RawClient>((resolve, reject) => {
      const socket = Net.connect({ port: options.port, host: options.host, noDelay: true })
      let head = Buffer.alloc(0)
      const fail = (error: Error) => {
        clearTimeout(timer)
        socket.destroy()
        reject(error)
      }
      const timer = setTimeout(() => fail(new Error(`handshake timed out after ${timeoutMs} ms`)), timeoutMs)
      const onError = (error: Error) => fail(error)
      const onClose = () => fail(new Error("the connection closed during the handshake"))
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf("\r\n\r\n")
        if (end < 0) {
          if (head.length > 16 * 1024) fail(new Error("handshake response too long"))
          return
        }
        clearTimeout(timer)
        socket.off("data", onData)
        socket.off("error", onError)
        socket.off("close", onClose)
        const lines = head.subarray(0, end).toString("latin1").split("\r\n")
        const statusLine = lines[0] ?? ""
        const headers = new Map<string, string>()
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":")
          if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
        }
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN)
        resolve(new RawClient(socket, { statusLine, status, headers, key }, head.subarray(end + 4), path))
      }
      socket.on("data", onData)
      socket.once("error", onError)
      socket.once("close", onClose)
      socket.once("connect", () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\n` +
            `Host: ${options.host}:${options.port}\r\n` +
            "Upgrade: websocket\r\n" +
            "Connection: Upgrade\r\n" +
            `Sec-WebSocket-Key: ${key}\r\n` +
            "Sec-WebSocket-Version: 13\r\n" +
            (options.extensions === undefined ? "" : `Sec-WebSocket-Extensions: ${options.extensions}\r\n`) +
            "\r\n"
        )
      })
    })
  }

  private onData(chunk: Buffer): void {
    let frames: Array<Frame>
    try {
      frames = this.parser.push(chunk)
    } catch (error) {
      this.error ??= error as Error
      this.socket.destroy()
      return
    }
    for (const frame of frames) {
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter.resolve(frame)
      else this.queue.push(frame)
    }
  }

  /** Writes raw bytes, or a frame built from `spec`. */
  send(frame: FrameSpec | Uint8Array): void {
    this.socket.write(frame instanceof Uint8Array ? frame : encodeFrame(frame))
  }

  /** Writes each frame in turn, all in one TCP write. */
  sendAll(frames: ReadonlyArray<FrameSpec>): void {
    this.socket.write(Buffer.concat(frames.map(encodeFrame)))
  }

  /** Writes `bytes` in pieces of the given sizes (the rest in one last piece), waiting between them. */
  async sendInPieces(bytes: Uint8Array, sizes: ReadonlyArray<number>, pauseMs = 2): Promise<void> {
    let offset = 0
    for (const size of [...sizes, bytes.byteLength]) {
      if (offset >= bytes.byteLength) break
      const piece = bytes.subarray(offset, Math.min(bytes.byteLength, offset + size))
      offset += piece.byteLength
      await new Promise<void>((resolve, reject) =>
        this.socket.write(piece, (error) => (error ? reject(error) : resolve()))
      )
      await delay(pauseMs)
    }
  }

  /** The next frame from the server; rejects on timeout or when the connection closes first. */
  nextFrame(timeoutMs = 3000): Promise<Frame> {
    const queued = this.queue.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (this.isClosed) return Promise.reject(new Error("the connection is closed and no frame is left"))
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (frame) => {
          clearTimeout(timer)
          resolve(frame)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        }
      }
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter)
        if (index >= 0) this.waiters.splice(index, 1)
        reject(new Error(`no frame within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /**
   * The next data message, reassembled from its fragments; control frames
   * between the fragments are collected in `controls`. At most `maxFrames`
   * frames are read.
   */
  async nextMessage(timeoutMs = 3000, maxFrames = 1000): Promise<Message> {
    const deadline = Date.now() + timeoutMs
    const frames: Array<Frame> = []
    const controls: Array<Frame> = []
    for (let i = 0; i < maxFrames; i++) {
      const frame = await this.nextFrame(Math.max(1, deadline - Date.now()))
      if (frame.opcode >= 0x8) {
        if (frame.opcode === Opcode.Close) throw new Error("the server sent a close frame instead of a message")
        controls.push(frame)
        continue
      }
      frames.push(frame)
      if (frame.fin) {
        const first = frames[0]!
        return {
          opcode: first.opcode,
          payload: Buffer.concat(frames.map((f) => f.payload)),
          frames,
          controls
        }
      }
    }
    throw new Error(`no complete message within ${maxFrames} frames`)
  }

  /** Frames received but not read yet. */
  get pendingFrames(): number {
    return this.queue.length
  }

  /** Bytes received that do not form a complete frame. */
  get pendingBytes(): number {
    return this.parser.pendingBytes
  }

  get isOpen(): boolean {
    return !this.isClosed
  }

  destroy(): void {
    this.socket.destroy()
  }
}
