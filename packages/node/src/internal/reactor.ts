/**
 * The bridge from `ws` events to connection actors: the only code in
 * Switchboard that imports `ws`.
 *
 * Each connection is one `SwitchboardSocket`: ws's `WebSocket`, subclassed so
 * that it also is the actor's `Transport` and holds the actor in a declared
 * field. Listeners are module-level functions, so accepting a connection
 * allocates no closures and adds no properties to ws's objects. Each event
 * becomes one synchronous call on the actor (`receiveUnsafe`, `pongUnsafe`,
 * …); backpressure flows back through `pause`/`resume`.
 */
import type { Socket } from "node:net"
import { ConnectionError, type PreparedMessage, type Reactor } from "@switchboard/core"
import { WebSocket } from "ws"
import * as Deflate from "./deflate.ts"

/** Counters shared by the transports of one server. */
export interface ReactorStats {
  /** Times a socket stopped being read because its actor's mailbox was full. */
  pauses: number
}

const noStats: ReactorStats = { pauses: 0 }

/** What of ws's WebSocket the fan-out reads: which side it is, the negotiated extension and the sender's state (0: idle). */
interface WsInternals {
  readonly _isServer: boolean
  readonly _extensions: { readonly "permessage-deflate"?: Deflate.Negotiated }
  readonly _sender: { readonly _state: number }
}

const textFrame = { binary: false } as const

/** A ws connection that is also its actor's outbound writer. */
export class SwitchboardSocket extends WebSocket implements Reactor.Transport {
  actor: Reactor.Actor | undefined = undefined
  rawSocket: Socket | undefined = undefined
  stats: ReactorStats = noStats
  /** Set while the socket is corked until the end of this event-loop turn. */
  corked = false
  /** Set while a drain report is on its way to the actor (one for every `flush` before it). */
  drainReport = false
  /** A server's socket without compression: a framed-once message is written as it is. */
  plainFrames = false

  get bytesRead(): number {
    return this.rawSocket?.bytesRead ?? 0
  }
  get bytesWritten(): number {
    return this.rawSocket?.bytesWritten ?? 0
  }

  override send(message: string | Uint8Array): void {
    corkForTurn(this)
    // text goes to ws as bytes: ws would hand the string itself to the socket, whose writev then copies it
    if (typeof message === "string") super.send(Buffer.from(message), textFrame)
    else super.send(message)
  }
  sendUtf8(utf8: Uint8Array): void {
    corkForTurn(this)
    super.send(utf8, textFrame)
  }
  sendFragment(data: string | Uint8Array, fin: boolean): void {
    corkForTurn(this)
    super.send(data, { fin, binary: typeof data !== "string" })
  }
  sendPrepared(prepared: PreparedMessage.PreparedMessage): void {
    if (this.readyState !== WebSocket.OPEN) return
    if (this.plainFrames) {
      // the frame is complete; ws's Sender keeps no state between frames without compression
      corkForTurn(this)
      this.rawSocket!.write(bufferOf(prepared))
      return
    }
    // compressed (or a client's, which masks every frame): a compressed frame is shared by every
    // subscriber that negotiated no context takeover, written straight only while ws has no
    // compression of this socket's own in progress (order holds); anything else ws frames itself
    const internals = this as unknown as WsInternals
    const deflate = internals._isServer ? internals._extensions["permessage-deflate"] : undefined
    const shared =
      deflate !== undefined && deflate.params.server_no_context_takeover === true && internals._sender._state === 0
        ? Deflate.sharedFrame(prepared, deflate)
        : undefined
    if (shared === undefined) {
      this.send(prepared.message)
      return
    }
    corkForTurn(this)
    this.rawSocket!.write(shared)
  }
  override pause(): void {
    this.stats.pauses++
    super.pause()
  }
  /** Flushes coalesced writes and reports the next drain to the actor (only what waits for it asks). */
  flush(): void {
    uncork(this)
    if (this.drainReport) return
    this.drainReport = true
    const socket = this.rawSocket
    if (socket !== undefined && socket.writableLength > 0) socket.once("drain", () => reportDrain(this))
    else setImmediate(reportDrain, this)
  }
}

/**
 * The framed bytes as a Buffer, made once per message rather than once per
 * subscriber: a socket wraps every Uint8Array it is given in a new Buffer.
 * One slot, since a fan-out writes one message to all its subscribers in a row.
 */
let lastPrepared: PreparedMessage.PreparedMessage | undefined
let lastBuffer: Buffer = Buffer.alloc(0)
const bufferOf = (prepared: PreparedMessage.PreparedMessage): Buffer => {
  if (prepared !== lastPrepared) {
    const bytes = prepared.bytes
    lastBuffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    lastPrepared = prepared
  }
  return lastBuffer
}

const reportDrain = (ws: SwitchboardSocket): void => {
  ws.drainReport = false
  ws.actor?.drainUnsafe()
}

const uncork = (ws: SwitchboardSocket): void => {
  if (!ws.corked) return
  ws.corked = false
  ws.rawSocket?.uncork()
}

/**
 * Sockets corked during this turn. Writes made while the actors handle a
 * batch (their replies, the hub's fan-out) accumulate per socket and leave in
 * one write per socket once the turn's work is done.
 */
let corked: Array<SwitchboardSocket> = []
const flushCorked = (): void => {
  const sockets = corked
  corked = []
  for (const ws of sockets) uncork(ws)
}
const corkForTurn = (ws: SwitchboardSocket): void => {
  if (ws.corked || ws.rawSocket === undefined) return
  ws.corked = true
  ws.rawSocket.cork()
  corked.push(ws)
  if (corked.length === 1) process.nextTick(flushCorked)
}

// ws calls its listeners with `this` set to the socket, which is always a SwitchboardSocket here
const actorOf = (ws: WebSocket): Reactor.Actor => (ws as SwitchboardSocket).actor!

/**
 * Binary data that keeps a much bigger buffer alive gets its own copy. ws
 * hands an unfragmented message over as a view on the socket read it came
 * in (up to 64 KiB): a 1-byte message waiting in a mailbox would pin the
 * whole read, and the mailbox, which counts the message's own bytes, could
 * then hold far more memory than its byte limit says.
 */
const ownBytes = (data: Buffer): Uint8Array =>
  data.buffer.byteLength - data.byteLength > 1024 && data.buffer.byteLength > 2 * data.byteLength
    ? new Uint8Array(data)
    : data

function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  if (isBinary) actorOf(this).receiveUnsafe(ownBytes(data))
  else actorOf(this).receiveUnsafe(data.toString(), ownBytes(data))
}
function onPing(this: WebSocket, data: Buffer): void {
  actorOf(this).pingUnsafe(data)
}
function onPong(this: WebSocket): void {
  actorOf(this).pongUnsafe()
}
function onClose(this: WebSocket, code: number, reason: Buffer): void {
  actorOf(this).closedUnsafe(code, reason.toString())
}
function onError(this: WebSocket, error: Error & { code?: string }): void {
  const actor = actorOf(this)
  actor.failedUnsafe(reasonOf(error, actor.maxMessageBytes))
}

/**
 * Maps a ws error to a connection error reason; ws then closes the socket
 * itself (1009 for a message over the limit, 1007, 1002 — and 1008 for a
 * message in too many fragments, which is reported as `MessageTooLarge`).
 */
const reasonOf = (error: Error & { code?: string }, limit: number): ConnectionError.Reason => {
  switch (error.code) {
    case "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH":
    case "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH":
    case "WS_ERR_TOO_MANY_BUFFERED_PARTS":
      return new ConnectionError.MessageTooLarge({ limit })
    case "WS_ERR_INVALID_UTF8":
      return new ConnectionError.InvalidPayload({ message: error.message })
    case undefined:
      return new ConnectionError.SocketFailure({ message: error.message })
    default:
      return error.code.startsWith("WS_ERR_")
        ? new ConnectionError.ProtocolViolation({ message: error.message })
        : new ConnectionError.SocketFailure({ message: error.message })
  }
}

/** Wires a freshly upgraded socket to its actor. */
export const attach = (ws: SwitchboardSocket, socket: Socket, stats: ReactorStats, actor: Reactor.Actor): void => {
  ws.actor = actor
  ws.rawSocket = socket
  ws.stats = stats
  const internals = ws as unknown as WsInternals
  ws.plainFrames = internals._isServer && internals._extensions["permessage-deflate"] === undefined
  ws.on("message", onMessage)
  ws.on("ping", onPing)
  ws.on("pong", onPong)
  ws.on("close", onClose)
  ws.on("error", onError)
}
