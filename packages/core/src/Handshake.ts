/**
 * Admission of a connection before the WebSocket upgrade completes: the
 * `authenticate` hook a server runs on each upgrade request, and the error
 * with which it turns a request away with an HTTP status.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { Request } from "./Connection.ts"

/**
 * Rejects an upgrade request with an HTTP `status` (401, 403, 429, …) and a
 * short plain-text `message` for the response body. Nothing is upgraded.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { Handshake } from "@switchboard/core"
 *
 * const authenticate: Handshake.Authenticate<{ user: string }> = (request) => {
 *   const token = request.query.get("token")
 *   return token === "secret"
 *     ? Effect.succeed({ user: "ada" })
 *     : Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "bad token" }))
 * }
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class HandshakeRejected extends Data.TaggedError("HandshakeRejected")<{
  readonly status: number
  readonly message: string
}> {}

/**
 * The upgrade request as an `authenticate` hook sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface UpgradeRequest extends Request {
  readonly remoteAddress: string
}

/**
 * An admission hook: succeeds with data attached to the connection
 * (`conn.auth`), or fails with `HandshakeRejected`. A defect in the hook
 * rejects with 500 and is logged.
 *
 * @since 0.1.0
 * @category models
 */
export type Authenticate<A = unknown, R = never> = (request: UpgradeRequest) => Effect.Effect<A, HandshakeRejected, R>
