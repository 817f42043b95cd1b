/**
 * The supervisor owns every connection actor of a server: it admits
 * connections from a reactor, runs their drain fibers with the server's
 * services, sweeps their lifecycle timers on the `Clock`, and on shutdown
 * closes them all with 1001, waits for the close handshakes, then terminates
 * what is left. Nothing it started survives its scope.
 *
 * A reactor calls `accept` with a `Reactor.Transport` for the new socket and
 * then feeds the returned `Reactor.Actor` with the socket's events (see
 * `Reactor` for the whole contract); `Admission.make` makes the supervisor of
 * a server.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type * as Behavior from "./Behavior.ts"
import * as CloseCode from "./CloseCode.ts"
import * as CloseReason from "./CloseReason.ts"
import type * as Connection from "./Connection.ts"
import type * as Handshake from "./Handshake.ts"
import { ActorImpl, type Host } from "./internal/actor.ts"
import * as Directory from "./internal/directory.ts"
import * as ServerStats from "./internal/serverStats.ts"
import { sweeper } from "./internal/sweeper.ts"
import type * as Reactor from "./Reactor.ts"

/**
 * Options of a supervisor.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R = never> {
  /** The sweeper's period in ms (see `Keepalive.resolutionFor`). Default 1000. */
  readonly resolution?: number
  /** How long shutdown waits for close handshakes before terminating sockets. Default 5 s. */
  readonly shutdownTimeout?: number
  /**
   * Exact timers, for tests: every event reads the Clock, and the sweeper
   * also wakes at each connection's next deadline, so a timer fires at
   * exactly its duration. Costs a Clock read per event and a wake-up per
   * deadline; servers keep the default (false) and fire within one
   * `resolution`.
   */
  readonly exactTimers?: boolean
  /** Called by the sweeper on each sweep with the Clock's time: a reactor's own timers (handshakes) ride on it. */
  readonly onSweep?: (now: number) => void
  /** Runs when shutdown begins, before the 1001s (bounded by `shutdownTimeout`; a failure is logged). */
  readonly beforeShutdown?: Effect.Effect<void, unknown, R> | undefined
}

/**
 * A supervisor of connection actors.
 *
 * @since 0.1.0
 * @category models
 */
export interface Supervisor<R> {
  /** Open connections (including those closing). */
  readonly size: number
  /** False once shutdown began: reactors must refuse new connections. */
  readonly accepting: boolean
  /** Admits a connection on `transport` and starts its actor. */
  accept(
    route: Reactor.Route<R>,
    transport: Reactor.Transport,
    info: {
      readonly request: Handshake.UpgradeRequest
      readonly auth?: unknown
      /** The subprotocol negotiated in the handshake (`Admission.negotiate`). */
      readonly protocol?: string | undefined
    }
  ): Reactor.Actor
  /** Every open connection. */
  readonly connections: Iterable<Connection.Connection<unknown>>
  /** The connections of `route` (every route's without one), as `Connection.Info`, in the order they came. */
  list(route?: string): ReadonlyArray<Connection.Info>
  /**
   * Closes every connection with 1001, waits up to `shutdownTimeout` for the
   * close handshakes, terminates the rest, and waits for their actors'
   * `onClose`. Runs by itself when the supervisor's scope closes.
   */
  readonly shutdown: Effect.Effect<void>
}

/**
 * Makes a supervisor whose actors run with the current services (which must
 * include everything the routes' behaviours need) and whose sweeper runs on
 * the current `Clock`.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { Behavior, type Reactor, ServerOptions, Supervisor } from "@switchboard/core"
 *
 * const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * // a reactor's transport; this one prints what the actor writes
 * const transport: Reactor.Transport = {
 *   send: (message) => console.log("out:", message),
 *   sendFragment: (data, fin) => console.log("out:", data, fin ? "(end)" : "…"),
 *   sendPrepared: () => {},
 *   ping: () => {},
 *   close: () => {},
 *   terminate: () => {},
 *   bufferedAmount: 0,
 *   pause: () => {},
 *   resume: () => {},
 *   flush: () => {}
 * }
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* Supervisor.make({ resolution: 100 })
 *   const route = ServerOptions.route(Echo, { keepalive: false })
 *   const request = { path: "/", query: new URLSearchParams(), headers: {}, remoteAddress: "127.0.0.1" }
 *   const actor = supervisor.accept(route, transport, { request })
 *   actor.receiveUnsafe("hello") // the actor echoes it through `transport`
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(options: Options<R> = {}): Effect.Effect<Supervisor<R>, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const resolution = options.resolution ?? 1_000
    const shutdownTimeout = options.shutdownTimeout ?? 5_000
    const context = yield* Effect.context<R>()
    const clock = yield* Clock.Clock
    const runFork = Effect.runForkWith(context)
    const actors = new Set<ActorImpl>()
    let emptyWaiters: Array<() => void> = []
    let accepting = true

    const exact = options.exactTimers === true
    const host: Host = {
      now: clock.currentTimeMillisUnsafe(),
      time: () => clock.currentTimeMillisUnsafe(),
      context: context as Context.Context<never>,
      fork: (effect) => runFork(effect),
      remove: (actor) => {
        Directory.remove(actor)
        if (actors.delete(actor)) {
          ServerStats.endedUnsafe(
            actor.route,
            actor.closeReason ?? CloseReason.lost,
            actor.bytesRead,
            actor.bytesWritten
          )
        }
        if (actors.size === 0 && emptyWaiters.length > 0) {
          const waiters = emptyWaiters
          emptyWaiters = []
          for (const wake of waiters) wake()
        }
      }
    }

    const awaitEmpty = Effect.callback<void>((resume) => {
      if (actors.size === 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      emptyWaiters.push(wake)
      return Effect.sync(() => {
        emptyWaiters = emptyWaiters.filter((w) => w !== wake)
      })
    })

    const shutdown = Effect.gen(function* () {
      const first = accepting
      accepting = false
      const hook = options.beforeShutdown
      if (first && hook !== undefined) {
        // on a fiber of its own: a hook that resists interruption must not hold shutdown past the bound
        const running = yield* Effect.provideContext(hook, context).pipe(
          Effect.catchCause((cause) => Effect.logError("beforeShutdown failed", cause)),
          Effect.forkDetach
        )
        const done = yield* Effect.timeoutOption(Fiber.await(running), shutdownTimeout)
        if (done._tag === "None") {
          yield* Effect.logWarning(`beforeShutdown: still running after ${shutdownTimeout} ms; shutting down`)
          running.interruptUnsafe()
        }
      }
      if (actors.size === 0) return
      const began = clock.currentTimeMillisUnsafe()
      const total = actors.size
      host.now = began
      for (const actor of actors) actor.closeWith(CloseCode.GoingAway, "server shutdown", CloseReason.shutdown)
      yield* Effect.timeoutOption(awaitEmpty, shutdownTimeout)
      const terminated = actors.size
      const report = (stuck: number) =>
        Effect.logInfo(
          `shutdown: ${total - terminated} of ${total} connection(s) closed with 1001, ${terminated} terminated` +
            `${stuck > 0 ? `, ${stuck} interrupted in a callback` : ""}, in ${clock.currentTimeMillisUnsafe() - began} ms`
        ).pipe(Effect.annotateLogs({ closed: total - terminated, terminated, interrupted: stuck }))
      if (terminated === 0) return yield* report(0)
      yield* Effect.logWarning(`shutdown: terminating ${terminated} connection(s) that did not finish closing`)
      for (const actor of actors) actor.terminate(CloseReason.shutdown)
      yield* Effect.timeoutOption(awaitEmpty, shutdownTimeout)
      const stuck = [...actors].flatMap((actor) => (actor.fiber ? [actor.fiber] : []))
      if (stuck.length > 0) {
        yield* Effect.logWarning(`shutdown: interrupting ${stuck.length} actor(s) stuck in a callback`)
        yield* Fiber.interruptAll(stuck)
      }
      yield* report(stuck.length)
      for (const actor of actors) {
        Directory.remove(actor)
        ServerStats.endedUnsafe(
          actor.route,
          actor.closeReason ?? CloseReason.shutdown,
          actor.bytesRead,
          actor.bytesWritten
        )
      }
      actors.clear()
    })

    if (exact) {
      Object.defineProperty(host, "now", { get: () => clock.currentTimeMillisUnsafe(), set: () => {} })
    }

    ServerStats.registerUnsafe(context as Context.Context<never>)
    const untrack = ServerStats.track(actors)
    yield* Effect.addFinalizer(() => Effect.andThen(shutdown, Effect.sync(untrack)))
    // one sweeper per supervisor: no timer per connection or per message
    yield* Effect.forkScoped(sweeper({ actors, host, clock, resolution, exact, onSweep: options.onSweep }))

    const supervisor: Supervisor<R> = {
      get size() {
        return actors.size
      },
      get accepting() {
        return accepting
      },
      connections: actors,
      list: (route) => {
        const infos: Array<Connection.Info> = []
        for (const actor of actors) {
          if (route !== undefined && actor.route !== route) continue
          infos.push({
            id: actor.id,
            route: actor.route,
            remoteAddress: actor.remoteAddress,
            auth: actor.auth,
            protocol: actor.protocol,
            connectedAt: actor.connectedAt,
            isOpen: actor.isOpen
          })
        }
        return infos
      },
      accept: (route, transport, info) => {
        const actor = new ActorImpl(
          host,
          transport,
          route.settings,
          route.behavior as Behavior.Behavior<unknown, unknown>,
          info.request,
          info.auth,
          info.protocol,
          route.path
        )
        actors.add(actor)
        Directory.add(actor)
        ServerStats.openedUnsafe(route.path)
        return actor
      },
      shutdown
    }
    return supervisor
  })
