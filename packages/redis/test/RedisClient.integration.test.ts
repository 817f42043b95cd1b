import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@switchboard/redis"
import { Effect, Exit, Logger } from "effect"
import { freePort } from "../../../test-support/net.ts"
import { startRedisServer } from "../../../test-support/redis.ts"

const redisServer = Effect.acquireRelease(
  Effect.promise(() => startRedisServer()),
  (s) => Effect.promise(() => s.stop())
)

const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    lines.push(parts.map(String).join(" "))
  })
  return { lines, layer: Logger.layer([logger]) }
}

describe("RedisClient", () => {
  it.live(
    "connects, fails commands fast while Redis is away, works again when it is back, logs the outage once",
    () => {
      const logs = captureLogs()
      return Effect.gen(function* () {
        const server = yield* redisServer
        const redis = yield* RedisClient.make({ url: server.url })
        yield* Effect.promise(() => redis.set("k", "v1"))
        expect(yield* Effect.promise(() => redis.get("k"))).toBe("v1")

        yield* Effect.promise(() => server.kill())
        // no offline queue: a command during the outage fails at once instead of waiting for Redis
        const started = Date.now()
        const during = yield* Effect.exit(Effect.tryPromise(() => redis.get("k")))
        expect(Exit.isFailure(during)).toBe(true)
        expect(Date.now() - started).toBeLessThan(1_000)

        yield* Effect.promise(() => server.restart())
        const deadline = Date.now() + 15_000
        while (!redis.isReady && Date.now() < deadline) yield* Effect.sleep(20)
        yield* Effect.promise(() => redis.set("k", "v2"))
        expect(yield* Effect.promise(() => redis.get("k"))).toBe("v2")
        expect(logs.lines.filter((l) => l.startsWith("Redis: lost"))).toHaveLength(1)
        expect(logs.lines.filter((l) => l.startsWith("Redis: ") && l.includes("is back after"))).toHaveLength(1)
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    }
  )

  it.live("logs a Redis that stops answering (SIGSTOP) as an outage, and its return", () => {
    const logs = captureLogs()
    return Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startRedisServer()),
        (s) =>
          Effect.promise(() => {
            s.thaw()
            return s.stop()
          })
      )
      const redis = yield* RedisClient.make({ url: server.url, pingInterval: "200 millis", replyTimeout: "300 millis" })
      yield* Effect.promise(() => redis.set("k", "v1"))
      server.freeze()
      const noticed = Date.now() + 5_000
      while (!logs.lines.some((l) => l.startsWith("Redis: lost")) && Date.now() < noticed) yield* Effect.sleep(20)
      expect(logs.lines.filter((l) => l.startsWith("Redis: lost"))).toEqual([
        `Redis: lost ${server.url} (no reply to PING within 300 ms); reconnecting`
      ])
      server.thaw()
      const back = Date.now() + 5_000
      while (!logs.lines.some((l) => l.includes("is back after")) && Date.now() < back) yield* Effect.sleep(20)
      expect(logs.lines.filter((l) => l.includes("is back after"))).toHaveLength(1)
      expect(yield* Effect.promise(() => redis.get("k"))).toBe("v1")
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("fails with a RedisError when nothing answers within connectTimeout, or for bad options", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const timeout = yield* Effect.exit(
        Effect.scoped(RedisClient.make({ url: `redis://127.0.0.1:${port}`, connectTimeout: "300 millis" }))
      )
      expect(Exit.isFailure(timeout) && String(timeout.cause)).toContain(`RedisError`)
      expect(Exit.isFailure(timeout) && String(timeout.cause)).toContain(`could not reach redis://127.0.0.1:${port}`)
      const bad = yield* Effect.exit(Effect.scoped(RedisClient.make({ url: "http://127.0.0.1:1" })))
      expect(Exit.isFailure(bad) && String(bad.cause)).toContain("http: is not redis: or rediss:")
    })
  )
})
