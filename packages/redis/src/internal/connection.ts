/**
 * What the Redis parts share about a connection: reading the options, making
 * a node-redis client with the reconnection policy, connecting within the
 * connect timeout, and closing without hanging on a dead server.
 *
 * @internal
 */

import type { createClient } from "@redis/client"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { Options } from "../RedisClient.ts"

export interface Settings {
  readonly url: string
  /** The URL without credentials, for logs and errors. */
  readonly where: string
  readonly tls: Options["tls"]
  readonly connectTimeout: number
  readonly pingInterval: number
  readonly replyTimeout: number
}

export const defaultUrl = "redis://127.0.0.1:6379"
export const defaultRedacted = Redacted.make(defaultUrl)

export const errorText = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const millis = <E>(input: Duration.Input | undefined, fallback: number, name: string, fail: (message: string) => E) =>
  Effect.suspend(() => {
    if (input === undefined) return Effect.succeed(fallback)
    const duration = Duration.fromInput(input)
    const ms = Option.isSome(duration) ? Duration.toMillis(duration.value) : Number.NaN
    return ms > 0 && Number.isFinite(ms) ? Effect.succeed(ms) : Effect.fail(fail(`${name}: not a positive duration`))
  })

/** Checks the options; `fail` makes the caller's error from a message. */
export const resolve = <E>(options: Options, fail: (message: string) => E): Effect.Effect<Settings, E> =>
  Effect.gen(function* () {
    const raw = options.url === undefined ? defaultUrl : options.url
    const url = Redacted.isRedacted(raw) ? Redacted.value(raw) : raw
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return yield* Effect.fail(fail("url: not a URL (redis://host:port or rediss://host:port)"))
    }
    if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
      return yield* Effect.fail(fail(`url: ${parsed.protocol} is not redis: or rediss:`))
    }
    if (options.tls !== undefined && parsed.protocol !== "rediss:") {
      return yield* Effect.fail(fail("tls: TLS options need a rediss:// URL"))
    }
    return {
      url,
      where: `${parsed.protocol}//${parsed.host}`,
      tls: options.tls,
      connectTimeout: yield* millis(options.connectTimeout, 10_000, "connectTimeout", fail),
      pingInterval: yield* millis(options.pingInterval, 5_000, "pingInterval", fail),
      replyTimeout: yield* millis(options.replyTimeout, 2_000, "replyTimeout", fail)
    }
  })

/** 100 ms doubling to 5 s, with up to 100 ms of jitter so that nodes do not reconnect in step. */
export const backoff = (retries: number): number =>
  Math.min(100 * 2 ** retries, 5_000) + Math.floor(Math.random() * 100)

/**
 * The Redis client library, loaded on first use: a server that imports the
 * Redis backplane but runs without it does not load (and hold) the client's
 * ~480 modules.
 */
const library = (): Promise<{ readonly createClient: typeof createClient }> => (loaded ??= import("@redis/client"))
let loaded: Promise<{ readonly createClient: typeof createClient }> | undefined

/**
 * A client, not yet connected. Commands fail at once while it is not ready
 * (no offline queue: a command queued during an outage would run long after
 * anyone waited for it).
 */
export const create = (settings: Settings): Effect.Effect<Client> =>
  Effect.map(Effect.promise(library), (redis) => make(redis.createClient, settings))

const make = (createClient_: typeof createClient, settings: Settings) =>
  createClient_({
    url: settings.url,
    disableOfflineQueue: true,
    // the pings are `watch`'s, which also bound the reply
    socket: {
      reconnectStrategy: backoff,
      connectTimeout: settings.connectTimeout,
      ...(settings.tls === undefined ? {} : { tls: true as const, ...settings.tls })
    }
  })

export type Client = ReturnType<typeof make>

/** What `watch` tells: Redis stopped answering, or answers again. */
export interface Watcher {
  readonly onHung: (cause: Error) => void
  readonly onAnswer: () => void
}

/**
 * Pings `client` every `pingInterval` while it is connected, and calls
 * `onHung` when a PING gets no reply within `replyTimeout`: a Redis that
 * holds the connection open but answers nothing (a stopped process, a host
 * gone without a reset) is noticed, which neither the socket nor TCP
 * keepalive does. A reply, however late, calls `onAnswer`. Returns the stop.
 */
export const watch = (client: Client, settings: Settings, watcher: Watcher): (() => void) => {
  let outstanding = false
  let hung = false
  const probe = () => {
    if (outstanding || !client.isReady) return
    outstanding = true
    const timer = setTimeout(() => {
      if (hung) return
      hung = true
      watcher.onHung(new Error(`no reply to PING within ${settings.replyTimeout} ms`))
    }, settings.replyTimeout)
    timer.unref()
    client.sendCommand(["PING"]).then(
      () => {
        clearTimeout(timer)
        outstanding = false
        if (!hung) return
        hung = false
        watcher.onAnswer()
      },
      // the connection failed: its own error and reconnection report it
      () => {
        clearTimeout(timer)
        outstanding = false
        hung = false
      }
    )
  }
  const interval = setInterval(probe, settings.pingInterval)
  interval.unref()
  return () => clearInterval(interval)
}

/** Connects the clients, or fails when Redis does not answer within the connect timeout. */
export const connect = <E>(
  clients: ReadonlyArray<Client>,
  settings: Settings,
  fail: (message: string, cause?: unknown) => E
): Effect.Effect<void, E> =>
  Effect.tryPromise({
    try: () => Promise.all(clients.map((client) => client.connect())),
    catch: (cause) => fail(`could not reach ${settings.where}: ${errorText(cause)}`, cause)
  }).pipe(
    Effect.timeoutOrElse({
      duration: settings.connectTimeout,
      orElse: () => Effect.fail(fail(`could not reach ${settings.where} within ${settings.connectTimeout} ms`))
    }),
    Effect.asVoid
  )

/**
 * Closes a client: gracefully when it is up (what is in flight is sent), at
 * once when it is not, and at once after 2 s in any case (a graceful close
 * may never end on a connection that just died).
 */
export const close = async (client: Client): Promise<void> => {
  if (!client.isReady) return client.destroy()
  const timer = setTimeout(() => client.destroy(), 2_000)
  await client.close().catch(() => client.destroy())
  clearTimeout(timer)
}
