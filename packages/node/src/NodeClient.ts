/**
 * Outgoing connections with the same `Behavior` API as the server's: a bot,
 * a server-to-server link, a load generator or a real-socket test writes
 * its connection as an actor, and gets the same mailbox, keepalive, timers,
 * backpressure and `onClose` as a server connection, from the same code
 * (the core `Supervisor` runs it; `ws`'s client opens the socket).
 *
 * `connect` resolves once the first connection is open. With `reconnect` (a
 * `Schedule`), a connection that ends (or a first attempt that fails) is
 * opened again after the schedule's delay, and `init` runs again on each new
 * connection; the schedule starts afresh after each connection that opened,
 * and the client stops when it gives up. `close` (or the end of the scope)
 * closes the connection and stops reconnecting.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
 * import { Behavior } from "@switchboard/core"
 * import { NodeClient } from "@switchboard/node"
 *
 * const Bot = Behavior.make({
 *   init: (conn) => conn.send("hello"),
 *   onMessage: (_conn, message) => Effect.log("got", message)
 * })
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const client = yield* NodeClient.connect("ws://127.0.0.1:8080/chat", Bot, {
 *       protocols: ["chat.v1"],
 *       reconnect: Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])
 *     })
 *     yield* client.done
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { Socket } from "node:net"
import type * as Tls from "node:tls"
import {
  type Behavior,
  type Connection,
  Keepalive,
  type Reactor,
  ServerOptions,
  type Subprotocol,
  Supervisor
} from "@switchboard/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Deflate from "./internal/deflate.ts"
import { attach, type ReactorStats, SwitchboardSocket } from "./internal/reactor.ts"
import { StreamingSocket } from "./internal/streamingReceiver.ts"
import * as NodeClientError from "./NodeClientError.ts"

/**
 * Options of `connect`: the connection's settings (as a server route's, but
 * for the server-side subprotocol choice), and what the opening handshake
 * sends.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<Connection.Options, keyof Subprotocol.Options> {
  /** The subprotocols to offer, in order of preference; the server's choice is `conn.protocol`. */
  readonly protocols?: ReadonlyArray<string>
  /** Extra request headers (an `Authorization`, an `Origin`, a cookie). */
  readonly headers?: Readonly<Record<string, string>>
  /** TLS settings for `wss://` URLs: `ca` for a private certificate authority, `cert`/`key` for a client certificate, `servername`. */
  readonly tls?: Tls.ConnectionOptions
  /** The opening handshake's bound (TCP, TLS and the upgrade). Default 10 seconds. */
  readonly handshakeTimeout?: Duration.Input
  /**
   * Opens the connection again after it ends or fails to open, after the
   * schedule's delays, until it gives up. Its input is why (a
   * `NodeClientError`). Default: no reconnect.
   */
  readonly reconnect?: Schedule.Schedule<unknown, NodeClientError.NodeClientError>
  /** At the end of the scope, how long the close handshake may take before the socket is destroyed. Default 5 seconds. */
  readonly shutdownTimeout?: Duration.Input
}

/**
 * A client: its current connection and its life.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeClient<in out I = never> {
  /** The open connection, or `undefined` between a connection's end and the next one. */
  readonly connection: Connection.Connection<I> | undefined
  /** Waits for an open connection (the current one, or the next after a reconnect); fails once the client has given up. */
  readonly connected: Effect.Effect<Connection.Connection<I>, NodeClientError.NodeClientError>
  /** Connections opened so far: 1 after `connect`, one more per reconnect. */
  readonly connections: number
  /** Closes the connection (default 1000) and stops reconnecting; `done` then succeeds once `onClose` has run. */
  close(code?: number, reason?: string): Effect.Effect<void>
  /**
   * Resolves when the client has stopped: succeeds after `close`, or when
   * the connection ended without a reconnect policy; fails with the last
   * error when the reconnect schedule gave up.
   */
  readonly done: Effect.Effect<void, NodeClientError.NodeClientError>
}

/**
 * Connects to `url` (`ws://` or `wss://`) and runs `behavior` on the
 * connection, in the current scope. Fails with `ConnectFailed` if the first
 * connection cannot be opened (after the reconnect schedule, if any, gave
 * up), or `InvalidOptions`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = <I, R>(
  url: string,
  // a client's connection has no authenticate hook: `conn.auth` is undefined
  behavior: Behavior.Behavior<I, R, undefined>,
  options: Options = {}
): Effect.Effect<NodeClient<I>, NodeClientError.NodeClientError, Scope.Scope | R> =>
  Effect.gen(function* () {
    const fail = (reason: NodeClientError.Reason) => new NodeClientError.NodeClientError({ url, reason })
    const checked = yield* Effect.try({
      try: () => {
        const parsed = new URL(url)
        if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
          throw new RangeError(`url: must be ws:// or wss://, got ${parsed.protocol}//`)
        }
        return {
          parsed,
          route: ServerOptions.route(behavior, options),
          handshakeTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.handshakeTimeout ?? "10 seconds")),
          shutdownTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.shutdownTimeout ?? "5 seconds"))
        }
      },
      catch: (error) => fail(new NodeClientError.InvalidOptions({ message: String((error as Error).message ?? error) }))
    })
    const { parsed, route } = checked
    const supervisor = yield* Supervisor.make<R>({
      resolution: Keepalive.resolutionFor([route.settings.timers]),
      shutdownTimeout: checked.shutdownTimeout
    })
    const stats: ReactorStats = { pauses: 0 }
    const request: Connection.Request = {
      path: parsed.pathname,
      query: parsed.searchParams,
      headers: Object.fromEntries(Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
    }

    /** One connection's life: opened, and how it ended (the peer's close code). */
    interface Opened {
      readonly actor: Reactor.Actor
      ended: { code: number; reason: string } | undefined
    }

    const open: Effect.Effect<Opened, NodeClientError.NodeClientError> = Effect.callback((resume) => {
      const ws = new (route.settings.receive === "stream" ? StreamingSocket : SwitchboardSocket)(
        url,
        [...(options.protocols ?? [])],
        {
          ...options.tls,
          headers: { ...options.headers },
          handshakeTimeout: checked.handshakeTimeout,
          perMessageDeflate: Deflate.wsOptions(route.settings.compression),
          maxPayload: route.settings.maxMessageBytes,
          followRedirects: false
        }
      )
      let settled = false
      const failed = (message: string, status: number | undefined) => {
        if (settled) return
        settled = true
        ws.terminate()
        resume(Effect.fail(fail(new NodeClientError.ConnectFailed({ message, status }))))
      }
      ws.once("unexpected-response", (req, res) => {
        failed(`the server answered ${res.statusCode} ${res.statusMessage ?? ""}`.trim(), res.statusCode)
        req.destroy()
      })
      const onError = (error: Error) => failed(error.message, undefined)
      ws.on("error", onError)
      ws.once("close", (code) => failed(`closed before it opened (${code})`, undefined))
      ws.once("open", () => {
        if (settled) return
        settled = true
        ws.off("error", onError)
        ws.removeAllListeners("close")
        const socket = (ws as unknown as { readonly _socket: Socket })._socket
        const actor = supervisor.accept(route, ws, {
          request: { ...request, remoteAddress: socket.remoteAddress ?? "" },
          protocol: ws.protocol === "" ? undefined : ws.protocol
        })
        const opened: Opened = { actor, ended: undefined }
        ws.once("close", (code, reason) => {
          opened.ended = { code, reason: reason.toString() }
        })
        attach(ws, socket, stats, actor)
        resume(Effect.succeed(opened))
      })
      return Effect.sync(() => {
        if (!settled) {
          settled = true
          ws.terminate()
        }
      })
    })

    // ---------------------------------------------------------------- the client's state
    let current: Opened | undefined
    let connections = 0
    let stopped = false
    let result: Exit.Exit<void, NodeClientError.NodeClientError> | undefined
    let waiters: Array<() => void> = []
    const wake = () => {
      const all = waiters
      waiters = []
      for (const waiter of all) waiter()
    }
    const finish = (exit: Exit.Exit<void, NodeClientError.NodeClientError>) => {
      result ??= exit
      current = undefined
      wake()
    }
    const opened = (connection: Opened) => {
      current = connection
      connections++
      wake()
    }
    /** Waits until `ready` gives a value, looking again at each change. */
    const until = <A>(ready: () => Effect.Effect<A, NodeClientError.NodeClientError> | undefined) =>
      Effect.callback<A, NodeClientError.NodeClientError>((resume) => {
        let done = false
        const attempt = () => {
          if (done) return
          const effect = ready()
          if (effect !== undefined) {
            done = true
            resume(effect)
          } else waiters.push(attempt)
        }
        attempt()
        return Effect.sync(() => {
          done = true
        })
      })

    /** Opens a connection, retrying after `lastError` while the schedule goes on. */
    const reopen = (
      lastError: NodeClientError.NodeClientError,
      schedule: Schedule.Schedule<unknown, NodeClientError.NodeClientError>
    ) =>
      Effect.gen(function* () {
        const step = yield* Schedule.toStepWithSleep(schedule)
        let error = lastError
        while (true) {
          if (Exit.isFailure(yield* Effect.exit(step(error)))) return yield* Effect.fail(error)
          const attempt = yield* Effect.exit(open)
          if (Exit.isSuccess(attempt)) return attempt.value
          const failure = attempt.cause.reasons.find((r) => r._tag === "Fail")
          if (failure === undefined) return yield* Effect.failCause(attempt.cause)
          error = failure.error
        }
      })

    // the first connection: at once, then as the schedule says
    const first = yield* Effect.exit(open)
    if (Exit.isSuccess(first)) opened(first.value)
    else {
      const failure = first.cause.reasons.find((r) => r._tag === "Fail")
      if (failure === undefined || options.reconnect === undefined) return yield* Effect.failCause(first.cause)
      opened(yield* reopen(failure.error, options.reconnect))
    }

    // the connection's end, and the next ones
    const life = Effect.gen(function* () {
      while (true) {
        const connection = current!
        yield* connection.actor.finished
        current = undefined
        wake()
        if (stopped || options.reconnect === undefined) return
        const ended = connection.ended ?? { code: 1006, reason: "" }
        const error = fail(new NodeClientError.Disconnected(ended))
        opened(yield* reopen(error, options.reconnect))
        if (stopped) yield* Effect.orDie(current!.actor.connection.close())
      }
    })
    const fiber = yield* Effect.forkScoped(
      life.pipe(
        Effect.onExit((exit) =>
          Effect.sync(() =>
            finish(
              Exit.isFailure(exit) && !Exit.hasInterrupts(exit)
                ? (exit as Exit.Exit<never, NodeClientError.NodeClientError>)
                : Exit.void
            )
          )
        )
      )
    )

    const client: NodeClient<I> = {
      get connection() {
        return current?.actor.connection as Connection.Connection<I> | undefined
      },
      connected: until(() => {
        if (current?.actor.connection.isOpen) {
          return Effect.succeed(current.actor.connection as Connection.Connection<I>)
        }
        if (result !== undefined) {
          return Exit.isFailure(result)
            ? (result as Exit.Exit<never, NodeClientError.NodeClientError>)
            : Effect.fail(fail(new NodeClientError.Disconnected({ code: 1000, reason: "closed by the client" })))
        }
        return undefined
      }),
      get connections() {
        return connections
      },
      close: (code = 1000, reason = "") =>
        Effect.suspend(() => {
          stopped = true
          const connection = current
          // between connections: stop waiting for the next one
          if (connection === undefined) return Fiber.interrupt(fiber)
          return Effect.ignore(connection.actor.connection.close(code, reason))
        }),
      done: until(() => result)
    }
    return client
  })
