import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger } from "effect"
import { type RedisServer, startRedisServer } from "../../../test-support/redis.ts"
import * as History from "../src/History.ts"
import * as RedisHistory from "../src/RedisHistory.ts"
import * as Contract from "./historyContract.ts"

// one real redis-server for the file; each history gets keys of its own
let shared: RedisServer | undefined
beforeAll(async () => {
  shared = await startRedisServer()
}, 30_000)
afterAll(async () => {
  await shared?.stop()
})
let prefixes = 0
const freshPrefix = () => `test-${++prefixes}:`
const onShared = (options: History.Options, prefix = freshPrefix()) =>
  Layer.unwrap(
    Effect.sync(() => {
      if (shared === undefined) throw new Error("redis-server did not start")
      return RedisHistory.layer({ ...options, url: shared.url, prefix })
    })
  )

Contract.run("RedisHistory", {
  layer: (options) => onShared(options),
  entryBytes: RedisHistory.entryBytes,
  roomBytes: RedisHistory.roomBytes
})

/** A history for the current scope, as one server builds it. */
const server = (options: RedisHistory.Options) =>
  Effect.map(Layer.build(Layer.fresh(RedisHistory.layer(options))), (c) => Context.get(c, History.History))

describe("RedisHistory", () => {
  it.live("is shared: a message kept by one server is in the history another server reads", () =>
    Effect.gen(function* () {
      const url = shared?.url ?? ""
      const options = { ...History.defaults, url, prefix: freshPrefix() }
      const a = yield* server(options)
      const b = yield* server(options)
      yield* a.add("lobby", Contract.entry("from a"))
      yield* b.add("lobby", Contract.entry("from b"))
      expect((yield* b.get("lobby")).map((e) => e.text)).toEqual(["from a", "from b"])
      expect((yield* a.get("lobby")).map((e) => e.text)).toEqual(["from a", "from b"])
    }).pipe(Effect.scoped)
  )

  it.live("holds its limits for all servers together when they add at once", () =>
    Effect.gen(function* () {
      const url = shared?.url ?? ""
      const options = { ...History.defaults, maxRooms: 20, perRoom: 5, url, prefix: freshPrefix() }
      const a = yield* server(options)
      const b = yield* server(options)
      yield* Effect.all(
        Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).add(`room-${i % 40}`, Contract.entry(`m${i}`))),
        { concurrency: "unbounded" }
      )
      const size = yield* a.size
      expect(size.rooms).toBe(20)
      const kept = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => `room-${i}`),
        (room) => a.get(room)
      )
      expect(kept.filter((entries) => entries.length > 0)).toHaveLength(20)
      // how many each room kept depends on the order the two servers' adds met in Redis (a room
      // evicted and used again starts afresh); the bounds and the count hold whatever the order
      for (const entries of kept) expect(entries.length).toBeLessThanOrEqual(5)
      expect(size.messages).toBe(kept.reduce((sum, entries) => sum + entries.length, 0))
      expect(size.bytes).toBe(
        kept.reduce(
          (sum, entries, i) =>
            entries.length === 0
              ? sum
              : sum + RedisHistory.roomBytes(`room-${i}`) + entries.reduce((s, e) => s + RedisHistory.entryBytes(e), 0),
          0
        )
      )
    }).pipe(Effect.scoped)
  )

  it.live("charges UTF-8 bytes of the stored message, a quarter more, and the overheads", () =>
    Effect.gen(function* () {
      const history = yield* server({ ...History.defaults, url: shared?.url ?? "", prefix: freshPrefix() })
      const e: History.Entry = { from: "n/c1", nick: "zoë", text: "héllo 👋", at: 0 }
      yield* history.add("room", e)
      const json = Buffer.byteLength(JSON.stringify(e))
      expect(RedisHistory.entryBytes(e)).toBe(json + Math.floor(json / 4) + RedisHistory.entryOverhead)
      expect((yield* history.size).bytes).toBe(4 + RedisHistory.roomOverhead + RedisHistory.entryBytes(e))
    }).pipe(Effect.scoped)
  )

  it.live(
    "answers an empty history and keeps nothing while Redis is away, logs it once, and works when it is back",
    () => {
      const lines: Array<string> = []
      const logger = Logger.make((options) => {
        const parts = Array.isArray(options.message) ? options.message : [options.message]
        lines.push(parts.map(String).join(" "))
      })
      return Effect.gen(function* () {
        const redis = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer()),
          (s) => Effect.promise(() => s.stop())
        )
        const history = yield* server({ ...History.defaults, url: redis.url })
        yield* history.add("lobby", Contract.entry("before"))
        yield* Effect.promise(() => redis.kill())
        for (let i = 0; i < 5; i++) yield* history.add("lobby", Contract.entry(`during ${i}`))
        expect(yield* history.get("lobby")).toEqual([])
        expect(lines.filter((l) => l.startsWith("chat history: could not"))).toHaveLength(1)
        yield* Effect.promise(() => redis.restart())
        // the restarted server lost the data (killed, never saved) and its scripts: EVAL loads them again
        const deadline = Date.now() + 15_000
        let after: ReadonlyArray<History.Entry> = []
        while (after.length === 0 && Date.now() < deadline) {
          yield* history.add("lobby", Contract.entry("after"))
          after = yield* history.get("lobby")
          if (after.length === 0) yield* Effect.sleep(50)
        }
        expect(after.map((e) => e.text)).toContain("after")
        expect(after.map((e) => e.text).filter((t) => t.startsWith("during"))).toEqual([])
      }).pipe(Effect.scoped, Effect.provide(Logger.layer([logger])))
    }
  )

  it.live(
    "waits one replyTimeout for a Redis that stops answering (SIGSTOP), then answers at once until it is back",
    () => {
      const lines: Array<string> = []
      const logger = Logger.make((options) => {
        const parts = Array.isArray(options.message) ? options.message : [options.message]
        lines.push(parts.map(String).join(" "))
      })
      return Effect.gen(function* () {
        const redis = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer()),
          (s) =>
            Effect.promise(() => {
              s.thaw()
              return s.stop()
            })
        )
        const history = yield* server({ ...History.defaults, url: redis.url, replyTimeout: "300 millis" })
        yield* history.add("lobby", Contract.entry("before"))
        redis.freeze()
        // the first command waits its timeout; before, it waited as long as Redis was stopped
        const first = Date.now()
        expect(yield* history.get("lobby")).toEqual([])
        expect(Date.now() - first).toBeLessThan(5_000)
        // then the chat goes on without waiting: 50 messages and reads answer at once (100 waits would take 30 s)
        const rest = Date.now()
        for (let i = 0; i < 50; i++) {
          yield* history.add("lobby", Contract.entry(`during ${i}`))
          expect(yield* history.get("lobby")).toEqual([])
        }
        expect(Date.now() - rest).toBeLessThan(2_000)
        expect(lines.filter((l) => l.startsWith("chat history: could not"))).toEqual([
          "chat history: could not read a room in Redis (no reply within 300ms); until it works again"
        ])
        redis.thaw()
        const deadline = Date.now() + 10_000
        let after: ReadonlyArray<History.Entry> = []
        while (after.length === 0 && Date.now() < deadline) {
          after = yield* history.get("lobby")
          if (after.length === 0) yield* Effect.sleep(50)
        }
        // what was kept: "before", and at most the one add that went through as a probe
        expect(after[0]?.text).toBe("before")
        expect(after.length).toBeLessThanOrEqual(2)
      }).pipe(Effect.scoped, Effect.provide(Logger.layer([logger])))
    }
  )
})
