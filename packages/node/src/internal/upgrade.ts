/**
 * The HTTP side of the reactor: routing an upgrade request to a route,
 * admission (shutdown, origin, connection limits, authenticate hook), plain
 * HTTP answers for what is not a WebSocket, and the handshake timeout.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { STATUS_CODES } from "node:http"
import type { Socket } from "node:net"
import type { Handshake, Supervisor } from "@switchboard/core"
import { Cause, type Context, Effect, Exit, Metric } from "effect"
import { WebSocketServer } from "ws"
import { IpLimit } from "./ipLimit.ts"
import { type RejectReason, upgradesRejectedTotal } from "./metrics.ts"
import { attach, type ReactorStats, SwitchboardSocket } from "./reactor.ts"

/** A resolved route with the ws server that parses its frames. */
export interface MountedRoute<R> {
  readonly route: Supervisor.Route<R>
  readonly wss: WebSocketServer
}

export interface MountOptions<R> {
  readonly routes: ReadonlyMap<string, Supervisor.Route<R>>
  readonly supervisor: Supervisor.Supervisor<R>
  readonly authenticate: Handshake.Authenticate<unknown, R> | undefined
  readonly allowedOrigins: ReadonlySet<string> | undefined
  readonly maxConnections: number
  /** Infinity: no per-IP limit. */
  readonly maxConnectionsPerIp: number
  readonly handshakeTimeout: number
  readonly onRequest: ((request: IncomingMessage, response: ServerResponse) => void) | undefined
  /** Answer plain HTTP requests (426, or `onRequest`): true for a server we own, or when `onRequest` is given. */
  readonly handleRequests: boolean
  /** Runs `effect` with the server's services; returns its interruptor. */
  readonly runCallback: <A, E>(effect: Effect.Effect<A, E, R>, onExit: (exit: Exit.Exit<A, E>) => void) => () => void
  readonly now: () => number
  /** For the metrics' `updateUnsafe`. */
  readonly context: Context.Context<never>
}

/** Writes a plain HTTP response on a raw socket and closes it. */
export const reject = (socket: Socket, status: number, message?: string, headers: string = ""): void => {
  if (socket.destroyed) return
  const body = message ?? STATUS_CODES[status] ?? ""
  socket.once("finish", socket.destroy)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      `Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n${headers}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

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
  constructor(path: string, search: string, headers: Handshake.UpgradeRequest["headers"], socket: Socket) {
    this.path = path
    this.search = search
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
 * Splits an origin-form request target ("/chat?room=a") into path and query
 * string without building a `URL`; anything else (absolute-form, dot
 * segments, percent-escapes in the path) goes through `URL`. Undefined when
 * it is malformed.
 */
const parseTarget = (target: string): { readonly path: string; readonly search: string } | undefined => {
  const q = target.indexOf("?")
  const path = q < 0 ? target : target.slice(0, q)
  if (path.charCodeAt(0) === 47 /* / */ && !path.includes("/.") && !path.includes("%")) {
    return { path, search: q < 0 ? "" : target.slice(q) }
  }
  try {
    const url = new URL(target, "http://localhost")
    return { path: url.pathname, search: url.search }
  } catch {
    return undefined
  }
}

/**
 * Installs the request, upgrade and connection listeners on `server`.
 * Returns the sweep (handshake timeout) and the detach function.
 */
export const mount = <R>(server: Server, options: MountOptions<R>) => {
  const { supervisor, routes } = options
  const mounted = new Map<string, MountedRoute<R>>()
  for (const [path, route] of routes) {
    mounted.set(path, {
      route,
      wss: new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: route.settings.maxMessageBytes,
        WebSocket: SwitchboardSocket
      })
    })
  }
  const stats: ReactorStats = { pauses: 0 }
  /** Sockets whose HTTP request has not completed yet, with when they connected (or their last response ended). */
  const handshaking = new Map<Socket, number>()
  /** Keep-alive sockets between requests, with their `bytesRead` when the last response ended. */
  const keptAlive = new Map<Socket, number>()
  /** Upgrades admitted and waiting for their `authenticate` hook: they count against `maxConnections`. */
  let pending = 0
  const perIp = Number.isFinite(options.maxConnectionsPerIp) ? new IpLimit(options.maxConnectionsPerIp) : undefined
  const rejections = new Map<RejectReason, Metric.Metric<number, Metric.CounterState<number>>>()
  const count = (reason: RejectReason): void => {
    let counter = rejections.get(reason)
    if (counter === undefined) {
      counter = Metric.withAttributes(upgradesRejectedTotal, { reason })
      rejections.set(reason, counter)
    }
    counter.updateUnsafe(1, options.context)
  }
  const refuse = (socket: Socket, reason: RejectReason, status: number, message?: string): void => {
    count(reason)
    reject(socket, status, message)
  }

  const upgrade = (
    entry: MountedRoute<R>,
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    request: Handshake.UpgradeRequest,
    auth: unknown
  ) => {
    if (socket.destroyed) return
    if (!supervisor.accepting) return refuse(socket, "shutting_down", 503, "server shutting down")
    entry.wss.handleUpgrade(req, socket, head, (client) => {
      handshaking.delete(socket)
      keptAlive.delete(socket)
      const ws = client as SwitchboardSocket
      const actor = supervisor.accept(entry.route, ws, { request, auth })
      attach(ws, socket, stats, actor)
    })
  }

  /**
   * Runs the `authenticate` hook with a slot of `maxConnections` held. The
   * socket is read meanwhile, so that a client that goes away is noticed:
   * then the slot is freed and the hook interrupted at once, as when the
   * handshake timeout destroys the socket; hooks that hang cannot pin the
   * server's capacity. Bytes the client sends early (it must wait for the
   * 101, but may pipeline) are kept for ws, up to `maxEarlyBytes`.
   */
  const authenticateThen = (
    authenticate: Handshake.Authenticate<unknown, R>,
    entry: MountedRoute<R>,
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    request: Handshake.UpgradeRequest
  ) => {
    pending++
    let holding = true
    let early: Array<Buffer> | undefined
    let earlyBytes = head.length
    const release = () => {
      if (!holding) return
      holding = false
      pending--
      socket.off("close", onSocketClose)
      socket.off("data", onData)
      socket.off("end", onEnd)
    }
    const onSocketClose = () => {
      release()
      interrupt()
    }
    // the HTTP server's sockets allow half-open: a client that leaves only ends its side
    const onEnd = () => socket.destroy()
    const onData = (chunk: Buffer) => {
      earlyBytes += chunk.length
      if (earlyBytes > maxEarlyBytes) return void socket.destroy()
      ;(early ??= []).push(chunk)
    }
    const interrupt = options.runCallback(authenticate(request), (exit) => {
      release()
      if (socket.destroyed) return
      // stop reading until ws takes the socket (as Node leaves an upgraded socket)
      socket.pause()
      ;(socket as { readableFlowing: boolean | null }).readableFlowing = null
      if (Exit.isSuccess(exit)) {
        const data = early === undefined ? head : Buffer.concat([head, ...early])
        return upgrade(entry, req, socket, data, request, exit.value)
      }
      const failure = exit.cause.reasons.find(Cause.isFailReason)
      if (failure !== undefined) return refuse(socket, "rejected", failure.error.status, failure.error.message)
      options.runCallback(Effect.logError("authenticate failed", exit.cause), ignore)
      refuse(socket, "auth_error", 500)
    })
    // the hook may have completed synchronously
    if (holding) {
      socket.on("close", onSocketClose)
      socket.on("end", onEnd)
      socket.on("data", onData)
    }
  }

  // The socket stays in `handshaking` until the upgrade completes, so that the
  // handshake timeout also bounds a slow `authenticate` hook.
  const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", ignore)
    if (!supervisor.accepting) return refuse(socket, "shutting_down", 503, "server shutting down")
    const target = parseTarget(req.url ?? "/")
    if (target === undefined) return refuse(socket, "malformed", 400, "malformed request target")
    const entry = mounted.get(target.path)
    if (entry === undefined) return refuse(socket, "not_found", 404)
    if (options.allowedOrigins !== undefined) {
      const origin = req.headers.origin
      if (origin === undefined || !options.allowedOrigins.has(origin)) {
        return refuse(socket, "origin", 403, "origin not allowed")
      }
    }
    if (supervisor.size + pending >= options.maxConnections) {
      return refuse(socket, "capacity", 503, "too many connections")
    }
    if (perIp !== undefined && !perIp.acquire(socket)) {
      return refuse(socket, "per_ip", 429, "too many connections from this address")
    }
    const request = new UpgradeRequest(target.path, target.search, req.headers, socket)
    const authenticate = options.authenticate
    if (authenticate === undefined) return upgrade(entry, req, socket, head, request, undefined)
    authenticateThen(authenticate, entry, req, socket, head, request)
  }

  // Always listened to, so a plain HTTP request ends its socket's handshake
  // timeout; it is answered only on a server we own or with `onRequest`. On a
  // keep-alive socket the timeout starts again with the first byte read after
  // the response (the sweep watches `bytesRead`, so parsing is not slowed), so
  // the next request (an upgrade sent slowly, say) is bounded as the first
  // was, while an idle keep-alive socket is left to Node's `keepAliveTimeout`.
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket
    handshaking.delete(socket)
    keptAlive.delete(socket)
    if (options.handshakeTimeout > 0) {
      res.once("finish", () => {
        if (!socket.destroyed) keptAlive.set(socket, socket.bytesRead)
      })
    }
    if (!options.handleRequests) return
    if (options.onRequest !== undefined) return options.onRequest(req, res)
    const body = "426 Upgrade Required: this endpoint speaks WebSocket\n"
    // a WebSocket-only server has no use for a keep-alive socket
    res.writeHead(426, {
      Upgrade: "websocket",
      Connection: "Upgrade, close",
      "Content-Type": "text/plain; charset=utf-8"
    })
    res.end(body)
  }

  const onConnection = (socket: Socket) => {
    // no per-socket listener: upgrade/request remove the entry, the sweep drops dead ones
    if (options.handshakeTimeout > 0) handshaking.set(socket, options.now())
  }

  server.on("upgrade", onUpgrade)
  server.on("request", onRequest)
  server.on("connection", onConnection)

  return {
    stats,
    /** Peers counted by the per-IP limit (for tests and metrics). */
    peers: () => perIp?.size ?? 0,
    /** Drops sockets whose upgrade request did not complete within `handshakeTimeout`. */
    sweep: (now: number) => {
      for (const [socket, bytesRead] of keptAlive) {
        if (socket.destroyed) keptAlive.delete(socket)
        else if (socket.bytesRead > bytesRead) {
          // the next request has begun
          keptAlive.delete(socket)
          handshaking.set(socket, now)
        }
      }
      for (const [socket, since] of handshaking) {
        if (socket.destroyed) handshaking.delete(socket)
        else if (now - since >= options.handshakeTimeout) {
          handshaking.delete(socket)
          count("handshake_timeout")
          socket.destroy()
        }
      }
    },
    /** Destroys sockets still in their HTTP handshake. */
    dropHandshaking: () => {
      for (const socket of handshaking.keys()) socket.destroy()
      handshaking.clear()
      keptAlive.clear()
    },
    detach: () => {
      server.off("upgrade", onUpgrade)
      server.off("request", onRequest)
      server.off("connection", onConnection)
      for (const { wss } of mounted.values()) wss.close()
    }
  }
}
