/**
 * The Node server layer: a `node:http` server whose WebSocket upgrades go to
 * `ws` (in `noServer` mode) and from there to connection actors. It routes by
 * path, admits (origin allowlist, `authenticate` hook, `maxConnections`),
 * answers plain HTTP for everything that is not a WebSocket (404 unknown
 * path, 400 malformed upgrade, 503 full or shutting down, and 426 for a plain
 * request to a server it owns without `onRequest`), drops handshakes that take too long, and shuts down gracefully when
 * its scope closes: stop accepting, close every connection with 1001, wait
 * for the close handshakes, terminate the rest.
 *
 * @since 0.1.0
 */
import * as FS from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { type Behavior, type Connection, type Handshake, Keepalive, Supervisor } from "@switchboard/core"
import { Clock, Context, type Duration, Effect, Layer, Metric } from "effect"
import { openFileLimit, reserveFor } from "./internal/fdLimit.ts"
import { acceptErrorsTotal, upgradesRejectedTotal } from "./internal/metrics.ts"
import { mount } from "./internal/upgrade.ts"
import { InvalidOptions, ListenFailed, ServerError } from "./ServerError.ts"

export {
  /**
   * Failed TCP accepts (`code`: EMFILE, ENFILE, …) and connections dropped at
   * the server's TCP cap (`code: "cap"`).
   *
   * @since 0.1.0
   * @category metrics
   */
  acceptErrorsTotal,
  /**
   * Upgrade requests turned away, by `reason`: `shutting_down`, `malformed`,
   * `not_found`, `origin`, `capacity` (maxConnections), `per_ip`
   * (maxConnectionsPerIp), `rejected` (authenticate's HandshakeRejected),
   * `auth_error` (a defect in authenticate) and `handshake_timeout`.
   *
   * @since 0.1.0
   * @category metrics
   */
  upgradesRejectedTotal
}

/**
 * A route: a behaviour with settings of its own that override the server's.
 *
 * @since 0.1.0
 * @category models
 */
export interface RouteOptions<R> extends Connection.Options {
  readonly behavior: Behavior.Behavior<never, R>
}

/**
 * Settings shared by `layer` and `layerAttached`. Connection settings
 * (keepalive, timeouts, limits) given here apply to every route that does not
 * set its own.
 *
 * @since 0.1.0
 * @category models
 */
export interface MountOptions<R> extends Connection.Options {
  /** Path → behaviour (or behaviour with settings). Paths match exactly, without the query string. */
  readonly routes: Readonly<Record<string, Behavior.Behavior<never, R> | RouteOptions<R>>>
  /** Runs on each upgrade request; its success value becomes `conn.auth`. */
  readonly authenticate?: Handshake.Authenticate<unknown, R>
  /** Accept only upgrades whose `Origin` header is in this list (403 otherwise). */
  readonly allowedOrigins?: ReadonlyArray<string>
  /**
   * WebSocket connections (open, plus upgrades waiting for `authenticate`)
   * beyond this number get 503. Default: `defaultMaxConnections()`, derived
   * from the process's file-descriptor limit.
   */
  readonly maxConnections?: number
  /**
   * Connections one peer address may hold (IPv6: per /64); more get 429.
   * Counted from the upgrade request until the TCP socket closes. Default:
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
  /** Handles plain (non-upgrade) HTTP requests; without it `layer` answers 426 and `layerAttached` leaves them to the server's own handlers. */
  readonly onRequest?: (request: Http.IncomingMessage, response: Http.ServerResponse) => void
}

/**
 * Options of `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R> extends MountOptions<R> {
  /** Default 8080; 0 picks a free port (read it from the `NodeServer` service). */
  readonly port?: number
  /** Default "127.0.0.1". */
  readonly host?: string
}

/**
 * The running server, for code that needs its address or connections.
 *
 * @since 0.1.0
 * @category services
 */
export class NodeServer extends Context.Service<
  NodeServer,
  {
    /** The bound port (useful with `port: 0`). */
    readonly port: number
    readonly host: string
    /** Open WebSocket connections. */
    readonly connections: () => number
    /** Times a socket's reading was paused because its actor's mailbox was full. */
    readonly pausedReads: () => number
  }
>()("@switchboard/node/NodeServer") {}

/**
 * The default `maxConnections` when the file-descriptor limit is unknown
 * (no /proc/self/limits).
 *
 * @since 0.1.0
 * @category constants
 */
export const fallbackMaxConnections = 10_000

/**
 * The default `maxConnections`: the soft file-descriptor limit (`ulimit -n`)
 * less a reserve for the rest of the process (a tenth, at least 128), so that
 * a full server still accepts, answers 503 and opens files instead of failing
 * with EMFILE. Raise `ulimit -n` to serve more.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxConnections = (fileLimit: number | undefined): number =>
  fileLimit === undefined ? fallbackMaxConnections : Math.max(1, fileLimit - reserveFor(fileLimit))

const positiveInteger = (value: number, name: string): number => {
  if (value === Number.POSITIVE_INFINITY || (Number.isInteger(value) && value > 0)) return value
  throw new RangeError(`${name}: must be a positive integer, got ${value}`)
}

const resolve = <R>(options: MountOptions<R>) => {
  const routes = new Map<string, Supervisor.Route<R>>()
  for (const [path, value] of Object.entries(options.routes)) {
    if (!path.startsWith("/")) throw new RangeError(`routes: path must start with "/": ${path}`)
    const route: RouteOptions<R> = "behavior" in value ? value : { behavior: value }
    routes.set(path, Supervisor.route(route.behavior, route, options))
  }
  const maxConnections = positiveInteger(
    options.maxConnections ?? defaultMaxConnections(openFileLimit()),
    "maxConnections"
  )
  const maxConnectionsPerIp = positiveInteger(
    options.maxConnectionsPerIp ?? Number.POSITIVE_INFINITY,
    "maxConnectionsPerIp"
  )
  const handshakeTimeout = Keepalive.durationMillis(options.handshakeTimeout, 10_000, "handshakeTimeout")
  const shutdownTimeout = Keepalive.durationMillis(options.shutdownTimeout, 5_000, "shutdownTimeout")
  const settings = [...routes.values()].map((r) => r.settings.timers)
  if (handshakeTimeout > 0) settings.push({ ...Keepalive.defaults, closeTimeout: handshakeTimeout })
  return {
    routes,
    maxConnections,
    maxConnectionsPerIp,
    handshakeTimeout,
    shutdownTimeout,
    resolution: Keepalive.resolutionFor(settings)
  }
}

/**
 * Mounts the WebSocket routes on `server` for the lifetime of the scope.
 * The server is not started or closed; on scope close every WebSocket
 * connection is closed with 1001 and the listeners are removed.
 */
const mountScoped = <R>(server: Http.Server, options: MountOptions<R>, owned: boolean) =>
  Effect.gen(function* () {
    const resolved = yield* Effect.try({
      try: () => resolve(options),
      catch: (error) => new ServerError({ reason: new InvalidOptions({ message: (error as Error).message }) })
    })
    // the handshake timeout rides on the supervisor's sweeper: one timer loop per server
    let sweepHandshakes: (now: number) => void = () => {}
    const supervisor = yield* Supervisor.make<R>({
      resolution: resolved.resolution,
      shutdownTimeout: resolved.shutdownTimeout,
      onSweep: (now) => sweepHandshakes(now)
    })
    const context = yield* Effect.context<R>()
    const clock = yield* Clock.Clock
    const run = Effect.runCallbackWith(context)
    const mounted = mount(server, {
      routes: resolved.routes,
      supervisor,
      authenticate: options.authenticate,
      allowedOrigins: options.allowedOrigins ? new Set(options.allowedOrigins) : undefined,
      maxConnections: resolved.maxConnections,
      maxConnectionsPerIp: resolved.maxConnectionsPerIp,
      handshakeTimeout: resolved.handshakeTimeout,
      onRequest: options.onRequest,
      handleRequests: owned || options.onRequest !== undefined,
      runCallback: (effect, onExit) => run(effect, { onExit }),
      now: () => clock.currentTimeMillisUnsafe(),
      context
    })
    if (resolved.handshakeTimeout > 0) sweepHandshakes = mounted.sweep
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        mounted.dropHandshaking()
        yield* supervisor.shutdown
        mounted.detach()
      })
    )
    return { supervisor, stats: mounted.stats }
  })

const listen = (server: Http.Server, port: number, host: string) =>
  Effect.callback<AddressInfo, ServerError>((resume) => {
    const onError = (error: Error) => {
      server.off("listening", onListening)
      resume(Effect.fail(new ServerError({ reason: new ListenFailed({ port, host, message: error.message }) })))
    }
    const onListening = () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as AddressInfo))
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(port, host)
  })

/**
 * Keeps a server we own alive and observable when it runs out of file
 * descriptors. libuv hides most accept failures (on EMFILE it accepts and
 * closes the waiting connections, so their clients see a hang-up, and Node
 * hears nothing); when it cannot, Node emits them as the server's `error`
 * event, which without a listener kills the process. And Node drops
 * connections beyond `server.maxConnections` silently. So: the `error` event
 * is listened to, `drop` too, and once a second a probe opens /dev/null to
 * see whether descriptors are exhausted. Each is counted in
 * `acceptErrorsTotal` and logged once per episode: when it starts, and when
 * it ends.
 */
const guardAccepts = (server: Http.Server, cap: number | undefined, fileLimit: number | undefined) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const run = Effect.runForkWith(context)
    if (cap !== undefined) server.maxConnections = cap
    const limit = fileLimit === undefined ? "" : ` (ulimit -n ${fileLimit})`
    const episode = (what: string) => {
      let refused = 0
      return {
        failed: (code: string, message: string) => {
          Metric.withAttributes(acceptErrorsTotal, { code }).updateUnsafe(1, context)
          if (refused++ === 0) run(Effect.logError(`not accepting connections: ${message}`))
        },
        recovered: () => {
          if (refused === 0) return
          run(Effect.logWarning(`accepting connections again: ${what} (${refused} refusal(s) counted)`))
          refused = 0
        }
      }
    }
    const descriptors = episode("file descriptors are available")
    const capped = episode("below the TCP connection cap")
    const onError = (error: Error & { readonly code?: string }) =>
      descriptors.failed(error.code ?? "unknown", `${error.message}${limit}`)
    const onDrop = () =>
      capped.failed("cap", `${server.maxConnections} TCP connections open (the file-descriptor limit less a reserve)`)
    const onConnection = () => capped.recovered()
    const probe = Effect.sync(() => {
      try {
        FS.closeSync(FS.openSync("/dev/null", "r"))
        descriptors.recovered()
      } catch (error) {
        const code = (error as { readonly code?: string }).code
        if (code === "EMFILE" || code === "ENFILE") {
          descriptors.failed(code, `${code}: the process has no file descriptor left${limit}`)
        }
      }
    })
    server.on("error", onError)
    server.on("drop", onDrop)
    server.on("connection", onConnection)
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), probe)))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        server.off("error", onError)
        server.off("drop", onDrop)
        server.off("connection", onConnection)
      })
    )
  })

/** The TCP cap of a server we own: the descriptor limit less a smaller reserve than `maxConnections`'s. */
const tcpCap = (fileLimit: number | undefined): number | undefined =>
  fileLimit === undefined ? undefined : Math.max(1, fileLimit - Math.ceil(reserveFor(fileLimit) / 2))

const closeServer = (server: Http.Server) =>
  Effect.callback<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

/**
 * A WebSocket server on its own `node:http` server, listening on `port` and
 * `host`. The layer's services `R` are what the routes' behaviours need.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { Behavior } from "@switchboard/core"
 * import { NodeServer } from "@switchboard/node"
 *
 * const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * NodeRuntime.runMain(Layer.launch(NodeServer.layer({ port: 8080, routes: { "/echo": Echo } })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R = never>(options: Options<R>): Layer.Layer<NodeServer, ServerError, R> =>
  Layer.effect(NodeServer)(
    Effect.gen(function* () {
      const server = Http.createServer()
      const port = options.port ?? 8080
      const host = options.host ?? "127.0.0.1"
      // finalizers run in reverse: connections are closed (1001) before the listener goes
      yield* Effect.addFinalizer(() => closeServer(server))
      const { supervisor, stats } = yield* mountScoped(server, options, true)
      const address = yield* listen(server, port, host)
      const fileLimit = openFileLimit()
      yield* guardAccepts(server, tcpCap(fileLimit), fileLimit)
      yield* Effect.logInfo(`switchboard listening on ws://${host}:${address.port}`)
      return NodeServer.of({
        port: address.port,
        host,
        connections: () => supervisor.size,
        pausedReads: () => stats.pauses
      })
    })
  )

/**
 * Mounts the WebSocket routes on an `http.Server` (or `https.Server`) the
 * user owns and starts. The layer does not listen or close the server, and
 * leaves its plain HTTP requests to the user's handlers (unless `onRequest`
 * is given); when its scope closes it closes the WebSocket connections
 * (1001) and removes its listeners.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAttached = <R = never>(
  server: Http.Server,
  options: MountOptions<R>
): Layer.Layer<NodeServer, ServerError, R> =>
  Layer.effect(NodeServer)(
    Effect.gen(function* () {
      const { supervisor, stats } = yield* mountScoped(server, options, false)
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const host = typeof address === "object" && address !== null ? address.address : ""
      return NodeServer.of({ port, host, connections: () => supervisor.size, pausedReads: () => stats.pauses })
    })
  )
