/**
 * A Redis connection with the lifecycle of this package's backplane, for the
 * other things an app keeps in Redis (the chat app keeps its rooms' history
 * there): the same URL, auth and TLS options, the same reconnection (100 ms
 * doubling to 5 s, with jitter), no offline queue (a command during an
 * outage fails at once instead of running minutes later), a ping that
 * notices a dead connection or a Redis that stopped answering
 * (`replyTimeout`), and one log line when an outage starts and one when it
 * ends. The connection closes with the scope. A command sent to a Redis
 * that holds the connection but answers nothing waits for it: bound it
 * where a caller waits (`Effect.timeoutOption`), as the chat's history does.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@switchboard/redis"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function* () {
 *     const redis = yield* RedisClient.make({ url: "redis://127.0.0.1:6379" })
 *     yield* Effect.promise(() => redis.set("greeting", "hello"))
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { ConnectionOptions } from "node:tls"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Connection from "./internal/connection.ts"

/**
 * Where Redis is and how to reach it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS
   * (default `redis://127.0.0.1:6379`). Credentials never appear in logs.
   */
  readonly url?: string | Redacted.Redacted<string>
  /** TLS options for a `rediss://` URL: a private CA, a client certificate, the server name. */
  readonly tls?: Pick<ConnectionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">
  /** How long `make` waits for Redis before it fails (default 10 s). */
  readonly connectTimeout?: Duration.Input
  /** How often a connection is pinged, so that a dead or hung Redis is noticed (default 5 s). */
  readonly pingInterval?: Duration.Input
  /**
   * How long a ping may wait for its reply before Redis counts as away
   * (default 2 s): a Redis that holds the connection but answers nothing
   * (a stopped process) is an outage like a closed connection.
   */
  readonly replyTimeout?: Duration.Input
}

/**
 * A node-redis client (RESP3), connected.
 *
 * @since 0.1.0
 * @category models
 */
export type Client = Connection.Client

/**
 * Bad options, or Redis not reachable within `connectTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisError extends Data.TaggedError("RedisError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The `url` option from `REDIS_URL` (read as a redacted value; default
 * `redis://127.0.0.1:6379`), as the backplane's `layerConfig` reads it.
 *
 * @since 0.1.0
 * @category config
 */
export const url: Config.Config<Redacted.Redacted<string>> = Config.Redacted("REDIS_URL").pipe(
  Config.withDefault(Connection.defaultRedacted)
)

/**
 * Connects to Redis; fails with a `RedisError` on bad options or when Redis
 * does not answer within `connectTimeout`. Once connected, it survives Redis
 * going away: commands fail while it is away, and work again when it is back.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Client, RedisError, Scope.Scope> =>
  Effect.gen(function* () {
    const fail = (message: string, cause?: unknown) => new RedisError({ message: `RedisClient: ${message}`, cause })
    const settings = yield* Connection.resolve(options, fail)
    const run = Effect.runForkWith(yield* Effect.context<never>())
    let state: "connecting" | "up" | "down" | "closed" = "connecting"
    const client = yield* Effect.acquireRelease(Connection.create(settings), (client) =>
      Effect.promise(() => {
        state = "closed"
        return Connection.close(client)
      })
    )
    let since = 0
    const down = (cause: unknown) => {
      if (state !== "up") return
      state = "down"
      since = Date.now()
      run(Effect.logWarning(`Redis: lost ${settings.where} (${Connection.errorText(cause)}); reconnecting`))
    }
    // node-redis emits an error for every failed attempt: one outage, one line
    client.on("error", down)
    client.on("reconnecting", () => down(new Error("reconnecting")))
    const up = () => {
      if (state !== "down") return
      state = "up"
      run(Effect.logInfo(`Redis: ${settings.where} is back after ${Date.now() - since} ms`))
    }
    client.on("ready", up)
    yield* Connection.connect([client], settings, fail)
    state = "up"
    const stop = Connection.watch(client, settings, { onHung: down, onAnswer: up })
    yield* Effect.addFinalizer(() => Effect.sync(stop))
    return client
  })
