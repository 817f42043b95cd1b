/**
 * The supervisor owns every connection actor of a server: it admits
 * connections from a reactor, runs their drain fibers with the server's
 * services, sweeps their lifecycle timers on the `Clock`, and on shutdown
 * closes them all with 1001, waits for the close handshakes, then terminates
 * what is left. Nothing it started survives its scope.
 *
 * This is the inbound half of the reactor–actor boundary: a reactor calls
 * `accept` with a `Transport` for the new socket and then feeds the returned
 * `Actor` with the socket's events.
 *
 * @since 0.1.0
 */
import { Clock, type Context, Effect, Fiber, type Scope } from "effect"
import type * as Behavior from "./Behavior.ts"
import * as CloseCode from "./CloseCode.ts"
import * as CloseReason from "./CloseReason.ts"
import * as Connection from "./Connection.ts"
import type * as ConnectionError from "./ConnectionError.ts"
import type * as Handshake from "./Handshake.ts"
import { ActorImpl, type Host, type RouteSettings } from "./internal/actor.ts"
import * as Keepalive from "./Keepalive.ts"
import type { Message } from "./Message.ts"
import * as RateLimit from "./RateLimit.ts"
import type { Transport } from "./Transport.ts"

/**
 * The reactor's handle on an actor: one method per socket event. All are
 * synchronous and cheap; none throws.
 *
 * @since 0.1.0
 * @category models
 */
export interface Actor {
  /** The route's `maxMessageBytes`, for the reactor's frame parser. */
  readonly maxMessageBytes: number
  /** Resolves once the actor has run `onClose` and left the supervisor. */
  readonly finished: Effect.Effect<void>
  /** The connection as its behaviour sees it. */
  readonly connection: Connection.Connection<unknown>
  /** A complete message from the peer. The actor pauses the transport when its mailbox is full. */
  receiveUnsafe(message: Message): void
  /** Any other inbound frame (the Node reactor reports pings): counts as activity for keepalive. */
  activityUnsafe(): void
  /** A pong from the peer. */
  pongUnsafe(): void
  /** The transport's outbound buffer drained. */
  drainUnsafe(): void
  /** The peer broke the protocol or a limit; a close follows. */
  failedUnsafe(reason: ConnectionError.Reason): void
  /** The socket closed: the peer's close code (1005 without one, 1006 if it dropped) and reason. */
  closedUnsafe(code: number, reason: string): void
}

/**
 * A behaviour with its resolved per-route settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route<R> {
  readonly behavior: Behavior.Behavior<never, R>
  readonly settings: RouteSettings
}

/**
 * Resolves a route's options over the server's. Throws a `RangeError` naming
 * the bad setting; servers call it while building their layer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const route = <R>(
  behavior: Behavior.Behavior<never, R>,
  options: Connection.Options | undefined,
  base?: Connection.Options
): Route<R> => {
  const mailboxCapacity = options?.mailboxCapacity ?? base?.mailboxCapacity ?? Connection.defaultMailboxCapacity
  const highWaterMark = options?.highWaterMark ?? base?.highWaterMark ?? Connection.defaultHighWaterMark
  const maxMessageBytes = options?.maxMessageBytes ?? base?.maxMessageBytes ?? Connection.defaultMaxMessageBytes
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1) {
    throw new RangeError(`maxMessageBytes: must be a positive integer, got ${maxMessageBytes}`)
  }
  if (!Number.isInteger(mailboxCapacity) || mailboxCapacity < 1) {
    throw new RangeError(`mailboxCapacity: must be a positive integer, got ${mailboxCapacity}`)
  }
  if (!Number.isFinite(highWaterMark) || highWaterMark < 16 * 1024) {
    throw new RangeError(`highWaterMark: must be at least 16384 bytes, got ${highWaterMark}`)
  }
  return {
    behavior,
    settings: {
      mailboxCapacity,
      highWaterMark,
      maxMessageBytes,
      timers: Keepalive.resolve(options, Keepalive.resolve(base)),
      rateLimit: RateLimit.resolve(options?.rateLimit, RateLimit.resolve(base?.rateLimit))
    }
  }
}

/**
 * Options of a supervisor.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
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
    route: Route<R>,
    transport: Transport,
    info: { readonly request: Handshake.UpgradeRequest; readonly auth?: unknown }
  ): Actor
  /** Every open connection. */
  readonly connections: Iterable<Connection.Connection<unknown>>
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
 * import { Effect } from "effect"
 * import { Supervisor } from "@switchboard/core"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* Supervisor.make({ resolution: 100 })
 *   const route = Supervisor.route(Echo, { keepalive: false })
 *   const actor = supervisor.accept(route, myTransport, { request: { ...request, remoteAddress: "127.0.0.1" } })
 *   actor.receiveUnsafe("hello")
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(options: Options = {}): Effect.Effect<Supervisor<R>, never, Scope.Scope | R> =>
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
        actors.delete(actor)
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
      accepting = false
      if (actors.size === 0) return
      host.now = clock.currentTimeMillisUnsafe()
      for (const actor of actors) actor.closeWith(CloseCode.GoingAway, "server shutdown", CloseReason.shutdown)
      yield* Effect.timeoutOption(awaitEmpty, shutdownTimeout)
      if (actors.size === 0) return
      yield* Effect.logWarning(`shutdown: terminating ${actors.size} connection(s) that did not finish closing`)
      for (const actor of actors) actor.terminate(CloseReason.shutdown)
      yield* Effect.timeoutOption(awaitEmpty, shutdownTimeout)
      const stuck = [...actors].flatMap((actor) => (actor.fiber ? [actor.fiber] : []))
      if (stuck.length > 0) {
        yield* Effect.logWarning(`shutdown: interrupting ${stuck.length} actor(s) stuck in a callback`)
        yield* Fiber.interruptAll(stuck)
      }
      actors.clear()
    })

    if (exact) {
      Object.defineProperty(host, "now", { get: () => clock.currentTimeMillisUnsafe(), set: () => {} })
    }

    // One sweeper per supervisor: no timer per connection or per message.
    const sweep = Effect.suspend(() => {
      const now = clock.currentTimeMillisUnsafe()
      host.now = now
      let next = Number.POSITIVE_INFINITY
      for (const actor of actors) next = Math.min(next, actor.checkTimers(now))
      options.onSweep?.(now)
      const delay = exact ? Math.max(1, Math.min(resolution, next - now)) : resolution
      return Effect.sleep(delay)
    })
    yield* Effect.addFinalizer(() => shutdown)
    yield* Effect.forkScoped(Effect.andThen(Effect.sleep(resolution), Effect.forever(sweep)))

    const supervisor: Supervisor<R> = {
      get size() {
        return actors.size
      },
      get accepting() {
        return accepting
      },
      connections: actors,
      accept: (route, transport, info) => {
        const actor = new ActorImpl(
          host,
          transport,
          route.settings,
          route.behavior as Behavior.Behavior<unknown, unknown>,
          info.request,
          info.auth
        )
        actors.add(actor)
        return actor
      },
      shutdown
    }
    return supervisor
  })
