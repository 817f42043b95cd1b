/**
 * How a user writes per-connection behaviour: callbacks over a private state,
 * run by the connection's actor one message at a time.
 *
 * - `init` builds the state when the connection opens (it may send a welcome);
 * - `onMessage` handles a text (`string`) or binary (`Uint8Array`) message;
 * - `onStream`, instead of `onMessage`, receives each message as a stream of
 *   chunks as its fragments arrive (`StreamedMessage`): for uploads too big
 *   to hold whole;
 * - `onInfo` handles what other code `tell`s this connection;
 * - `onPing` sees each ping from the peer (the reactor answers it with a
 *   pong by itself; a ping that finds the mailbox full is not reported);
 * - `onDrain` runs when the outbound buffer, having passed `highWaterMark`
 *   (a slow reader, a burst of fan-out), is empty again: every byte handed
 *   to the kernel;
 * - `onClose` runs exactly once when the connection ends, with a
 *   `CloseReason` (not if `init` failed; a failure in `onClose` is logged).
 *
 * Every callback returns an `Effect` of the next state (or of nothing, for a
 * stateless behaviour). A failure or defect in any callback closes this one
 * connection with 1011 and logs the cause with the connection id; nothing
 * else notices.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { CloseReason } from "./CloseReason.ts"
import type { Connection } from "./Connection.ts"
import type { Message } from "./Message.ts"
import type { StreamedMessage } from "./StreamedMessage.ts"

/**
 * The callbacks of a behaviour over state `S`, info messages `I`, errors `E`
 * and services `R`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handlers<S, I, E, R> {
  readonly init?: (conn: Connection<I>) => Effect.Effect<S, E, R>
  readonly onMessage?: (conn: Connection<I>, message: Message, state: S) => Effect.Effect<S, E, R>
  /**
   * Receives every message as a stream instead (a behaviour has `onMessage`
   * or `onStream`, not both). The stream is read within the call; what is
   * left unread when it returns is discarded.
   */
  readonly onStream?: (conn: Connection<I>, message: StreamedMessage, state: S) => Effect.Effect<S, E, R>
  readonly onInfo?: (conn: Connection<I>, info: I, state: S) => Effect.Effect<S, E, R>
  readonly onPing?: (conn: Connection<I>, payload: Uint8Array, state: S) => Effect.Effect<S, E, R>
  readonly onDrain?: (conn: Connection<I>, state: S) => Effect.Effect<S, E, R>
  readonly onClose?: (conn: Connection<I>, reason: CloseReason, state: S) => Effect.Effect<void, E, R>
}

/**
 * The key under which `make` keeps a behaviour's callbacks.
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId = "~@switchboard/core/Behavior"

/**
 * A behaviour: what a route runs for each connection. The state type is
 * private to the behaviour; `I` is what `tell` accepts and `R` the services
 * its callbacks need, provided to the server layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Behavior<in I = never, out R = never> {
  readonly [TypeId]: {
    readonly _I: (_: I) => void
    readonly _R: () => R
  }
}

/**
 * Makes a behaviour from its callbacks. All are optional; a stateless
 * behaviour is a one-liner.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Behavior } from "@switchboard/core"
 *
 * // text stays text, binary stays binary
 * const Echo = Behavior.make({
 *   onMessage: (conn, message) => conn.send(message)
 * })
 *
 * const Counter = Behavior.make({
 *   init: () => Effect.succeed(0),
 *   onMessage: (conn, _message, count: number) =>
 *     conn.send(String(count + 1)).pipe(Effect.as(count + 1)),
 *   onClose: (conn, reason, count) => Effect.log(`${conn.id} sent ${count} messages, closed: ${reason._tag}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <S = void, I = never, E = never, R = never>(handlers: Handlers<S, I, E, R>): Behavior<I, R> =>
  ({ [TypeId]: handlers }) as unknown as Behavior<I, R>
