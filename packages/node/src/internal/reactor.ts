/**
 * The bridge from `ws` events to connection actors: the only code in
 * Switchboard that imports `ws`.
 *
 * Listeners are module-level functions, bound to the actor through a symbol
 * property on the `WebSocket` and its socket, so accepting a connection
 * allocates no closures. Each event becomes one synchronous call on the
 * actor (`receiveUnsafe`, `pongUnsafe`, …); backpressure flows back through
 * `WsTransport.pause`/`resume`.
 */
import type { Socket } from "node:net"
import { ConnectionError, type PreparedMessage, type Supervisor, type Transport } from "@switchboard/core"
import type { WebSocket } from "ws"

const kActor = Symbol.for("switchboard.actor")

type Bound<T> = T & { [kActor]?: Supervisor.Actor }

/** Counters shared by the transports of one server. */
export interface ReactorStats {
  /** Times a socket stopped being read because its actor's mailbox was full. */
  pauses: number
}

/** The outbound writer of one ws connection. */
export class WsTransport implements Transport.Transport {
  readonly ws: WebSocket
  readonly socket: Socket
  readonly stats: ReactorStats
  constructor(ws: WebSocket, socket: Socket, stats: ReactorStats) {
    this.ws = ws
    this.socket = socket
    this.stats = stats
  }
  send(message: string | Uint8Array): void {
    this.cork()
    this.ws.send(message)
  }
  sendPrepared(prepared: PreparedMessage.PreparedMessage): void {
    // the frame is complete; ws's Sender keeps no state between frames without compression
    if (this.ws.readyState !== 1) return
    this.cork()
    this.socket.write(prepared.bytes)
  }
  ping(): void {
    this.ws.ping()
  }
  close(code: number, reason: string): void {
    this.ws.close(code, reason)
  }
  terminate(): void {
    this.ws.terminate()
  }
  get bufferedAmount(): number {
    return this.ws.bufferedAmount
  }
  pause(): void {
    this.stats.pauses++
    this.ws.pause()
  }
  resume(): void {
    this.ws.resume()
  }
  /** Set while the socket is corked until the end of this event-loop turn. */
  corked = false
  private cork(): void {
    if (this.corked) return
    this.corked = true
    this.socket.cork()
    corkedTransports.push(this)
    if (corkedTransports.length === 1) process.nextTick(flushCorked)
  }
  flush(): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }
}

/**
 * Transports corked during this turn. Writes made while the actors handle a
 * batch (their replies, the hub's fan-out) accumulate per socket and leave in
 * one write per socket once the turn's work is done.
 */
let corkedTransports: Array<WsTransport> = []
const flushCorked = (): void => {
  const transports = corkedTransports
  corkedTransports = []
  for (const transport of transports) transport.flush()
}

function onMessage(this: Bound<WebSocket>, data: Buffer, isBinary: boolean): void {
  this[kActor]!.receiveUnsafe(isBinary ? data : data.toString())
}
function onPing(this: Bound<WebSocket>): void {
  this[kActor]!.activityUnsafe()
}
function onPong(this: Bound<WebSocket>): void {
  this[kActor]!.pongUnsafe()
}
function onClose(this: Bound<WebSocket>, code: number, reason: Buffer): void {
  this[kActor]!.closedUnsafe(code, reason.toString())
}
function onError(this: Bound<WebSocket>, error: Error & { code?: string }): void {
  const actor = this[kActor]!
  actor.failedUnsafe(reasonOf(error, actor.maxMessageBytes))
}
function onDrain(this: Bound<Socket>): void {
  this[kActor]?.drainUnsafe()
}

/**
 * Maps a ws error to a connection error reason; ws then closes the socket
 * itself (1009 for a message over the limit, 1007, 1002 — and 1008 for a
 * message in too many fragments, which is reported as `MessageTooLarge`).
 */
export const reasonOf = (error: Error & { code?: string }, limit: number): ConnectionError.Reason => {
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

/** Wires a freshly upgraded ws to its actor. */
export const attach = (ws: WebSocket, socket: Socket, actor: Supervisor.Actor): void => {
  ;(ws as Bound<WebSocket>)[kActor] = actor
  ;(socket as Bound<Socket>)[kActor] = actor
  ws.on("message", onMessage)
  ws.on("ping", onPing)
  ws.on("pong", onPong)
  ws.on("close", onClose)
  ws.on("error", onError)
  socket.on("drain", onDrain)
}
