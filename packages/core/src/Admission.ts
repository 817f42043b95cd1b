/**
 * Admission: what a server decides about an upgrade request before a
 * connection exists, the same on every reactor. A reactor makes one
 * `Admission` per server; it resolves the server's options, makes the
 * `Supervisor`, and then, per request:
 *
 * 1. `check(target, origin, address)`, in this order: shutting down (503),
 *    a malformed request target (400), an unknown path (404), an origin not
 *    allowed (403), `maxConnections` reached (503), `maxConnectionsPerIp`
 *    reached (429). An admitted request holds its per-IP slot until the
 *    reactor calls `release` (when its socket closes).
 * 2. `authenticate(request, done)`: runs the hook, if any, holding a
 *    `maxConnections` slot. The reactor calls the returned `cancel` when the
 *    socket goes; that interrupts the hook and frees the slot at once, so
 *    hooks that hang cannot fill the server. A `HandshakeRejected` becomes its
 *    status; a defect is logged and becomes 500.
 * 3. the handshake timeout: `handshakes.begin(key)` when a socket connects
 *    (or a keep-alive socket starts its next request), `handshakes.end(key)`
 *    when its upgrade completes or it turns out to be plain HTTP. The
 *    supervisor's sweeper calls `onHandshakeExpired(key)` for the ones that
 *    take longer than `handshakeTimeout`.
 *
 * Every rejection is counted in `switchboard_upgrades_rejected_total` by
 * `reason`. The reactor writes the answer (an HTTP response, a socket
 * destroyed); the decision and its bookkeeping are here.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type * as Handshake from "./Handshake.ts"
import { stats } from "./internal/serverStats.ts"
import type * as Reactor from "./Reactor.ts"
import type { ServerError } from "./ServerError.ts"
import * as ServerOptions from "./ServerOptions.ts"
import * as Subprotocol from "./Subprotocol.ts"
import * as Supervisor from "./Supervisor.ts"

/**
 * Why an upgrade request was turned away: the `reason` attribute of
 * `upgradesRejectedTotal`.
 *
 * @since 0.1.0
 * @category models
 */
export type RejectReason =
  | "shutting_down"
  | "malformed"
  | "not_found"
  | "origin"
  | "capacity"
  | "per_ip"
  | "rejected"
  | "auth_error"
  | "handshake_timeout"
  | "protocol"

/**
 * Upgrade requests turned away, by `reason`: `shutting_down`, `malformed`,
 * `not_found`, `origin`, `capacity` (maxConnections), `per_ip`
 * (maxConnectionsPerIp), `rejected` (authenticate's HandshakeRejected),
 * `auth_error` (a defect in authenticate), `handshake_timeout` and
 * `protocol` (no acceptable subprotocol, or `selectProtocol` failed; a
 * malformed `Sec-WebSocket-Protocol` counts as `malformed`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const upgradesRejectedTotal = Metric.counter("switchboard_upgrades_rejected_total", {
  description: "WebSocket upgrade requests turned away, by reason",
  incremental: true
})

/**
 * A request target split into path and query string.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly path: string
  /** With its leading `?`, or empty. */
  readonly search: string
}

/**
 * The answer to a request that is turned away.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rejection {
  readonly _tag: "Rejected"
  readonly status: number
  /** The plain-text body; the status text when undefined. */
  readonly message: string | undefined
  readonly reason: RejectReason
}

/**
 * What `check` decided.
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict<R> =
  | {
      readonly _tag: "Admitted"
      readonly route: Reactor.Route<R>
      readonly target: Target
      /** Frees the per-IP slot (undefined without a per-IP limit); the reactor calls it when the socket closes. */
      readonly release: (() => void) | undefined
    }
  | Rejection

/**
 * The bookkeeping of the handshake timeout, keyed by the reactor's socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handshakes<K> {
  /** The handshake of `key` starts now. */
  begin(key: K): void
  /** The handshake of `key` is over (upgraded, or plain HTTP). */
  end(key: K): void
  /** The upgrade of `key` completed: `end`, and its duration goes to `switchboard_handshake_duration_seconds`. */
  upgraded(key: K): void
  /** The handshakes in progress (shutdown drops them). */
  keys(): Iterable<K>
  /** Ends every handshake without expiring it. */
  clear(): void
}

/**
 * A server's admission.
 *
 * @since 0.1.0
 * @category models
 */
export interface Admission<R, K> {
  readonly options: ServerOptions.Resolved<R>
  readonly supervisor: Supervisor.Supervisor<R>
  /** The checks before `authenticate`; `address` is read only when a per-IP limit is set. */
  check(target: string, origin: string | undefined, address: () => string): Verdict<R>
  /**
   * Runs the route's `authenticate` (its own, else the server's; without
   * one it succeeds at once) and calls `done`
   * once with the connection's `auth` value or a rejection; not at all when
   * cancelled. Returns `cancel`: interrupts the hook and frees its slot.
   */
  authenticate(
    route: Reactor.Route<R>,
    request: Handshake.UpgradeRequest,
    done: (result: { readonly _tag: "Authenticated"; readonly auth: unknown } | Rejection) => void
  ): () => void
  /**
   * Negotiates the subprotocol of an admitted request (`Subprotocol`), from
   * its `Sec-WebSocket-Protocol` header: the chosen one (`undefined`: none),
   * or a rejection (400 for a malformed or unacceptable offer, 500 when
   * `selectProtocol` failed, which is logged). Run it before `authenticate`.
   */
  negotiate(
    route: Reactor.Route<R>,
    header: string | ReadonlyArray<string> | undefined,
    request: Handshake.UpgradeRequest
  ): { readonly _tag: "Chosen"; readonly protocol: string | undefined } | Rejection
  /** Counts a rejection the reactor decided itself (the supervisor stopped accepting, say). */
  reject(reason: RejectReason, status: number, message?: string): Rejection
  readonly handshakes: Handshakes<K>
}

/**
 * What a reactor gives `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Config<K> {
  /** The reactor's default for `maxConnections`. */
  readonly defaultMaxConnections: number
  /** A handshake took longer than `handshakeTimeout`: drop its socket. */
  readonly onHandshakeExpired: (key: K) => void
  /**
   * False for a key whose socket is gone (answered and closed, or dropped
   * by its client): the sweep forgets it without counting a timeout.
   * Default: every key is alive.
   */
  readonly isAlive?: (key: K) => boolean
  /** Runs on every sweep, after the handshakes: a reactor's own bookkeeping. */
  readonly onSweep?: (now: number) => void
  /** Groups peer addresses for the per-IP limit. Default: `ipKey`. */
  readonly addressKey?: (address: string) => string
}

/**
 * Splits an origin-form request target ("/chat?room=a") into path and query
 * string without building a `URL`; anything else (absolute-form, dot
 * segments, percent-escapes in the path) goes through `URL`. Undefined when
 * it is malformed.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseTarget = (target: string): Target | undefined => {
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
 * The key an address is counted under by the per-IP limit: an IPv4 address
 * as it is (also when IPv4-mapped, `::ffff:1.2.3.4`), an IPv6 address by its
 * /64, since one host usually owns a whole /64 and could pick a new address
 * per connection.
 *
 * @since 0.1.0
 * @category utils
 */
export const ipKey = (address: string): string => {
  if (!address.includes(":")) return address
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  const zone = address.indexOf("%")
  const bare = zone < 0 ? address : address.slice(0, zone)
  const [head = "", tail] = bare.split("::")
  const groups = head === "" ? [] : head.split(":")
  if (tail !== undefined) {
    const rest = tail === "" ? [] : tail.split(":")
    while (groups.length + rest.length < 8) groups.push("0")
    groups.push(...rest)
  }
  return groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ""))
    .join(":")
}

const noop = (): void => {}

/**
 * Makes a server's admission, and its supervisor, for the scope: resolves
 * `options` (failing with `InvalidOptions`), and sweeps handshakes on the
 * supervisor's sweeper.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R, K, A = unknown>(
  options: ServerOptions.Options<R, A>,
  config: Config<K>
): Effect.Effect<Admission<R, K>, ServerError, Scope.Scope | R> =>
  Effect.gen(function* () {
    const resolved = yield* ServerOptions.resolve(options, config.defaultMaxConnections)
    const started = new Map<K, number>()
    const clock = yield* Clock.Clock
    const supervisor = yield* Supervisor.make<R>({
      resolution: resolved.resolution,
      shutdownTimeout: resolved.shutdownTimeout,
      beforeShutdown: resolved.beforeShutdown,
      onSweep: (now) => {
        if (resolved.handshakeTimeout > 0) {
          for (const [key, since] of started) {
            if (config.isAlive !== undefined && !config.isAlive(key)) {
              started.delete(key)
              continue
            }
            if (now - since < resolved.handshakeTimeout) continue
            started.delete(key)
            count("handshake_timeout")
            config.onHandshakeExpired(key)
          }
        }
        config.onSweep?.(now)
      }
    })
    const context = yield* Effect.context<R>()
    const run = Effect.runCallbackWith(context)
    const counters = new Map<RejectReason, Metric.Metric<number, Metric.CounterState<number>>>()
    const count = (reason: RejectReason): void => {
      let counter = counters.get(reason)
      if (counter === undefined) {
        counter = Metric.withAttributes(upgradesRejectedTotal, { reason })
        counters.set(reason, counter)
      }
      counter.updateUnsafe(1, context)
    }
    const reject = (reason: RejectReason, status: number, message?: string): Rejection => {
      count(reason)
      return { _tag: "Rejected", status, message, reason }
    }
    /** Upgrades waiting for `authenticate`: they count against `maxConnections`. */
    let pending = 0
    const perIp = new Map<string, number>()
    const addressKey = config.addressKey ?? ipKey

    const acquire = (key: string): (() => void) | undefined => {
      const held = perIp.get(key) ?? 0
      if (held >= resolved.maxConnectionsPerIp) return undefined
      perIp.set(key, held + 1)
      let released = false
      return () => {
        if (released) return
        released = true
        const now = perIp.get(key) ?? 0
        if (now <= 1) perIp.delete(key)
        else perIp.set(key, now - 1)
      }
    }

    const admission: Admission<R, K> = {
      options: resolved,
      supervisor,
      reject,
      check: (raw, origin, address) => {
        if (!supervisor.accepting) return reject("shutting_down", 503, "server shutting down")
        const target = parseTarget(raw)
        if (target === undefined) return reject("malformed", 400, "malformed request target")
        const route = resolved.routes.get(target.path)
        if (route === undefined) return reject("not_found", 404)
        if (resolved.allowedOrigins !== undefined && (origin === undefined || !resolved.allowedOrigins.has(origin))) {
          return reject("origin", 403, "origin not allowed")
        }
        if (supervisor.size + pending >= resolved.maxConnections) {
          return reject("capacity", 503, "too many connections")
        }
        if (!Number.isFinite(resolved.maxConnectionsPerIp))
          return { _tag: "Admitted", route, target, release: undefined }
        const release = acquire(addressKey(address()))
        if (release === undefined) return reject("per_ip", 429, "too many connections from this address")
        return { _tag: "Admitted", route, target, release }
      },
      negotiate: (route, header, request) => {
        const outcome = Subprotocol.negotiate(route.settings.subprotocol, header, request)
        if (outcome._tag === "Chosen") return outcome
        if (outcome.cause === "select_failed") run(Effect.logError("selectProtocol failed", Cause.die(outcome.error)))
        return reject(outcome.cause === "malformed" ? "malformed" : "protocol", outcome.status, outcome.message)
      },
      authenticate: (route, request, done) => {
        const hook = route.authenticate
        if (hook === undefined) {
          done({ _tag: "Authenticated", auth: undefined })
          return noop
        }
        pending++
        let holding = true
        const release = () => {
          if (!holding) return false
          holding = false
          pending--
          return true
        }
        // a hook that throws before it returns an Effect is a defect like any other: 500, logged
        const interrupt = run(
          Effect.suspend(() => hook(request)),
          {
            onExit: (exit) => {
              if (!release()) return
              if (Exit.isSuccess(exit)) return done({ _tag: "Authenticated", auth: exit.value })
              const failure = exit.cause.reasons.find(Cause.isFailReason)
              if (failure !== undefined) return done(reject("rejected", failure.error.status, failure.error.message))
              run(Effect.logError("authenticate failed", exit.cause))
              done(reject("auth_error", 500))
            }
          }
        )
        return () => {
          if (release()) interrupt()
        }
      },
      handshakes: {
        begin: (key) => {
          // kept only with a timeout: the sweep drops sockets that never send a request
          if (resolved.handshakeTimeout > 0) started.set(key, clock.currentTimeMillisUnsafe())
        },
        end: (key) => {
          started.delete(key)
        },
        upgraded: (key) => {
          const since = started.get(key)
          if (since === undefined) return
          started.delete(key)
          stats.handshakeDuration.observe((clock.currentTimeMillisUnsafe() - since) / 1000)
        },
        keys: () => started.keys(),
        clear: () => started.clear()
      }
    }
    return admission
  })
