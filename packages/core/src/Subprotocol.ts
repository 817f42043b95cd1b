/**
 * Subprotocol negotiation (RFC 6455 §1.9 and §4.2.2): a client offers
 * subprotocols in `Sec-WebSocket-Protocol`, in its order of preference, and
 * the server answers with one of them, or with none.
 *
 * A route says which it speaks: `protocols`, in the server's order of
 * preference (the first of them that the client offered wins), or a
 * `selectProtocol` function for anything else (versions, a choice by path or
 * header). With neither, no subprotocol is ever accepted: a client offering
 * one gets the handshake without it, and may then close. With
 * `requireProtocol`, a client that offers none the route speaks is refused
 * with 400 instead, before `authenticate` runs. The behaviour reads the
 * chosen one as `conn.protocol`.
 *
 * Every reactor negotiates through this module (via `Admission`), so the
 * answer does not depend on the reactor.
 *
 * @example
 * ```ts
 * import { Behavior } from "@switchboard/core"
 * import { NodeServer } from "@switchboard/node"
 *
 * const Chat = Behavior.make({
 *   onMessage: (conn, message) => conn.send(conn.protocol === "chat.v2" ? message : `v1: ${String(message)}`)
 * })
 *
 * const Server = NodeServer.layer({
 *   port: 8080,
 *   routes: { "/chat": { behavior: Chat, protocols: ["chat.v2", "chat.v1"], requireProtocol: true } }
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Handshake from "./Handshake.ts"

/**
 * Chooses a subprotocol among `offered` (the client's, in its order), or
 * none (`undefined`). Its answer must be one of `offered`; anything else,
 * or a throw, refuses the upgrade with 500.
 *
 * @since 0.1.0
 * @category models
 */
export type Select = (offered: ReadonlyArray<string>, request: Handshake.UpgradeRequest) => string | undefined

/**
 * The subprotocol settings of a route (or of the server, for every route).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The subprotocols the route speaks, in the server's order of preference. Default: none. */
  readonly protocols?: ReadonlyArray<string>
  /** Chooses the subprotocol itself (instead of `protocols`). */
  readonly selectProtocol?: Select
  /**
   * Refuse (400) a client that offers no subprotocol the route speaks,
   * instead of completing the handshake without one. Default false.
   */
  readonly requireProtocol?: boolean
}

/**
 * The settings, checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly protocols: ReadonlyArray<string>
  readonly select: Select | undefined
  readonly required: boolean
}

/**
 * A route that speaks no subprotocol.
 *
 * @since 0.1.0
 * @category constants
 */
export const none: Resolved = { protocols: [], select: undefined, required: false }

// RFC 7230 token characters: what a subprotocol name may be made of
const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Whether `name` may be a subprotocol (an HTTP token).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isValidName = (name: string): boolean => token.test(name)

/**
 * Resolves a route's settings over the server's (each field overrides on
 * its own). Throws a `RangeError` naming the bad setting.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (options: Options | undefined, base?: Options): Resolved => {
  const protocols = options?.protocols ?? (options?.selectProtocol === undefined ? base?.protocols : undefined) ?? []
  const select = options?.selectProtocol ?? (options?.protocols === undefined ? base?.selectProtocol : undefined)
  const required = options?.requireProtocol ?? base?.requireProtocol ?? false
  const seen = new Set<string>()
  for (const name of protocols) {
    if (!isValidName(name)) throw new RangeError(`protocols: ${JSON.stringify(name)} is not a valid subprotocol name`)
    if (seen.has(name)) throw new RangeError(`protocols: ${JSON.stringify(name)} is listed twice`)
    seen.add(name)
  }
  if (select !== undefined && protocols.length > 0) {
    throw new RangeError("protocols and selectProtocol: give one of them, not both")
  }
  if (required && select === undefined && protocols.length === 0) {
    throw new RangeError("requireProtocol: the route speaks no subprotocol (set protocols or selectProtocol)")
  }
  return protocols.length === 0 && select === undefined && !required ? none : { protocols, select, required }
}

/**
 * The subprotocols a client offers, from its `Sec-WebSocket-Protocol`
 * header(s): `[]` without one, `undefined` when it is malformed (an empty
 * or invalid name, a name offered twice).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseOffer = (header: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> | undefined => {
  if (header === undefined) return []
  const joined = typeof header === "string" ? header : header.join(",")
  const names = joined.split(",").map((name) => name.trim())
  const seen = new Set<string>()
  for (const name of names) {
    if (!isValidName(name) || seen.has(name)) return undefined
    seen.add(name)
  }
  return names
}

/**
 * What negotiation decided: the subprotocol (`undefined`: none), or a
 * refusal with its HTTP status.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Chosen"; readonly protocol: string | undefined }
  | {
      readonly _tag: "Refused"
      readonly status: number
      readonly message: string
      /** Why: the offer was malformed, none was acceptable, or `selectProtocol` failed. */
      readonly cause: "malformed" | "unacceptable" | "select_failed"
      /** What `selectProtocol` threw, or answered that was not offered. */
      readonly error?: unknown
    }

const chosen = (protocol: string | undefined): Outcome => ({ _tag: "Chosen", protocol })
const noProtocol = chosen(undefined)

/**
 * Negotiates for one upgrade request.
 *
 * @example
 * ```ts
 * import { Subprotocol } from "@switchboard/core"
 *
 * const route = Subprotocol.resolve({ protocols: ["v2", "v1"] })
 * const request = { path: "/", query: new URLSearchParams(), headers: {}, remoteAddress: "127.0.0.1" }
 * Subprotocol.negotiate(route, "v1, v2", request) // { _tag: "Chosen", protocol: "v2" }: the server's preference
 * Subprotocol.negotiate(route, "v3", request) // { _tag: "Chosen", protocol: undefined }
 * ```
 *
 * @since 0.1.0
 * @category negotiation
 */
export const negotiate = (
  settings: Resolved,
  header: string | ReadonlyArray<string> | undefined,
  request: Handshake.UpgradeRequest
): Outcome => {
  const offered = parseOffer(header)
  if (offered === undefined) {
    return { _tag: "Refused", status: 400, message: "invalid Sec-WebSocket-Protocol header", cause: "malformed" }
  }
  let protocol: string | undefined
  if (settings.select !== undefined) {
    if (offered.length > 0 || settings.required) {
      try {
        protocol = offered.length === 0 ? undefined : settings.select(offered, request)
      } catch (error) {
        return { _tag: "Refused", status: 500, message: "", cause: "select_failed", error }
      }
      if (protocol !== undefined && !offered.includes(protocol)) {
        return {
          _tag: "Refused",
          status: 500,
          message: "",
          cause: "select_failed",
          error: new Error(`selectProtocol answered ${JSON.stringify(protocol)}, which the client did not offer`)
        }
      }
    }
  } else {
    protocol = settings.protocols.find((name) => offered.includes(name))
  }
  if (protocol === undefined && settings.required) {
    return {
      _tag: "Refused",
      status: 400,
      message:
        settings.protocols.length > 0
          ? `no acceptable subprotocol: this endpoint speaks ${settings.protocols.join(", ")}`
          : "no acceptable subprotocol",
      cause: "unacceptable"
    }
  }
  return protocol === undefined ? noProtocol : chosen(protocol)
}
