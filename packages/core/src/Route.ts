/**
 * A route with an `authenticate` hook of its own, whose result type the
 * behaviour reads as `conn.auth`: the two are checked against each other
 * when the route is made, so a behaviour never sees an auth value of a type
 * it did not declare.
 *
 * A route's hook replaces the server's `authenticate` for that path (a
 * public route on a server that authenticates: a hook that succeeds with
 * `undefined`). Routes written as a behaviour, or as `{ behavior,
 * ...settings }`, use the server's hook and its type.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { Behavior, type Connection, Handshake, Route } from "@switchboard/core"
 *
 * interface Staff {
 *   readonly name: string
 * }
 *
 * // the token is the query's `token`; a real hook would verify a signature
 * const staffOnly: Handshake.Authenticate<Staff> = (request) => {
 *   const token = request.query.get("token")
 *   return token === null
 *     ? Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "token required" }))
 *     : Effect.succeed({ name: token })
 * }
 *
 * const Console = Behavior.make({
 *   init: (conn: Connection.Connection<never, Staff>) => conn.send(`hello, ${conn.auth.name}`)
 * })
 *
 * // NodeServer.layer({ routes: { "/console": Route.make({ authenticate: staffOnly, behavior: Console, idleTimeout: "5 minutes" }) } })
 * export const ConsoleRoute = Route.make({ authenticate: staffOnly, behavior: Console, idleTimeout: "5 minutes" })
 * ```
 *
 * @since 0.1.0
 */
import type * as Behavior from "./Behavior.ts"
import type * as Connection from "./Connection.ts"
import type * as Handshake from "./Handshake.ts"

/**
 * Marks a route made by `make`.
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId = "~@switchboard/core/Route"

/**
 * A route with its own `authenticate` hook and settings; `R` is what the
 * hook and the behaviour need.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route<out R> extends Connection.Options {
  readonly [TypeId]: typeof TypeId
  readonly behavior: Behavior.Behavior<never, R, never>
  readonly authenticate: Handshake.Authenticate<unknown, R>
}

/**
 * Makes a route from a hook, a behaviour that reads the hook's result as
 * `conn.auth`, and connection settings that override the server's. The
 * behaviour's declared auth type must accept what the hook produces.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, R1 = never, R2 = never>(
  options: Connection.Options & {
    readonly authenticate: Handshake.Authenticate<A, R1>
    readonly behavior: Behavior.Behavior<never, R2, NoInfer<A>>
  }
): Route<R1 | R2> => ({ ...options, [TypeId]: TypeId })

/**
 * True for a route made by `make`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRoute = (value: unknown): value is Route<unknown> =>
  typeof value === "object" && value !== null && TypeId in value
