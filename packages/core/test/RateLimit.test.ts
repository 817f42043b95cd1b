import { describe, expect, it } from "@effect/vitest"
import { Behavior, type CloseReason, RateLimit } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

/** Sends `n` numbered messages at once; returns what came back, in order. */
const flood = (client: TestClient.TestClient, n: number, from = 0) =>
  Effect.gen(function* () {
    for (let i = from; i < from + n; i++) yield* client.send(String(i))
    yield* Effect.yieldNow
    yield* Effect.yieldNow
    return client.pending.flatMap((frame) => (frame._tag === "Text" ? [frame.text] : []))
  })

const counted = (policy: string) =>
  Metric.value(Metric.withAttributes(RateLimit.rateLimitedTotal, { policy })).pipe(Effect.map((s) => s.count))

describe("RateLimit", () => {
  it.effect("lets a burst through, drops what exceeds it with one notice, and refills at the rate", () =>
    Effect.gen(function* () {
      const before = yield* counted("drop")
      const client = yield* TestClient.connect(Echo, {
        keepalive: false,
        rateLimit: { messagesPerSecond: 20, burstMessages: 40, onExceed: "drop", notice: "slow down" }
      })
      const first = yield* flood(client, 45)
      // the notice is written when dropping starts, before the batch's replies go out
      expect(first).toEqual(["slow down", ...Array.from({ length: 40 }, (_, i) => String(i))])
      expect((yield* counted("drop")) - before).toBe(5)
      for (let i = 0; i < 41; i++) yield* client.next
      // half a second refills 10
      yield* TestClock.adjust("500 millis")
      const second = yield* flood(client, 12, 100)
      expect(second).toEqual(["slow down", ...Array.from({ length: 10 }, (_, i) => String(100 + i))])
      expect(client.connection.isOpen).toBe(true)
    })
  )

  it.effect("never refills above the burst, however long the connection was quiet", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, {
        keepalive: false,
        rateLimit: { messagesPerSecond: 10, burstMessages: 3, onExceed: "drop" }
      })
      yield* TestClock.adjust("1 minute")
      expect(yield* flood(client, 5)).toEqual(["0", "1", "2"])
    })
  )

  it.effect("closes with 1008 and reason RateLimited by default, and hands nothing more to the behaviour", () =>
    Effect.gen(function* () {
      const before = yield* counted("close")
      const seen: Array<string> = []
      const reasons: Array<CloseReason.CloseReason> = []
      const Tracked = Behavior.make({
        onMessage: (_conn, message) => Effect.sync(() => void seen.push(String(message))),
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason))
      })
      const client = yield* TestClient.connect(Tracked, { keepalive: false, rateLimit: { messagesPerSecond: 2 } })
      for (const m of ["a", "b", "c", "d"]) yield* client.send(m)
      const close = yield* client.expectClose(1008)
      expect(close.reason).toBe("rate limit exceeded")
      yield* client.finished
      expect(seen).toEqual(["a", "b"])
      const reason = reasons[0]
      expect(reason?._tag === "Error" ? reason.error.reason._tag : reason?._tag).toBe("RateLimited")
      expect((yield* counted("close")) - before).toBe(1)
    })
  )

  it.effect("limits bytes as well as messages", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, {
        keepalive: false,
        rateLimit: { bytesPerSecond: 100, onExceed: "drop" }
      })
      expect(yield* flood(client, 0)).toEqual([])
      yield* client.send("x".repeat(60))
      yield* client.send("y".repeat(60))
      yield* client.send("z".repeat(30))
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      expect(client.pending.map((f) => (f._tag === "Text" ? f.text.length : -1))).toEqual([60, 30])
    })
  )

  it.effect("a route can turn the server's limit off with false", () =>
    Effect.sync(() => {
      const server = RateLimit.resolve({ messagesPerSecond: 5 })
      expect(server?.burstMessages).toBe(5)
      expect(RateLimit.resolve(false, server)).toBeUndefined()
      expect(RateLimit.resolve(undefined, server)).toBe(server)
    })
  )

  it.effect("rejects limits that are not positive, or that limit nothing", () =>
    Effect.sync(() => {
      expect(() => RateLimit.resolve({})).toThrow("needs messagesPerSecond or bytesPerSecond")
      expect(() => RateLimit.resolve({ messagesPerSecond: 0 })).toThrow("rateLimit.messagesPerSecond")
      expect(() => RateLimit.resolve({ messagesPerSecond: 1, burstMessages: -1 })).toThrow("rateLimit.burstMessages")
      expect(() => RateLimit.resolve({ bytesPerSecond: Number.POSITIVE_INFINITY })).toThrow("rateLimit.bytesPerSecond")
    })
  )
})
