/**
 * The backplane between machines: hub broadcasts and presence over Redis
 * pub/sub, with node-redis (`redis`).
 *
 * - **Two connections per backplane**, whatever the number of topics: one
 *   publishes, one subscribes (Redis puts a subscribing connection in a mode
 *   where it can do nothing else). A topic is one channel, `prefix + topic`,
 *   subscribed while this node has a subscriber for it: Redis sends a node
 *   only the topics it needs.
 * - **Binary stays binary**: the subscriber reads in buffer mode and the
 *   payload crosses as its own bytes (the wire format is in
 *   `internal/codec.ts`). A message is decoded once per receiving node and
 *   the hub frames it once for all its subscribers there.
 * - **Order**: one publishing connection, whose commands Redis runs in order,
 *   so one publisher's envelopes reach every node in publish order. A
 *   publish delivers to this node's subscribers at once and its own echo from
 *   Redis is dropped.
 * - **Redis away**: local delivery goes on; publishes that cannot cross are
 *   dropped (never queued for later: a late broadcast is worse than a lost
 *   one) and counted; the outage is logged once when it starts and once when
 *   it ends, with how many could not cross. The clients reconnect with
 *   backoff (100 ms doubling to 5 s, with jitter) and node-redis resubscribes
 *   every channel; subscriptions made during the outage take effect when
 *   Redis returns. Presence heals by itself (docs/adr/0006): a change lost in
 *   the outage is asked for again at the next heartbeat.
 * - **Flow control**: at most `maxInFlight` publishes wait for Redis's reply;
 *   beyond that a publish waits, so a publisher faster than Redis slows down
 *   (through its mailbox, to its socket) instead of growing a queue.
 * - Not used: sharded pub/sub (`SPUBLISH`, Redis 7). On one Redis server it
 *   behaves as `PUBLISH`; it pays off only on Redis Cluster, which needs the
 *   cluster client. `@effect/platform-node`'s `NodeRedis` is not used for the
 *   connections either: its pub/sub opens a connection per channel and hands
 *   out strings, and its error listener logs every failed reconnection.
 *
 * @since 0.1.0
 */
import { Backplane } from "@switchboard/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Codec from "./internal/codec.ts"
import * as Connection from "./internal/connection.ts"
import * as RedisClient from "./RedisClient.ts"

const { errorText } = Connection

/**
 * Options of the Redis backplane.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends RedisClient.Options {
  /** Prefix of every channel name, so that several apps can share a Redis (default `"switchboard:"`). */
  readonly prefix?: string
  /** Publishes that may wait for Redis's reply before a publish waits (default 4,096). */
  readonly maxInFlight?: number
}

/**
 * 1 while both connections to Redis are up, 0 during an outage.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connected = Metric.gauge("switchboard_backplane_redis_connected", {
  description: "1 while the Redis backplane's connections are up, 0 during an outage"
})

/**
 * Outages: times the backplane lost Redis after it had reached it.
 *
 * @since 0.1.0
 * @category metrics
 */
export const outagesTotal = Metric.counter("switchboard_backplane_redis_outages_total", {
  description: "Times the Redis backplane lost its connection to Redis"
})

/**
 * Envelopes that could not cross to other nodes (Redis away); they reached
 * this node's subscribers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const undeliveredTotal = Metric.counter("switchboard_backplane_redis_undelivered_total", {
  description: "Envelopes published while Redis was away: delivered locally, not to other nodes"
})

/**
 * Messages on a backplane channel that are not in its format (dropped).
 *
 * @since 0.1.0
 * @category metrics
 */
export const malformedTotal = Metric.counter("switchboard_backplane_redis_malformed_total", {
  description: "Messages on a Redis backplane channel that are not in its format"
})

const fail = (message: string, cause?: unknown) =>
  new Backplane.BackplaneError({ message: `RedisBackplane: ${message}`, cause })

interface Settings extends Connection.Settings {
  readonly prefix: string
  readonly maxInFlight: number
}

const resolve = (options: Options): Effect.Effect<Settings, Backplane.BackplaneError> =>
  Effect.gen(function* () {
    const maxInFlight = options.maxInFlight ?? 4096
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      return yield* Effect.fail(fail(`maxInFlight: must be a positive integer, got ${maxInFlight}`))
    }
    const settings = yield* Connection.resolve(options, fail)
    return { ...settings, prefix: options.prefix ?? "switchboard:", maxInFlight }
  })

/**
 * Makes the backplane; its connections end with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Backplane.Backplane["Service"], Backplane.BackplaneError, Scope.Scope> =>
  Effect.gen(function* () {
    const settings = yield* resolve(options)
    const context = yield* Effect.context<never>()
    const run = Effect.runForkWith(context)
    const instance = crypto.randomUUID()
    const channelOf = (topic: string) => settings.prefix + topic

    const [pub, sub] = yield* Effect.acquireRelease(
      Effect.map(Connection.create(settings), (made) => [made, made.duplicate()] as const),
      ([pub, sub]) =>
        Effect.promise(() => {
          closing = true
          sub.destroy()
          return Connection.close(pub)
        })
    )

    // ---- outages: logged once as they start and once as they end
    let started = false
    let closing = false
    let down = false
    let downSince = 0
    let lost = 0
    // a connection that holds open but gets no reply (a stopped Redis): an outage like a closed one
    let pubHung = false
    let subHung = false
    const markDown = (cause: unknown) => {
      if (!started || closing || down) return
      down = true
      downSince = Date.now()
      lost = 0
      run(
        Effect.andThen(
          Effect.all([Metric.update(outagesTotal, 1), Metric.update(connected, 0)]),
          Effect.logWarning(
            `Redis backplane: lost ${settings.where} (${errorText(cause)}); local delivery goes on, reconnecting`
          )
        )
      )
    }
    const markUp = () => {
      if (!started || closing || !down || !pub.isReady || !sub.isReady || pubHung || subHung) return
      down = false
      const missed = lost
      run(
        Effect.andThen(
          Metric.update(connected, 1),
          Effect.logInfo(
            `Redis backplane: ${settings.where} is back after ${Date.now() - downSince} ms; ${missed} envelope(s) could not cross meanwhile`
          )
        )
      )
      resubscribe()
    }
    const undelivered = () => {
      lost++
      undeliveredTotal.updateUnsafe(1, context)
    }
    for (const client of [pub, sub]) {
      // node-redis emits an error for every failed attempt: one outage, one line
      client.on("error", markDown)
      client.on("reconnecting", () => markDown(new Error("reconnecting")))
      client.on("ready", markUp)
    }

    // ---- receiving
    let malformedLogged = false
    const listener = (message: Buffer, channel: Buffer) => {
      const decoded = Codec.decode(message)
      if (decoded === undefined) {
        malformedTotal.updateUnsafe(1, context)
        if (!malformedLogged) {
          malformedLogged = true
          run(
            Effect.logWarning(
              `Redis backplane: a message on ${channel.toString()} is not in the backplane's format (dropped; counted from now on)`
            )
          )
        }
        return
      }
      if (decoded.instance !== instance) local.deliver(decoded.envelope)
    }

    /** Topics whose SUBSCRIBE Redis confirmed; the others are tried again when Redis is back. */
    const confirmed = new Set<string>()
    const subscribeChannel = (topic: string): Promise<void> =>
      sub.subscribe(channelOf(topic), listener, true).then(
        () => {
          confirmed.add(topic)
        },
        () => undefined
      )
    const resubscribe = () => {
      for (const topic of local.topics()) if (!confirmed.has(topic)) void subscribeChannel(topic)
    }

    const local: Backplane.Local = Backplane.makeLocal({
      onFirst: (topic) =>
        Effect.suspend(() => {
          const subscribed = subscribeChannel(topic)
          // during an outage (a hung Redis too) it takes effect when Redis is back; it never fails the subscription
          return sub.isReady && !subHung
            ? Effect.promise(() => subscribed).pipe(Effect.timeoutOption(settings.connectTimeout), Effect.asVoid)
            : Effect.void
        }),
      onLast: (topic) =>
        Effect.sync(() => {
          confirmed.delete(topic)
          sub.unsubscribe(channelOf(topic), listener, true).catch(() => undefined)
        })
    })

    // ---- publishing, at most maxInFlight awaiting Redis
    let inFlight = 0
    const waiters = new Set<() => void>()
    const wakeAll = () => {
      if (waiters.size === 0) return
      const woken = [...waiters]
      waiters.clear()
      for (const waker of woken) waker()
    }
    const settled = () => {
      inFlight--
      wakeAll()
    }
    const send = (channel: string, data: Buffer) => {
      // nothing is queued behind a Redis that does not answer: it would arrive late, or never
      if (!pub.isReady || pubHung) return undelivered()
      inFlight++
      pub.publish(channel, data).then(settled, (cause: unknown) => {
        settled()
        undelivered()
        markDown(cause)
      })
    }
    const room: Effect.Effect<void> = Effect.suspend(() =>
      inFlight < settings.maxInFlight || !pub.isReady || pubHung
        ? Effect.void
        : Effect.andThen(
            Effect.callback<void>((resume) => {
              const waker = () => resume(Effect.void)
              waiters.add(waker)
              return Effect.sync(() => waiters.delete(waker))
            }),
            room
          )
    )

    yield* Connection.connect([pub, sub], settings, fail)
    started = true
    yield* Metric.update(connected, 1)
    const watching = [
      Connection.watch(pub, settings, {
        onHung: (cause) => {
          pubHung = true
          markDown(cause)
          // publishers waiting for room go on: their envelopes are counted as not crossing
          wakeAll()
        },
        onAnswer: () => {
          pubHung = false
          markUp()
        }
      }),
      Connection.watch(sub, settings, {
        onHung: (cause) => {
          subHung = true
          markDown(cause)
        },
        onAnswer: () => {
          subHung = false
          markUp()
        }
      })
    ]
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const stop of watching) stop()
      })
    )

    return Backplane.Backplane.of({
      publish: (envelope) =>
        Effect.suspend(() => {
          let data: Buffer
          try {
            data = Codec.encode(instance, envelope)
          } catch (cause) {
            // before anyone got it, as on every backplane
            return Effect.fail(fail(`could not encode an envelope of "${envelope.topic}": ${errorText(cause)}`, cause))
          }
          local.deliver(envelope)
          const channel = channelOf(envelope.topic)
          if (inFlight < settings.maxInFlight) {
            send(channel, data)
            return Effect.void
          }
          return Effect.andThen(
            room,
            Effect.sync(() => send(channel, data))
          )
        }),
      subscribe: local.subscribe
    })
  })

/**
 * The Redis backplane as a layer. It fails with a `BackplaneError` when an
 * option is bad or Redis cannot be reached within `connectTimeout`; once
 * started, it survives Redis going away.
 *
 * @example
 * ```ts
 * import { Hub } from "@switchboard/core"
 * import { RedisBackplane } from "@switchboard/redis"
 * import * as Layer from "effect/Layer"
 *
 * const HubLive = Hub.layer().pipe(Layer.provide(RedisBackplane.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Backplane.Backplane, Backplane.BackplaneError> =>
  Layer.effect(Backplane.Backplane)(make(options))

/**
 * `layer` with its URL from `REDIS_URL` (default `redis://127.0.0.1:6379`;
 * read as a redacted value) and its prefix from `REDIS_PREFIX` (default
 * `switchboard:`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Omit<Options, "url" | "prefix"> = {}
): Layer.Layer<Backplane.Backplane, Backplane.BackplaneError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(
      Config.all({
        url: RedisClient.url,
        prefix: Config.String("REDIS_PREFIX").pipe(Config.withDefault("switchboard:"))
      }),
      ({ url, prefix }) => layer({ ...options, url, prefix })
    )
  )
