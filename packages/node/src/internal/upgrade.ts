/**
 * The HTTP side of the Node reactor: it hands each upgrade request to core's
 * `Admission` and writes its answer (a plain HTTP response, a destroyed
 * socket), answers plain HTTP for what is not a WebSocket, and keeps the
 * handshake timeout's bookkeeping for Node's sockets (keep-alive included).
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { STATUS_CODES } from "node:http"
import type * as Https from "node:https"
import type { Socket } from "node:net"
import * as Tls from "node:tls"
import { Admission, type Handshake, type Reactor, ServerError, type ServerOptions } from "@switchboard/core"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { WebSocketServer } from "ws"
import * as Deflate from "./deflate.ts"
import * as MetricsScrape from "./metricsScrape.ts"
import * as PrometheusText from "./prometheusText.ts"
import { attach, type ReactorStats, SwitchboardSocket } from "./reactor.ts"
import * as SharedServer from "./sharedServer.ts"
import { pathOf } from "./sharedServer.ts"
import { StreamingSocket } from "./streamingReceiver.ts"

/** Writes a plain HTTP response on a raw socket and closes it. */
export const reject = (socket: Socket, status: number, message?: string): void => {
  if (socket.destroyed) return
  const body = message ?? STATUS_CODES[status] ?? ""
  socket.once("finish", socket.destroy)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      "Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

const refuse = (socket: Socket, rejection: Admission.Rejection): void =>
  reject(socket, rejection.status, rejection.message)

const ignore = (): void => {}

/** Bytes a client may send while its `authenticate` hook runs, before the 101 (RFC 6455 says none). */
const maxEarlyBytes = 64 * 1024

/**
 * The upgrade request as connections keep it: the query string is parsed on
 * first use, so an idle connection holds two strings and the headers, not a
 * `URL` and its `URLSearchParams`.
 */
class UpgradeRequest implements Handshake.UpgradeRequest {
  readonly path: string
  readonly search: string
  readonly headers: Handshake.UpgradeRequest["headers"]
  private readonly socket: Socket
  private parsed: URLSearchParams | undefined = undefined
  private address: string | undefined = undefined
  constructor(target: Admission.Target, headers: Handshake.UpgradeRequest["headers"], socket: Socket) {
    this.path = target.path
    this.search = target.search
    this.headers = headers
    this.socket = socket
  }
  get query(): URLSearchParams {
    return (this.parsed ??= new URLSearchParams(this.search))
  }
  /** Read from the socket on first use (a system call), and kept. */
  get remoteAddress(): string {
    return (this.address ??= this.socket.remoteAddress ?? "")
  }
}

/**
 * TLS connections that failed before their handshake completed (a client
 * that speaks no TLS, a bad certificate, the TLS handshake timing out).
 */
export const tlsErrorsTotal = Metric.counter("switchboard_tls_handshake_errors_total", {
  description: "TLS connections that failed before the TLS handshake completed",
  incremental: true
})

export interface Config {
  readonly defaultMaxConnections: number
  /** Answer plain HTTP requests (426, or `onRequest`): true for a server we own, or when `onRequest` is given. */
  readonly handleRequests: boolean
  /**
   * The server is the user's, and may have upgrade and request listeners of
   * its own (an Effect `HttpRouter` app on `NodeHttpServer`): upgrades to
   * Switchboard's routes, and requests for the metrics path, go to
   * Switchboard alone; every other upgrade goes to the other listeners
   * (Switchboard answers it, 404, only when there are none).
   */
  readonly shared: boolean
}

/**
 * Installs the request, upgrade and connection listeners on `server` for the
 * scope; when it closes, drops pending handshakes, shuts the supervisor
 * down (1001 to every connection) and removes the listeners.
 */
export const mount = <R, A>(
  server: Server | Https.Server,
  options: ServerOptions.Options<R, A> & {
    readonly onRequest?: (request: IncomingMessage, response: ServerResponse) => void
    readonly metrics?: { readonly path: string }
  },
  config: Config
) =>
  Effect.gen(function* () {
    const metricsPath = options.metrics?.path
    if (metricsPath !== undefined && (!metricsPath.startsWith("/") || metricsPath in options.routes)) {
      return yield* Effect.fail(
        new ServerError.ServerError({
          reason: new ServerError.InvalidOptions({
            message: `metrics.path: must start with "/" and be no route's path, got ${JSON.stringify(metricsPath)}`
          })
        })
      )
    }
    /** Keep-alive sockets between requests, with their `bytesRead` when the last response ended. */
    const keptAlive = new Map<Socket, number>()
    const admission: Admission.Admission<R, Socket> = yield* Admission.make<R, Socket, A>(options, {
      defaultMaxConnections: config.defaultMaxConnections,
      onHandshakeExpired: (socket) => socket.destroy(),
      // answered and closed, or dropped by its client: not a timeout
      isAlive: (socket) => !socket.destroyed,
      // a keep-alive socket's next request starts with its first byte: `bytesRead` grows
      onSweep: () => {
        for (const [socket, bytesRead] of keptAlive) {
          if (socket.destroyed) keptAlive.delete(socket)
          else if (socket.bytesRead > bytesRead) {
            keptAlive.delete(socket)
            admission.handshakes.begin(socket)
          }
        }
      }
    })
    const { supervisor, handshakes } = admission
    const wss = new Map<Reactor.Route<R>, WebSocketServer>()
    /** The subprotocol negotiated for each request (`Admission.negotiate`), for ws's `handleProtocols`. */
    const protocols = new WeakMap<IncomingMessage, string>()
    const handleProtocols = (_offered: Set<string>, req: IncomingMessage): string | false => protocols.get(req) ?? false
    for (const route of admission.options.routes.values()) {
      wss.set(
        route,
        new WebSocketServer({
          noServer: true,
          clientTracking: false,
          perMessageDeflate: Deflate.wsOptions(route.settings.compression),
          maxPayload: route.settings.maxMessageBytes,
          // never ws's default (the client's first offer): what the route speaks, negotiated in core
          handleProtocols,
          // a route that receives streams reads frames with a receiver of its own
          WebSocket: route.settings.receive === "stream" ? StreamingSocket : SwitchboardSocket
        })
      )
    }
    const stats: ReactorStats = { pauses: 0 }

    const upgrade = (
      route: Reactor.Route<R>,
      req: IncomingMessage,
      socket: Socket,
      head: Buffer,
      request: Handshake.UpgradeRequest,
      auth: unknown,
      protocol: string | undefined
    ) => {
      if (socket.destroyed) return
      if (!supervisor.accepting) return refuse(socket, admission.reject("shutting_down", 503, "server shutting down"))
      if (protocol !== undefined) protocols.set(req, protocol)
      wss.get(route)!.handleUpgrade(req, socket, head, (client) => {
        handshakes.upgraded(socket)
        keptAlive.delete(socket)
        const ws = client as SwitchboardSocket
        attach(ws, socket, stats, supervisor.accept(route, ws, { request, auth, protocol }))
      })
    }

    /**
     * Runs `authenticate`. The socket is read meanwhile, so that a client
     * that goes away is noticed (the HTTP server's sockets allow half-open,
     * so its end is only an `end`): then the hook is cancelled, which frees
     * its slot. Bytes sent early (a client must wait for the 101, but may
     * pipeline) are kept for ws, up to `maxEarlyBytes`.
     */
    const authenticate = (
      route: Reactor.Route<R>,
      req: IncomingMessage,
      socket: Socket,
      head: Buffer,
      request: Handshake.UpgradeRequest,
      protocol: string | undefined
    ) => {
      let early: Array<Buffer> | undefined
      let earlyBytes = head.length
      let settled = false
      let watching = false
      const stopWatching = () => {
        watching = false
        socket.off("close", onSocketClose)
        socket.off("end", onEnd)
        socket.off("data", onData)
      }
      const onSocketClose = () => {
        stopWatching()
        cancel()
      }
      const onEnd = () => socket.destroy()
      const onData = (chunk: Buffer) => {
        earlyBytes += chunk.length
        if (earlyBytes > maxEarlyBytes) return void socket.destroy()
        ;(early ??= []).push(chunk)
      }
      const cancel = admission.authenticate(route, request, (result) => {
        settled = true
        if (watching) {
          stopWatching()
          // stop reading until ws takes the socket, as Node leaves an upgraded socket
          socket.pause()
          ;(socket as { readableFlowing: boolean | null }).readableFlowing = null
        }
        if (socket.destroyed) return
        if (result._tag === "Rejected") return refuse(socket, result)
        const data = early === undefined ? head : Buffer.concat([head, ...early])
        upgrade(route, req, socket, data, request, result.auth, protocol)
      })
      // without a hook, or with one that completed at once, it is settled already
      if (!settled && !socket.destroyed) {
        watching = true
        socket.on("close", onSocketClose)
        socket.on("end", onEnd)
        socket.on("data", onData)
      }
    }

    // The socket stays in `handshakes` until the upgrade completes, so that
    // the handshake timeout also bounds a slow `authenticate` hook.
    const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on("error", ignore)
      const verdict = admission.check(req.url ?? "/", req.headers.origin, () => socket.remoteAddress ?? "")
      if (verdict._tag === "Rejected") return refuse(socket, verdict)
      // the per-IP slot is held until the TCP socket closes, whatever the upgrade's outcome
      if (verdict.release !== undefined) socket.once("close", verdict.release)
      const request = new UpgradeRequest(verdict.target, req.headers, socket)
      // before authenticate: a client that speaks nothing the route speaks is not worth a hook's work
      const negotiated = admission.negotiate(verdict.route, req.headers["sec-websocket-protocol"], request)
      if (negotiated._tag === "Rejected") return refuse(socket, negotiated)
      // without a hook there is nothing to wait for, nor to watch
      if (verdict.route.authenticate === undefined)
        return upgrade(verdict.route, req, socket, head, request, undefined, negotiated.protocol)
      authenticate(verdict.route, req, socket, head, request, negotiated.protocol)
    }

    // Always listened to, so a plain HTTP request ends its socket's handshake
    // timeout; it is answered only on a server we own or with `onRequest`. On
    // a keep-alive socket the timeout starts again with the first byte read
    // after the response (the sweep watches `bytesRead`, so parsing is not
    // slowed), so the next request (an upgrade sent slowly, say) is bounded
    // as the first was, while an idle keep-alive socket is left to Node's
    // `keepAliveTimeout`.
    const noteRequest = (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      handshakes.end(socket)
      keptAlive.delete(socket)
      if (admission.options.handshakeTimeout > 0) {
        res.once("finish", () => {
          if (!socket.destroyed) keptAlive.set(socket, socket.bytesRead)
        })
      }
    }
    const onMetrics = (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "GET" && req.method !== "HEAD") return serveMetrics(req, res, "")
      const body = scraper!.scrape()
      // one reactor: at once, so a response pipelined before an upgrade keeps its place
      if (typeof body === "string") serveMetrics(req, res, body)
      else void body.then((text) => serveMetrics(req, res, text))
    }
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      noteRequest(req, res)
      if (scraper !== undefined && pathOf(req.url) === metricsPath) return onMetrics(req, res)
      if (!config.handleRequests) return
      if (options.onRequest !== undefined) return options.onRequest(req, res)
      // a WebSocket-only server has no use for a keep-alive socket
      res.writeHead(426, {
        Upgrade: "websocket",
        Connection: "Upgrade, close",
        "Content-Type": "text/plain; charset=utf-8"
      })
      res.end("426 Upgrade Required: this endpoint speaks WebSocket\n")
    }

    // no per-socket listener: upgrade/request end the handshake, the sweep drops dead ones.
    // Over TLS, the sockets that requests and upgrades come on are the TLS sockets, which exist
    // once the TLS handshake is done (bounded by the TLS server's own `handshakeTimeout`)
    const secure = server instanceof Tls.Server
    const connectionEvent = secure ? "secureConnection" : "connection"
    const onConnection = (socket: Socket) => handshakes.begin(socket)
    const context = yield* Effect.context<never>()
    const onTlsError = () => tlsErrorsTotal.updateUnsafe(1, context)
    // with several reactors, a scrape gathers every reactor's numbers
    const scraper = metricsPath === undefined ? undefined : MetricsScrape.make(() => PrometheusText.format(context))

    // on a server that is not ours, other listeners get what is not for us (sharedServer.ts)
    const unshare = config.shared
      ? SharedServer.share(server, {
          servesPath: (path) => admission.options.routes.has(path),
          metricsPath: scraper === undefined ? undefined : metricsPath,
          onUpgrade,
          onMetrics: (req, res) => {
            noteRequest(req, res)
            onMetrics(req, res)
          },
          onRequestSeen: noteRequest
        })
      : undefined
    if (!config.shared) server.on("upgrade", onUpgrade)
    server.on("request", onRequest)
    server.on(connectionEvent, onConnection)
    if (secure) server.on("tlsClientError", onTlsError)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        for (const socket of handshakes.keys()) socket.destroy()
        handshakes.clear()
        keptAlive.clear()
        yield* supervisor.shutdown
        server.off("upgrade", onUpgrade)
        unshare?.()
        scraper?.close()
        server.off("request", onRequest)
        server.off(connectionEvent, onConnection)
        server.off("tlsClientError", onTlsError)
        for (const ws of wss.values()) ws.close()
      })
    )
    return { supervisor, stats, shutdownTimeout: admission.options.shutdownTimeout }
  })

/** The Prometheus text exposition of the registry, for GET (and HEAD); 405 for other methods. */
const serveMetrics = (req: IncomingMessage, res: ServerResponse, body: string): void => {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" })
    res.end("405 Method Not Allowed\n")
    return
  }
  res.writeHead(200, {
    "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store"
  })
  res.end(req.method === "HEAD" ? undefined : body)
}
