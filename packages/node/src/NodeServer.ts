/**
 * The Node server layer: a `node:http` server whose WebSocket upgrades go to
 * `ws` (in `noServer` mode) and from there to connection actors. Routing,
 * admission and option checks are core's (`ServerOptions`, `Admission`);
 * this layer answers their decisions over HTTP (404 unknown path, 400
 * malformed upgrade, 403 origin, 429 per-IP, 503 full or shutting down, and
 * 426 for a plain request to a server it owns without `onRequest`), drops
 * handshakes that take too long, keeps a server it owns alive at its
 * file-descriptor limit, and shuts down gracefully when its scope closes:
 * stop accepting, close every connection with 1001, wait for the close
 * handshakes, terminate the rest. With `tls` it serves `wss://` (and
 * `https://` for `onRequest`).
 *
 * @since 0.1.0
 */
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import type * as Tls from "node:tls"
import { type Connection, ServerError, ServerOptions } from "@switchboard/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { acceptErrorsTotal, guardAccepts, tcpCap } from "./internal/acceptGuard.ts"
import { openFileLimit, reserveFor } from "./internal/fdLimit.ts"
import * as ReactorThread from "./internal/reactorThread.ts"
import { mount, tlsErrorsTotal } from "./internal/upgrade.ts"

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
   * TLS connections that failed before their TLS handshake completed: a
   * client that speaks no TLS or rejects the certificate, or a handshake
   * that took longer than `handshakeTimeout`.
   *
   * @since 0.1.0
   * @category metrics
   */
  tlsErrorsTotal
}

/**
 * Settings shared by `layer` and `layerAttached`: the options of every
 * server (`ServerOptions.Options`: routes, admission, limits, timeouts,
 * connection settings for every route), and a handler for plain HTTP.
 *
 * @since 0.1.0
 * @category models
 */
export interface MountOptions<R, A = unknown> extends ServerOptions.Options<R, A> {
  /** Handles plain (non-upgrade) HTTP requests; without it `layer` answers 426 and `layerAttached` leaves them to the server's own handlers. */
  readonly onRequest?: (request: Http.IncomingMessage, response: Http.ServerResponse) => void
  /**
   * Serve the process's metrics (Effect's `MetricRegistry`, Switchboard's
   * and the application's own) in the Prometheus text format at `path`, on
   * this server's port: `{ path: "/metrics" }`. Off by default. With
   * `layerAttached`, the server's own handlers must leave that path alone.
   */
  readonly metrics?: { readonly path: string }
}

/**
 * Options of `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R, A = unknown> extends MountOptions<R, A> {
  /** Default 8080; 0 picks a free port (read it from the `NodeServer` service). */
  readonly port?: number
  /** Default "127.0.0.1". */
  readonly host?: string
  /**
   * Bind with `SO_REUSEPORT` (Linux, and the BSDs), so that several servers
   * (threads or processes) can listen on the same port and the kernel
   * spreads connections among them. Default: true in a reactor thread of
   * `NodeReactors`, false otherwise.
   */
  readonly reusePort?: boolean
  /**
   * Serve `wss://` (and `https://` for `onRequest`) with these TLS options
   * (`key` and `cert`, or `pfx`; `ca`, `passphrase`, `minVersion`, …, as
   * `node:https` takes them). The TLS handshake is bounded by
   * `handshakeTimeout` as well (unless `tls.handshakeTimeout` says
   * otherwise), and the WebSocket upgrade after it again. Default: plain
   * `ws://`.
   */
  readonly tls?: Tls.TlsOptions
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
    /**
     * The connections of `route` (of every route without one): id, route,
     * remote address, auth, protocol, since when. Send to one with
     * `Hub.sendTo`, or to a user's with `Hub.sendToUser`.
     */
    readonly list: (route?: string) => ReadonlyArray<Connection.Info>
    /** Times a socket's reading was paused: its actor's mailbox was full, or its behaviour called `pauseReading`. */
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
 * with EMFILE. Raise `ulimit -n` to serve more. With several reactors
 * (`NodeReactors`), which share the process's descriptors, each reactor's
 * default is this divided by their number.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxConnections = (fileLimit: number | undefined): number =>
  fileLimit === undefined ? fallbackMaxConnections : Math.max(1, fileLimit - reserveFor(fileLimit))

/**
 * The reactors that share this process's file descriptors: each reactor's
 * default `maxConnections` (and TCP cap) is its share of the process's.
 */
const reactorShare = ReactorThread.current?.reactors ?? 1

/**
 * Mounts the WebSocket routes on `server` for the lifetime of the scope.
 * The server is not started or closed; on scope close every WebSocket
 * connection is closed with 1001 and the listeners are removed.
 */
const mountScoped = <R, A>(server: Http.Server | Https.Server, options: MountOptions<R, A>, owned: boolean) =>
  Effect.gen(function* () {
    const mounted = yield* mount(server, options, {
      defaultMaxConnections: Math.max(1, Math.floor(defaultMaxConnections(openFileLimit()) / reactorShare)),
      handleRequests: owned || options.onRequest !== undefined,
      shared: !owned
    })
    return mounted
  })

const listen = (server: Http.Server | Https.Server, port: number, host: string, reusePort: boolean) =>
  Effect.callback<AddressInfo, ServerError.ServerError>((resume) => {
    const onError = (error: Error) => {
      server.off("listening", onListening)
      resume(
        Effect.fail(
          new ServerError.ServerError({ reason: new ServerError.ListenFailed({ port, host, message: error.message }) })
        )
      )
    }
    const onListening = () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as AddressInfo))
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen({ port, host, reusePort })
  })

const closeServer = (server: Http.Server | Https.Server) =>
  Effect.callback<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

/** A `node:http` server, or `node:https` with `tls`: its TLS handshake bounded by `handshakeTimeout`. */
const createServer = <R, A>(options: Options<R, A>) =>
  Effect.gen(function* () {
    if (options.tls === undefined) return Http.createServer()
    // the TLS server's own default is 120 s: a client that never finishes the TLS handshake would
    // hold its socket that long before the WebSocket handshake timeout could start
    const { handshakeTimeout } = yield* ServerOptions.resolve({ ...options, routes: {} }, 1)
    return Https.createServer({ handshakeTimeout: handshakeTimeout > 0 ? handshakeTimeout : 120_000, ...options.tls })
  })

/**
 * A WebSocket server on its own `node:http` server (`node:https` with `tls`), listening on `port` and
 * `host`. The layer's services `R` are what the routes' behaviours need.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import * as Layer from "effect/Layer"
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
export const layer = <R = never, A = unknown>(
  options: Options<R, A>
): Layer.Layer<NodeServer, ServerError.ServerError, R> =>
  Layer.effect(NodeServer)(
    Effect.gen(function* () {
      const server = yield* createServer(options)
      const scheme = options.tls === undefined ? "ws" : "wss"
      const reactor = ReactorThread.current
      const asked = options.port ?? 8080
      // port 0 in a reactor: the port the first reactor got, so that all of them share it
      const port = asked === 0 && reactor?.port !== undefined ? reactor.port : asked
      const host = options.host ?? "127.0.0.1"
      // finalizers run in reverse: connections are closed (1001) before the listener goes
      yield* Effect.addFinalizer(() => closeServer(server))
      const { supervisor, stats, shutdownTimeout } = yield* mountScoped(server, options, true)
      const address = yield* listen(server, port, host, options.reusePort ?? reactor !== undefined)
      const fileLimit = openFileLimit()
      const cap = tcpCap(fileLimit)
      yield* guardAccepts(
        server,
        cap === undefined ? undefined : Math.max(1, Math.floor(cap / reactorShare)),
        fileLimit
      )
      yield* Effect.logInfo(
        reactor === undefined
          ? `switchboard listening on ${scheme}://${host}:${address.port}`
          : `switchboard reactor ${reactor.index + 1}/${reactor.reactors} listening on ${scheme}://${host}:${address.port}`
      )
      ReactorThread.tell({ _tag: "Listening", port: address.port, host, shutdownTimeout })
      return NodeServer.of({
        port: address.port,
        host,
        connections: () => supervisor.size,
        list: (route) => supervisor.list(route),
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
export const layerAttached = <R = never, A = unknown>(
  server: Http.Server | Https.Server,
  options: MountOptions<R, A>
): Layer.Layer<NodeServer, ServerError.ServerError, R> =>
  Layer.effect(NodeServer)(
    Effect.gen(function* () {
      const { supervisor, stats } = yield* mountScoped(server, options, false)
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const host = typeof address === "object" && address !== null ? address.address : ""
      return NodeServer.of({
        port,
        host,
        connections: () => supervisor.size,
        list: (route) => supervisor.list(route),
        pausedReads: () => stats.pauses
      })
    })
  )
