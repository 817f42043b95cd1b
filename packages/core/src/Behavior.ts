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
import type * as Effect from "effect/Effect"
import type { CloseReason } from "./CloseReason.ts"
import type { Connection } from "./Connection.ts"
import type { Message } from "./Message.ts"
import type { StreamedMessage } from "./StreamedMessage.ts"

/**
 * The callbacks of a behaviour over state `S`, info messages `I`, errors `E`,
 * services `R` and the `authenticate` result `A` (`conn.auth`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Handlers<S, I, E, R, A = unknown> {
  readonly init?: (conn: Connection<I, A>) => Effect.Effect<S, E, R>
  readonly onMessage?: (conn: Connection<I, A>, message: Message, state: S) => Effect.Effect<S, E, R>
  /**
   * Receives every message as a stream instead (a behaviour has `onMessage`
   * or `onStream`, not both). The stream is read within the call; what is
   * left unread when it returns is discarded.
   */
  readonly onStream?: (conn: Connection<I, A>, message: StreamedMessage, state: S) => Effect.Effect<S, E, R>
  readonly onInfo?: (conn: Connection<I, A>, info: I, state: S) => Effect.Effect<S, E, R>
  readonly onPing?: (conn: Connection<I, A>, payload: Uint8Array, state: S) => Effect.Effect<S, E, R>
  readonly onDrain?: (conn: Connection<I, A>, state: S) => Effect.Effect<S, E, R>
  readonly onClose?: (conn: Connection<I, A>, reason: CloseReason, state: S) => Effect.Effect<void, E, R>
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
 * private to the behaviour, and so are its errors (a failure closes the
 * connection with 1011); `I` is what `tell` accepts, `R` the services its
 * callbacks need, provided to the server layer, and `A` the `conn.auth` it
 * reads: a route's `authenticate` must produce an `A` (`Route.make`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Behavior<in I = never, out R = never, in A = unknown> {
  readonly [TypeId]: {
    readonly _I: (_: I) => void
    readonly _R: () => R
    readonly _A: (_: A) => void
  }
}

/**
 * Makes a behaviour from its callbacks. All are optional; a stateless
 * behaviour is a one-liner.
 *
 * Types follow the callbacks: the state from `init` (or from an annotated
 * `state` parameter), the services from every callback (their union), the
 * errors are each callback's own. `I` comes from an annotated `onInfo`
 * parameter or `conn: Connection.Connection<I>`, and `A` from
 * `conn: Connection.Connection<I, A>`.
 *
 * @example
 * ```ts
 * import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
 * import { Behavior, type Connection } from "@switchboard/core"
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
 *
 * // callbacks that fail in different ways, reading a typed `conn.auth`
 * class BadCommand extends Data.TaggedError("BadCommand")<{ readonly text: string }> {}
 * class NotAllowed extends Data.TaggedError("NotAllowed")<{}> {}
 * interface Token {
 *   readonly user: string
 *   readonly admin: boolean
 * }
 * const Admin = Behavior.make({
 *   onMessage: (conn: Connection.Connection<never, Token>, message) =>
 *     typeof message !== "string"
 *       ? Effect.fail(new BadCommand({ text: "binary" }))
 *       : conn.auth.admin
 *         ? conn.send(`ok, ${conn.auth.user}`)
 *         : Effect.fail(new NotAllowed()),
 *   onClose: (conn) => Effect.log(`${conn.auth.user} left`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  S = void,
  I = never,
  A = unknown,
  R1 = never,
  R2 = never,
  R3 = never,
  R4 = never,
  R5 = never,
  R6 = never,
  R7 = never
>(handlers: {
  readonly init?: (conn: Connection<I, A>) => Effect.Effect<S, unknown, R1>
  readonly onMessage?: (conn: Connection<I, A>, message: Message, state: S) => Effect.Effect<S, unknown, R2>
  readonly onStream?: (conn: Connection<I, A>, message: StreamedMessage, state: S) => Effect.Effect<S, unknown, R3>
  readonly onInfo?: (conn: Connection<I, A>, info: I, state: S) => Effect.Effect<S, unknown, R4>
  readonly onPing?: (conn: Connection<I, A>, payload: Uint8Array, state: S) => Effect.Effect<S, unknown, R5>
  readonly onDrain?: (conn: Connection<I, A>, state: S) => Effect.Effect<S, unknown, R6>
  readonly onClose?: (conn: Connection<I, A>, reason: CloseReason, state: S) => Effect.Effect<void, unknown, R7>
}): Behavior<I, R1 | R2 | R3 | R4 | R5 | R6 | R7, A> =>
  ({ [TypeId]: handlers }) as unknown as Behavior<I, R1 | R2 | R3 | R4 | R5 | R6 | R7, A>
