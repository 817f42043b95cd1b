/**
 * The receive path of routes that take messages as streams (`onStream`).
 *
 * ws's `Receiver` waits for a whole frame, and then for every frame of a
 * message, before it emits anything: a long message sits whole in memory.
 * `StreamingReceiver` is that receiver with its data path replaced: the
 * frame parser, the control frames, the close handshake and every protocol
 * check stay ws's own, but the payload of a data frame is handed on as
 * each socket read brings it (unmasked in place, the mask rotated to the
 * piece's offset), text decoded from UTF-8 as it comes (invalid bytes fail
 * with 1007 at once; a character split between pieces is joined), and the
 * size limit counts the whole message with no 2 GiB ceiling (ws keeps
 * `maxPayload` in 32 bits). Compression is not negotiated on such routes.
 *
 * `StreamingSocket` swaps it in when ws gives the socket its receiver
 * (`setSocket`), moving ws's own listeners across, so the rest of ws
 * (pause and resume, the close handshake, errors) works unchanged.
 */
import { createRequire } from "node:module"
import type { Duplex } from "node:stream"
import type { Message } from "@switchboard/core"
import * as Ws from "ws"
import { SwitchboardSocket } from "./reactor.ts"

/** The parts of ws's Receiver (a Writable) that the subclass uses. */
interface ReceiverInternals {
  _state: number
  _loop: boolean
  _payloadLength: number
  _bufferedBytes: number
  _buffers: Array<Buffer>
  _mask: Buffer | undefined
  _masked: boolean
  _fin: boolean
  _opcode: number
  _fragmented: number
  _numFragments: number
  _maxFragments: number
  _maxBufferedChunks: number
  _maxPayload: number
  _totalPayloadLength: number
  consume(n: number): Buffer
  createError(
    ErrorCtor: ErrorConstructor | RangeErrorConstructor,
    message: string,
    prefix: boolean,
    statusCode: number,
    errorCode: string
  ): Error
  getData(cb: (error?: Error) => void): void
  haveLength(cb: (error?: Error) => void): void
  listeners(event: string): Array<(...args: Array<unknown>) => void>
  on(event: string, listener: (...args: Array<unknown>) => void): unknown
  removeAllListeners(): unknown
}

type ReceiverClass = new (options: object) => ReceiverInternals
const Receiver = (Ws as unknown as { readonly Receiver: ReceiverClass }).Receiver

const GET_INFO = 0
const GET_MASK = 3
const GET_DATA = 4
const EMPTY = Buffer.alloc(0)

const bufferUtil = ((): { unmask(buffer: Buffer, mask: Buffer): void } | undefined => {
  try {
    return createRequire(import.meta.url)("bufferutil")
  } catch {
    return undefined
  }
})()

/** Unmasks `data`, which starts `offset` bytes into its frame's payload. */
const unmaskAt = (data: Buffer, mask: Buffer, offset: number): void => {
  const r = offset & 3
  const m = r === 0 ? mask : Buffer.from([mask[r]!, mask[(r + 1) & 3]!, mask[(r + 2) & 3]!, mask[(r + 3) & 3]!])
  if (bufferUtil !== undefined && data.length >= 32) {
    bufferUtil.unmask(data, m)
    return
  }
  for (let i = 0; i < data.length; i++) data[i]! ^= m[i & 3]!
}

/**
 * Bytes that keep a much bigger buffer alive get their own copy (a small
 * piece would otherwise pin a whole 64 KiB socket read while it waits).
 */
const ownBytes = (data: Buffer): Uint8Array =>
  data.buffer.byteLength - data.byteLength > 1024 && data.buffer.byteLength > 2 * data.byteLength
    ? new Uint8Array(data)
    : data

/** Where the pieces go: the connection's actor. */
export type ChunkSink = (chunk: Message.Message, first: boolean, last: boolean) => void

export class StreamingReceiver extends Receiver {
  sink: ChunkSink = () => {}
  /** The whole message's limit (`maxMessageBytes`); ws's own is off. */
  limit = 0
  /** Payload bytes of the message so far, as frame headers declare them. */
  private messageBytes = 0
  /** True between a message's first piece and its last. */
  private inMessage = false
  /** True between a data frame's header and the end of its payload. */
  private inFrame = false
  /** How far into the current frame's payload the next piece starts (for the mask). */
  private frameOffset = 0
  private frameLength = 0
  private decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

  override haveLength(cb: (error?: Error) => void): void {
    if (this._opcode < 0x08 && this._payloadLength > 0) {
      this.messageBytes += this._payloadLength
      if (this.messageBytes > this.limit) {
        cb(this.createError(RangeError, "Max payload size exceeded", false, 1009, "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"))
        return
      }
    }
    this._state = this._masked ? GET_MASK : GET_DATA
  }

  override getData(cb: (error?: Error) => void): void {
    if (this._opcode > 0x07) {
      super.getData(cb)
      return
    }
    if (!this.inFrame) {
      if (this._maxFragments > 0 && ++this._numFragments > this._maxFragments) {
        cb(this.createError(RangeError, "Too many message fragments", false, 1008, "WS_ERR_TOO_MANY_BUFFERED_PARTS"))
        return
      }
      this.inFrame = true
      this.frameOffset = 0
      this.frameLength = this._payloadLength
    }
    const mask = this._masked && this._mask !== undefined && this._mask.readUInt32BE(0) !== 0 ? this._mask : undefined
    // every buffered read of this frame, as it is (a view: no copy)
    while (this._payloadLength > 0 && this._bufferedBytes > 0) {
      const data = this.consume(Math.min(this._payloadLength, this._buffers[0]!.length))
      if (mask !== undefined) unmaskAt(data, mask, this.frameOffset)
      this.frameOffset += data.length
      this._payloadLength -= data.length
      if (!this.deliver(data, this._payloadLength === 0 && this._fin, cb)) return
    }
    if (this._payloadLength > 0) {
      // the rest of the frame is still on its way
      this._loop = false
      return
    }
    this.inFrame = false
    this._mask = undefined
    if (this.frameLength === 0 && !this.deliver(EMPTY, this._fin, cb)) return
    if (this._fin) {
      this._fragmented = 0
      this._numFragments = 0
      this._totalPayloadLength = 0
      this.messageBytes = 0
    }
    this._state = GET_INFO
  }

  /** Hands one piece on; false after failing the connection (invalid UTF-8). */
  private deliver(data: Buffer, last: boolean, cb: (error?: Error) => void): boolean {
    const first = !this.inMessage
    this.inMessage = !last
    if (this._opcode === 0x02) {
      this.sink(ownBytes(data), first, last)
      return true
    }
    let text: string
    try {
      if (first) this.decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
      text = this.decoder.decode(data, { stream: !last })
    } catch {
      cb(this.createError(Error, "invalid UTF-8 sequence", true, 1007, "WS_ERR_INVALID_UTF8"))
      return false
    }
    this.sink(text, first, last)
    return true
  }
}

/** ws's private key under which a receiver, a sender and a socket find their WebSocket. */
const kWebSocketOf = (receiver: object): symbol | undefined =>
  Object.getOwnPropertySymbols(receiver).find((key) => key.description === "websocket")

const wsSetSocket = (
  Ws.WebSocket.prototype as unknown as {
    readonly setSocket: (this: Ws.WebSocket, socket: Duplex, head: Buffer, options: object) => void
  }
).setSocket

/** The socket of a route that receives streams: ws's, with `StreamingReceiver` as its receiver. */
export class StreamingSocket extends SwitchboardSocket {
  /** ws's `setSocket` (not in its typings), called by ws once the upgrade is complete. */
  setSocket(socket: Duplex, head: Buffer, options: { readonly maxPayload?: number }): void {
    // ws keeps its limit in 32 bits: the receiver below checks the message's size itself
    wsSetSocket.call(this, socket, head, { ...options, maxPayload: 0 })
    const self = this as unknown as { _receiver: ReceiverInternals & object; _extensions: object; _isServer: boolean }
    const old = self._receiver
    const receiver = new StreamingReceiver({
      binaryType: "nodebuffer",
      extensions: self._extensions,
      isServer: self._isServer,
      maxFragments: old._maxFragments,
      maxBufferedChunks: old._maxBufferedChunks
    })
    receiver.limit =
      options.maxPayload !== undefined && options.maxPayload > 0 ? options.maxPayload : Number.MAX_SAFE_INTEGER
    receiver.sink = (chunk, first, last) => this.actor?.receiveChunkUnsafe(chunk, first, last)
    const key = kWebSocketOf(old)
    if (key !== undefined) (receiver as unknown as Record<symbol, unknown>)[key] = this
    for (const event of ["conclude", "drain", "error", "message", "ping", "pong"]) {
      for (const listener of old.listeners(event)) receiver.on(event, listener)
    }
    old.removeAllListeners()
    self._receiver = receiver
  }
}
