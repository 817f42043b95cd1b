/**
 * The options every server layer takes, whatever its reactor: the routes,
 * admission (`authenticate`, `allowedOrigins`, connection limits), the
 * handshake and shutdown timeouts, and the connection settings that apply to
 * every route. A reactor's layer (`NodeServer.layer`) extends them with what
 * is its own (a port, an HTTP handler) and resolves them with `resolve`, so
 * that every reactor checks and defaults them the same way.
 *
 * Connection settings given at the top apply to every route; a route written
 * as `{ behavior, ...settings }` overrides them one field at a time.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Behavior from "./Behavior.ts"
import * as Compression from "./Compression.ts"
import * as Connection from "./Connection.ts"
import type * as Handshake from "./Handshake.ts"
import { handlersOf } from "./internal/behavior.ts"
import { durationMillis, positiveInteger } from "./internal/settings.ts"
import * as Keepalive from "./Keepalive.ts"
import * as RateLimit from "./RateLimit.ts"
import type * as Reactor from "./Reactor.ts"
import * as Route from "./Route.ts"
import { InvalidOptions, ServerError } from "./ServerError.ts"
import * as StreamedMessage from "./StreamedMessage.ts"
import * as Subprotocol from "./Subprotocol.ts"

/**
 * A route: a behaviour with settings of its own that override the server's.
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteOptions<R, A = unknown> extends Connection.Options {
  readonly behavior: Behavior.Behavior<never, R, A>
}

/**
 * The options of a server, on any reactor.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R, A = unknown> extends Connection.Options {
  /**
   * Path → behaviour, behaviour with settings, or a route with a hook of its
   * own (`Route.make`). Paths match exactly, without the query string. A
   * behaviour here reads the server's `authenticate` result as `conn.auth`
   * (`A`; `unknown` without a hook, when it is `undefined`).
   */
  readonly routes: Readonly<
    Record<string, Behavior.Behavior<never, R, NoInfer<A>> | RouteOptions<R, NoInfer<A>> | Route.Route<R>>
  >
  /** Runs on each upgrade request to a route without a hook of its own; its success value becomes `conn.auth`. */
  readonly authenticate?: Handshake.Authenticate<A, R>
  /** Accept only upgrades whose `Origin` header is in this list (403 otherwise). */
  readonly allowedOrigins?: ReadonlyArray<string>
  /**
   * WebSocket connections (open, plus upgrades waiting for `authenticate`)
   * beyond this number get 503. Default: the reactor's, derived from the
   * process's file-descriptor limit on Node (`NodeServer.defaultMaxConnections`).
   */
  readonly maxConnections?: number
  /**
   * Connections one peer address may hold (IPv6: per /64); more get 429.
   * Counted from the upgrade request until the socket closes. Default:
   * unlimited, since behind a reverse proxy every connection has the proxy's
   * address; set it on a server that faces clients directly.
   */
  readonly maxConnectionsPerIp?: number
  /**
   * Drop a TCP connection whose WebSocket upgrade is not complete within this
   * time (slow headers, a half-open connection, a slow `authenticate`).
   * Default 10 seconds.
   */
  readonly handshakeTimeout?: Duration.Input | false
  /** How long shutdown waits for close handshakes before terminating sockets. Default 5 seconds. */
  readonly shutdownTimeout?: Duration.Input
  /**
   * Runs when shutdown begins, before any connection is closed: while every
   * connection is still open, to tell clients (a broadcast "restarting in
   * 30 s", a note to the load balancer). It may take up to
   * `shutdownTimeout`; a failure or a timeout is logged and shutdown goes on.
   */
  readonly beforeShutdown?: Effect.Effect<void, unknown, R>
}

/**
 * Options resolved to numbers, with every default applied and checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved<R> {
  readonly routes: ReadonlyMap<string, Reactor.Route<R>>
  readonly authenticate: Handshake.Authenticate<unknown, R> | undefined
  readonly allowedOrigins: ReadonlySet<string> | undefined
  /** `Infinity` when unlimited. */
  readonly maxConnections: number
  /** `Infinity` when unlimited. */
  readonly maxConnectionsPerIp: number
  /** Milliseconds; 0 when off. */
  readonly handshakeTimeout: number
  readonly shutdownTimeout: number
  readonly beforeShutdown: Effect.Effect<void, unknown, R> | undefined
  /** The sweeper's period for every route's timers and the handshake timeout (`Keepalive.resolutionFor`). */
  readonly resolution: number
}

/**
 * Resolves a route's options over the server's. Throws a `RangeError` naming
 * the bad setting (`resolve` turns it into `InvalidOptions`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const route = <R>(
  behavior: Behavior.Behavior<never, R, never>,
  options: Connection.Options | undefined,
  context: {
    /** The server's settings, under the route's. */
    readonly base?: Connection.Options | undefined
    /** The route's hook (its own, else the server's). */
    readonly authenticate?: Handshake.Authenticate<unknown, R> | undefined
    /** The route's path, for metrics and logs. Default "". */
    readonly path?: string
  } = {}
): Reactor.Route<R> => {
  const base = context.base
  const mailboxCapacity = options?.mailboxCapacity ?? base?.mailboxCapacity ?? Connection.defaultMailboxCapacity
  const highWaterMark = options?.highWaterMark ?? base?.highWaterMark ?? Connection.defaultHighWaterMark
  const handlers = handlersOf(behavior)
  const receive = handlers.onStream === undefined ? "message" : "stream"
  if (receive === "stream" && handlers.onMessage !== undefined) {
    throw new RangeError("behavior: has both onMessage and onStream; a route receives messages one way")
  }
  const maxMessageBytes =
    options?.maxMessageBytes ??
    base?.maxMessageBytes ??
    (receive === "stream" ? StreamedMessage.defaultMaxMessageBytes : Connection.defaultMaxMessageBytes)
  positiveInteger(maxMessageBytes, "maxMessageBytes")
  positiveInteger(mailboxCapacity, "mailboxCapacity")
  if (!Number.isFinite(highWaterMark) || highWaterMark < 16 * 1024) {
    throw new RangeError(`highWaterMark: must be at least 16384 bytes, got ${highWaterMark}`)
  }
  const compression = Compression.resolve(options, base)
  if (receive === "stream" && compression !== undefined) {
    throw new RangeError(
      "compression: a route that receives streams (onStream) cannot use permessage-deflate; set compression: false on it"
    )
  }
  return {
    behavior,
    authenticate: context.authenticate,
    path: context.path ?? "",
    settings: {
      mailboxCapacity,
      highWaterMark,
      maxMessageBytes,
      timers: Keepalive.resolve(options, Keepalive.resolve(base)),
      rateLimit: RateLimit.resolve(options?.rateLimit, RateLimit.resolve(base?.rateLimit)),
      subprotocol: Subprotocol.resolve(options, base),
      compression,
      receive
    }
  }
}

const resolveUnsafe = <R, A>(options: Options<R, A>, defaultMaxConnections: number): Resolved<R> => {
  const routes = new Map<string, Reactor.Route<R>>()
  for (const [path, value] of Object.entries(options.routes)) {
    if (!path.startsWith("/")) throw new RangeError(`routes: path must start with "/": ${path}`)
    const entry: RouteOptions<R, never> = "behavior" in value ? value : { behavior: value }
    const authenticate = Route.isRoute(value) ? value.authenticate : options.authenticate
    routes.set(path, route(entry.behavior, entry, { base: options, authenticate, path }))
  }
  const handshakeTimeout = durationMillis(options.handshakeTimeout, 10_000, "handshakeTimeout")
  const timers = [...routes.values()].map((r) => r.settings.timers)
  if (handshakeTimeout > 0) timers.push({ ...Keepalive.defaults, closeTimeout: handshakeTimeout })
  return {
    routes,
    authenticate: options.authenticate,
    allowedOrigins: options.allowedOrigins === undefined ? undefined : new Set(options.allowedOrigins),
    maxConnections: positiveInteger(options.maxConnections ?? defaultMaxConnections, "maxConnections", true),
    maxConnectionsPerIp: positiveInteger(
      options.maxConnectionsPerIp ?? Number.POSITIVE_INFINITY,
      "maxConnectionsPerIp",
      true
    ),
    handshakeTimeout,
    shutdownTimeout: durationMillis(options.shutdownTimeout, 5_000, "shutdownTimeout"),
    beforeShutdown: options.beforeShutdown,
    resolution: Keepalive.resolutionFor(timers)
  }
}

/**
 * Resolves and checks a server's options; fails with `ServerError`
 * `InvalidOptions` naming the bad setting. `defaultMaxConnections` is the
 * reactor's default for `maxConnections`.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { Behavior, ServerOptions } from "@switchboard/core"
 *
 * const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * const program = Effect.gen(function*() {
 *   const resolved = yield* ServerOptions.resolve({ routes: { "/echo": Echo }, idleTimeout: "5 minutes" }, 10_000)
 *   return resolved.routes.get("/echo")?.settings.timers.idleTimeout // 300000
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = <R, A>(
  options: Options<R, A>,
  defaultMaxConnections: number
): Effect.Effect<Resolved<R>, ServerError> =>
  Effect.try({
    try: () => resolveUnsafe(options, defaultMaxConnections),
    catch: (error) =>
      new ServerError({
        reason: new InvalidOptions({ message: error instanceof Error ? error.message : String(error) })
      })
  })
