/**
 * The reactor contract: everything a reactor (the code that owns sockets:
 * the Node `ws` reactor, the in-memory test reactor, a Bun reactor)
 * implements or calls, in one place.
 *
 * A reactor builds an `Admission` for its server options, which resolves the
 * routes (`Route`: a behaviour with its `RouteSettings`) and makes the
 * `Supervisor`. For each socket whose upgrade is admitted it then:
 *
 * 1. implements a `Transport`, the outbound half: what the actor and the hub
 *    write through (synchronous, never throws);
 * 2. calls `supervisor.accept(route, transport, info)` and gets an `Actor`,
 *    the inbound half: one synchronous call per socket event
 *    (`receiveUnsafe`, `pongUnsafe`, `drainUnsafe`, `closedUnsafe`, …);
 * 3. honours backpressure both ways: it stops reading when the actor calls
 *    `transport.pause()` and reads again on `resume()`; it reports the
 *    socket's drain with `actor.drainUnsafe()` when the actor called
 *    `flush()`.
 *
 * Nothing above a reactor touches a socket, so a behaviour runs unchanged on
 * any reactor.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Behavior from "./Behavior.ts"
import type * as Compression from "./Compression.ts"
import type * as Connection from "./Connection.ts"
import type * as ConnectionError from "./ConnectionError.ts"
import type * as Handshake from "./Handshake.ts"
import type * as Keepalive from "./Keepalive.ts"
import type { Message } from "./Message.ts"
import type { PreparedMessage } from "./PreparedMessage.ts"
import type * as RateLimit from "./RateLimit.ts"
import type * as Subprotocol from "./Subprotocol.ts"

/**
 * The outbound half: what an actor needs from the socket it is attached to.
 * One per connection.
 *
 * A transport may coalesce writes: the Node reactor corks a socket on its
 * first write of an event-loop turn and flushes every corked socket once at
 * the end of the turn, so a batch of replies or a burst of broadcasts leaves
 * in one system call. `flush` pushes the buffered writes out at once.
 *
 * Every method is synchronous and must not throw: a reactor that cannot write
 * (the socket is gone) ignores the call and reports the close through
 * `Actor.closedUnsafe`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  /** Writes a text (`string`) or binary (`Uint8Array`) message as one frame. */
  send(message: Message): void
  /**
   * Writes a text message given as its UTF-8 bytes (valid UTF-8, as it
   * arrived): a behaviour sends on a text it received. Called only for text
   * that the reactor handed over with its bytes (`Actor.receiveUnsafe`'s
   * `utf8`); a transport without it gets the string through `send`.
   */
  sendUtf8?(utf8: Uint8Array): void
  /**
   * Writes one fragment of a long message (`conn.sendStream`): the first
   * fragment after a `fin` one (or the connection's first) opens a message of
   * the data's kind, text for a `string` and binary for a `Uint8Array`; the
   * following ones continue it; the one with `fin` ends it. A first fragment
   * with `fin` is an ordinary message. The actor writes nothing else but
   * pings and a close between the fragments of a message.
   */
  sendFragment(data: Message, fin: boolean): void
  /** Writes a message that was framed once for many sockets (`prepared.bytes` as they are). */
  sendPrepared(prepared: PreparedMessage): void
  /** Sends a ping frame. */
  ping(): void
  /** Starts the close handshake: sends a close frame with this code and reason. */
  close(code: number, reason: string): void
  /** Destroys the TCP connection at once, without a close handshake. */
  terminate(): void
  /** Bytes written but not yet handed to the kernel. */
  readonly bufferedAmount: number
  /** Bytes read from the socket so far, framing included (for metrics); a transport without a socket may leave it out. */
  readonly bytesRead?: number
  /** Bytes written to the socket so far, framing included (for metrics). */
  readonly bytesWritten?: number
  /** Stops reading from the peer (TCP backpressure): the mailbox is full, or the behaviour asked (`pauseReading`). */
  pause(): void
  /** Reads from the peer again. */
  resume(): void
  /**
   * Hands coalesced writes to the socket now, and reports the next drain
   * through `Actor.drainUnsafe` (soon, not inside this call, if nothing is
   * buffered). The actor calls it when something waits for the socket
   * (`send` above the high-water mark, `awaitDrained`, `onDrain`); calls
   * before a drain share one report.
   */
  flush(): void
}

/**
 * The inbound half: the reactor's handle on an actor, one method per socket
 * event. All are synchronous and cheap; none throws.
 *
 * @since 0.1.0
 * @category models
 */
export interface Actor {
  /** True on a route that receives messages as streams (`onStream`): deliver with `receiveChunkUnsafe`. */
  readonly receivesStreams: boolean
  /** The route's `maxMessageBytes`, for the reactor's frame parser. */
  readonly maxMessageBytes: number
  /** Resolves once the actor has nothing left to do: its mailbox is empty and no callback runs (for tests). */
  readonly idle: Effect.Effect<void>
  /** Resolves once the actor has run `onClose` and left the supervisor. */
  readonly finished: Effect.Effect<void>
  /** The connection as its behaviour sees it. */
  readonly connection: Connection.Connection<unknown>
  /**
   * A complete message from the peer. The actor pauses the transport when
   * its mailbox is full. With a text message the reactor may pass the UTF-8
   * bytes it arrived in (checked valid): if the behaviour sends the same text
   * on, those bytes are written again (`Transport.send`'s `utf8`) instead of
   * the string being encoded once more.
   */
  receiveUnsafe(message: Message, utf8?: Uint8Array): void
  /**
   * On a route that receives streams: a piece of a message's payload as it
   * arrives (text decoded to a string, binary as bytes). `first` on the
   * message's first piece, `last` on its final one (both on a message that
   * arrives whole); empty pieces are allowed. The actor pauses the transport
   * while too many bytes wait for the behaviour.
   */
  receiveChunkUnsafe(chunk: Message, first: boolean, last: boolean): void
  /** Any other inbound frame: counts as activity for keepalive. */
  activityUnsafe(): void
  /** A ping from the peer (the reactor answers it with a pong itself): activity, and `onPing`. */
  pingUnsafe(payload: Uint8Array): void
  /** A pong from the peer. */
  pongUnsafe(): void
  /** The transport's outbound buffer drained. */
  drainUnsafe(): void
  /** The peer broke the protocol or a limit; a close follows. */
  failedUnsafe(reason: ConnectionError.Reason): void
  /** The socket closed: the peer's close code (1005 without one, 1006 if it dropped) and reason. */
  closedUnsafe(code: number, reason: string): void
}

/**
 * The settings shared by every connection of a route, resolved and checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteSettings {
  readonly mailboxCapacity: number
  readonly highWaterMark: number
  readonly maxMessageBytes: number
  readonly timers: Keepalive.Resolved
  readonly rateLimit: RateLimit.Resolved | undefined
  readonly subprotocol: Subprotocol.Resolved
  /** permessage-deflate, or `undefined` when off. */
  readonly compression: Compression.Resolved | undefined
  /** `"stream"` when the behaviour has `onStream`: the reactor then delivers messages in pieces (`receiveChunkUnsafe`). */
  readonly receive: "message" | "stream"
}

/**
 * A behaviour with its resolved per-route settings: what `accept` starts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route<R> {
  readonly behavior: Behavior.Behavior<never, R, never>
  readonly settings: RouteSettings
  /** The path it serves ("" for a client's connection or a test's), the `route` of metrics and logs. */
  readonly path: string
  /** The hook run on each upgrade to this route (its own, else the server's); `conn.auth` is its result. */
  readonly authenticate: Handshake.Authenticate<unknown, R> | undefined
}
