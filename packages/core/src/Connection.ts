/**
 * The handle a behaviour gets for its connection: send, ping, close, tell,
 * and what is known about the peer. Every method returns an `Effect`; the
 * actor runs them one message at a time, so a handle is never used from two
 * places at once.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type * as Compression from "./Compression.ts"
import type { ConnectionError } from "./ConnectionError.ts"
import type * as Keepalive from "./Keepalive.ts"
import type { Message } from "./Message.ts"
import type * as RateLimit from "./RateLimit.ts"
import type * as Subprotocol from "./Subprotocol.ts"

/**
 * The HTTP upgrade request a connection was opened with.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  /** The path without the query string, e.g. `/chat`. */
  readonly path: string
  /** The parsed query string. */
  readonly query: URLSearchParams
  /** The request headers, lower-cased as Node gives them. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
}

/**
 * A live connection, as seen by its behaviour and by other code that holds
 * it (a hub, a job). `I` is the type of the messages `tell` delivers to the
 * behaviour's `onInfo`.
 *
 * @example
 * ```ts
 * import { Behavior, CloseCode } from "@switchboard/core"
 *
 * const Guarded = Behavior.make({
 *   onMessage: (conn, message) =>
 *     typeof message === "string" && message.length > 1000
 *       ? conn.close(CloseCode.PolicyViolation, "too long")
 *       : conn.send(message)
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection<in I = never, out A = unknown> {
  /** A process-unique id, used in logs. */
  readonly id: string
  /** The peer's IP address as the socket reports it. */
  readonly remoteAddress: string
  /** The upgrade request. */
  readonly request: Request
  /**
   * What the route's (or the server's) `authenticate` hook attached to this
   * connection: `A` is the behaviour's declared type, which the route's hook
   * must produce (`undefined` on a route without a hook).
   */
  readonly auth: A
  /** The subprotocol chosen in the handshake (`Subprotocol`), or `undefined` for none. */
  readonly protocol: string | undefined
  /** True until the server sends or receives a close frame, or the socket drops. */
  readonly isOpen: boolean
  /** Bytes written to the socket and not yet sent. */
  readonly bufferedAmount: number
  /**
   * Sends a text (`string`) or binary (`Uint8Array`) message. Suspends the
   * actor while more than `highWaterMark` bytes are buffered, until the
   * socket drains. On a connection that is no longer open it does nothing.
   */
  send(message: Message): Effect.Effect<void>
  /**
   * Sends one long message from a stream of chunks, as fragments, so the
   * whole message never sits in memory. It is text if its first chunk is a
   * string and binary otherwise, unless `options.binary` says; a binary
   * message takes strings as their UTF-8, a text message takes bytes that
   * decode as UTF-8 (split characters are joined across chunks). Each chunk
   * waits, like `send`, while more than `highWaterMark` bytes are buffered.
   *
   * Meanwhile the connection's other writes (`send` from another fiber, the
   * hub's broadcasts) are held and follow the message in order: data frames
   * never interleave. Held bytes count in `bufferedAmount`. Another
   * `sendStream` waits for this one.
   *
   * If the stream fails (or the effect is interrupted) after the message's
   * first fragment went out, the message cannot be finished: the connection
   * closes with 1011 and the effect fails with the stream's error. Before
   * that (the first chunk is held back until the second arrives, so a
   * one-chunk stream is an ordinary message), nothing was sent and the
   * connection stays open. An empty stream sends an empty message. On a
   * connection that closes, it stops reading the stream and succeeds, as
   * `send` does nothing.
   */
  sendStream<E, R>(
    stream: Stream.Stream<Message, E, R>,
    options?: SendStreamOptions
  ): Effect.Effect<void, E | ConnectionError, R>
  /** Sends a ping frame. */
  readonly ping: Effect.Effect<void>
  /**
   * Waits until every byte written so far has been handed to the kernel
   * (`bufferedAmount` is 0), or the connection closed.
   */
  readonly awaitDrained: Effect.Effect<void>
  /**
   * Stops reading from the peer until `resumeReading`, whatever the mailbox
   * holds: TCP pushes back on the client. Messages already read are still
   * handled. Keepalive and `idleTimeout` are suspended meanwhile (the peer
   * cannot be heard) and start again from `resumeReading`.
   */
  readonly pauseReading: Effect.Effect<void>
  /** Reads from the peer again after `pauseReading` (unless the mailbox is full: then once it is taken). */
  readonly resumeReading: Effect.Effect<void>
  /**
   * Starts the close handshake with `code` (default 1000) and `reason`
   * (at most 123 bytes of UTF-8). Fails with `InvalidClose` for a code that
   * may not be sent; does nothing if the connection is already closing.
   */
  close(code?: number, reason?: string): Effect.Effect<void, ConnectionError>
  /**
   * Delivers `info` to the behaviour's `onInfo`, after the messages already
   * in the mailbox. Fails with `MailboxFull` (nothing enqueued) or `NotOpen`.
   */
  tell(info: I): Effect.Effect<void, ConnectionError>
  /** `tell` for synchronous callers: true if `info` was enqueued. */
  tellUnsafe(info: I): boolean
  /**
   * Runs `finalizer` when the connection ends, after `onClose` (last added,
   * first run). On a connection that already ended it runs at once. The hub
   * uses it to end subscriptions with the connection.
   */
  addFinalizer(finalizer: Effect.Effect<void>): Effect.Effect<void>
}

/**
 * A connection as a server lists it (`NodeServer`'s `list`): who, where
 * from, since when.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  /** Unique across processes. */
  readonly id: string
  /** The route's path. */
  readonly route: string
  readonly remoteAddress: string
  /** What the route's `authenticate` hook attached. */
  readonly auth: unknown
  readonly protocol: string | undefined
  /** When it was accepted, in ms since the epoch (the Clock's). */
  readonly connectedAt: number
  readonly isOpen: boolean
}

/**
 * Options of `sendStream`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SendStreamOptions {
  /** Binary (`true`) or text (`false`). Default: text if the first chunk is a string. */
  readonly binary?: boolean
}

/**
 * Per-route settings of a connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Keepalive.Options, Subprotocol.Options, Compression.Options {
  /**
   * Messages the mailbox holds before the reactor stops reading from the
   * socket (it resumes when the actor takes the batch). Reading also stops
   * once the queued payloads reach `maxMessageBytes`, so a connection holds
   * at most about two batches of inbound data. Default 1024.
   */
  readonly mailboxCapacity?: number
  /**
   * Outbound bytes buffered before `send` suspends the actor until the
   * socket drains. Default 1 MiB; at least 16 KiB.
   */
  readonly highWaterMark?: number
  /**
   * The largest message accepted, in bytes; a larger one closes the
   * connection with 1009 (reason `Error` with `MessageTooLarge`). Default 1 MiB.
   */
  readonly maxMessageBytes?: number
  /**
   * An inbound rate limit per connection (see `RateLimit`); `false` turns
   * the server's off for a route. Default: off.
   */
  readonly rateLimit?: RateLimit.Options | false
}

/**
 * Default mailbox capacity.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMailboxCapacity = 1024

/**
 * Default outbound high-water mark in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultHighWaterMark = 1024 * 1024

/**
 * Default largest inbound message in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxMessageBytes = 1024 * 1024
