/**
 * Why a connection ended: the value handed to a behaviour's `onClose`. Every
 * connection whose `init` succeeded gets exactly one `onClose`, whatever ended
 * it — unless shutdown had to interrupt an actor stuck in a callback.
 *
 * | `_tag`     | what happened                                                        | code the client sees |
 * |------------|----------------------------------------------------------------------|----------------------|
 * | `Peer`     | the client sent a close frame                                        | its own code         |
 * | `Local`    | the behaviour called `conn.close(code, reason)`                      | that code            |
 * | `Shutdown` | the server is shutting down                                          | 1001                 |
 * | `Timeout`  | a lifecycle timer fired (`keepalive`, `idle`)                        | 1006 / 1000          |
 * | `Error`    | the peer broke the protocol or a limit (`ConnectionError` reason)    | 1002 / 1007 / 1008 / 1009 |
 * | `Crash`    | a behaviour callback failed or died                                  | 1011                 |
 * | `Lost`     | the TCP connection dropped without a close frame                     | —                    |
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as ConnectionError from "./ConnectionError.ts"

/**
 * The client closed the connection with a close frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface Peer {
  readonly _tag: "Peer"
  readonly code: number
  readonly reason: string
}

/**
 * The behaviour closed the connection with `conn.close`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Local {
  readonly _tag: "Local"
  readonly code: number
  readonly reason: string
}

/**
 * The server shut down (scope closed, SIGINT/SIGTERM); the client got 1001.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shutdown {
  readonly _tag: "Shutdown"
}

/**
 * A lifecycle timer closed the connection: `keepalive` (no pong after a
 * ping; the socket is destroyed) or `idle` (no message either way).
 *
 * @since 0.1.0
 * @category models
 */
export interface Timeout {
  readonly _tag: "Timeout"
  readonly timer: "keepalive" | "idle"
}

/**
 * The peer broke the protocol or a limit: message too large (1009), invalid
 * UTF-8 (1007), protocol error (1002), or the socket failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Error {
  readonly _tag: "Error"
  readonly error: ConnectionError.ConnectionError
}

/**
 * A behaviour callback failed or died; the connection was closed with 1011
 * and the cause logged with the connection id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Crash {
  readonly _tag: "Crash"
  readonly cause: Cause.Cause<unknown>
}

/**
 * The connection dropped without a close frame (1006).
 *
 * @since 0.1.0
 * @category models
 */
export interface Lost {
  readonly _tag: "Lost"
}

/**
 * Why a connection ended.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { Behavior } from "@switchboard/core"
 *
 * const Logged = Behavior.make({
 *   onMessage: (conn, message) => conn.send(message),
 *   onClose: (conn, reason) =>
 *     reason._tag === "Peer"
 *       ? Effect.log(`${conn.id} left with ${reason.code}`)
 *       : Effect.log(`${conn.id} closed: ${reason._tag}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CloseReason = Peer | Local | Shutdown | Timeout | Error | Crash | Lost

/** @since 0.1.0 @category constructors */
export const peer = (code: number, reason: string): CloseReason => ({ _tag: "Peer", code, reason })
/** @since 0.1.0 @category constructors */
export const local = (code: number, reason: string): CloseReason => ({ _tag: "Local", code, reason })
/** @since 0.1.0 @category constructors */
export const shutdown: CloseReason = { _tag: "Shutdown" }
/** @since 0.1.0 @category constructors */
export const timeout = (timer: Timeout["timer"]): CloseReason => ({ _tag: "Timeout", timer })
/** @since 0.1.0 @category constructors */
export const error = (error: ConnectionError.ConnectionError): CloseReason => ({ _tag: "Error", error })
/** @since 0.1.0 @category constructors */
export const crash = (cause: Cause.Cause<unknown>): CloseReason => ({ _tag: "Crash", cause })
/** @since 0.1.0 @category constructors */
export const lost: CloseReason = { _tag: "Lost" }
