import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, Hub } from "@switchboard/core"
import { RedisBackplane } from "@switchboard/redis"
import { BackplaneConformance, TestClient } from "@switchboard/testing"
import { Context, Effect, Exit, Layer, Logger, Metric, Redacted, Scope } from "effect"
import { freePort } from "../../../test-support/net.ts"
import { type RedisServer, startRedisServer } from "../../../test-support/redis.ts"

// one real redis-server for the suite (a few tests start their own: auth, TLS, restarts)
let shared: RedisServer | undefined
beforeAll(async () => {
  shared = await startRedisServer()
}, 30_000)
afterAll(async () => {
  await shared?.stop()
})
const sharedUrl = () => {
  if (shared === undefined) throw new Error("redis-server did not start")
  return shared.url
}

/** The layer, built against the shared server once the suite has started it. */
const onShared = (options: Omit<RedisBackplane.Options, "url"> = {}) =>
  Layer.unwrap(Effect.sync(() => RedisBackplane.layer({ ...options, url: sharedUrl() })))

BackplaneConformance.run("redis", onShared(), { crossNode: true })

/** An instance of the backplane for the current scope, as a node builds it. */
const node = (options: RedisBackplane.Options) =>
  Effect.map(Layer.build(Layer.fresh(RedisBackplane.layer(options))), (c) => Context.get(c, Backplane.Backplane))

const within = (condition: () => boolean, millis = 10_000, what = "condition") =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`${what}: not within ${millis} ms`))
      yield* Effect.sleep(5)
    }
  })

const count = (counter: typeof RedisBackplane.undeliveredTotal) => Effect.map(Metric.value(counter), (s) => s.count)
const gauge = Effect.map(Metric.value(RedisBackplane.connected), (s) => s.value)

const broadcast = (topic: string, message: string | Uint8Array): Backplane.Envelope => ({
  _tag: "Broadcast",
  topic,
  origin: "test",
  message
})

const texts = (got: ReadonlyArray<Backplane.Envelope>) =>
  got.flatMap((e) => (e._tag === "Broadcast" && typeof e.message === "string" ? [e.message] : []))

const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    lines.push(parts.map(String).join(" "))
  })
  return { lines, layer: Logger.layer([logger]) }
}

/** A connection that does nothing: the tests join it to rooms by hand. */
const Quiet = Behavior.make({
  onInfo: (_conn: Connection.Connection<Hub.Presence>, _event: Hub.Presence) => Effect.void
})

describe("RedisBackplane", () => {
  it.live("uses one subscriber connection for any number of topics", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startRedisServer()),
        (s) => Effect.promise(() => s.stop())
      )
      const a = yield* node({ url: server.url })
      const before = yield* Effect.promise(() => server.clients())
      for (let i = 0; i < 50; i++) yield* a.subscribe(`topic-${i}`, () => {})
      const after = yield* Effect.promise(() => server.clients())
      // two connections: one publishes, one subscribes, whatever the number of topics
      expect(before).toBe(2)
      expect(after).toBe(2)
    }).pipe(Effect.scoped)
  )

  it.live(
    "keeps delivering locally while Redis is away, counts and logs the outage once, and resumes by itself",
    () => {
      const logs = captureLogs()
      return Effect.gen(function* () {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => startRedisServer()),
          (s) => Effect.promise(() => s.stop())
        )
        const a = yield* node({ url: server.url })
        const b = yield* node({ url: server.url })
        const onA: Array<Backplane.Envelope> = []
        const onB: Array<Backplane.Envelope> = []
        yield* a.subscribe("room", (e) => onA.push(e))
        yield* b.subscribe("room", (e) => onB.push(e))
        yield* a.publish(broadcast("room", "before"))
        yield* within(() => texts(onB).includes("before"))
        const undelivered = yield* count(RedisBackplane.undeliveredTotal)
        const outages = yield* count(RedisBackplane.outagesTotal)

        yield* Effect.promise(() => server.kill())
        yield* within(() => logs.lines.filter((l) => l.includes(": lost ")).length === 2, 10_000, "outage noticed")
        for (let i = 0; i < 100; i++) yield* a.publish(broadcast("room", `during ${i}`))
        expect(texts(onA).filter((t) => t.startsWith("during"))).toHaveLength(100)
        expect((yield* count(RedisBackplane.undeliveredTotal)) - undelivered).toBe(100)
        expect(yield* gauge).toBe(0)
        // the clients retry with backoff: still one line per node for the outage
        yield* Effect.sleep(1_500)
        expect(logs.lines.filter((l) => l.includes(": lost "))).toHaveLength(2)

        yield* Effect.promise(() => server.restart())
        yield* within(() => logs.lines.filter((l) => l.includes("is back after")).length === 2, 15_000, "reconnected")
        // node a could not send 100; node b published nothing
        const missed = logs.lines.flatMap((l) => (l.includes("is back after") ? [/; (\d+) envelope/.exec(l)?.[1]] : []))
        expect(missed.sort()).toEqual(["0", "100"])
        expect((yield* count(RedisBackplane.outagesTotal)) - outages).toBe(2)
        expect(yield* gauge).toBe(1)
        // resubscribed: cross-node delivery resumes without a restart of the nodes
        yield* a.publish(broadcast("room", "after"))
        yield* within(() => texts(onB).includes("after"))
        expect(texts(onB).filter((t) => t.startsWith("during"))).toEqual([])
        expect(logs.lines.join("\n")).not.toContain("password")
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    }
  )

  it.live(
    "treats a Redis that stops answering (SIGSTOP) as an outage: publishers never wait on it, and it resumes when Redis answers",
    () => {
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
        // a small in-flight bound: before, publishers waited on the frozen Redis once 8 were sent
        const options = {
          url: server.url,
          pingInterval: "200 millis",
          replyTimeout: "300 millis",
          maxInFlight: 8
        } as const
        const a = yield* node(options)
        const b = yield* node(options)
        const onA: Array<Backplane.Envelope> = []
        const onB: Array<Backplane.Envelope> = []
        yield* a.subscribe("room", (e) => onA.push(e))
        yield* b.subscribe("room", (e) => onB.push(e))
        yield* a.publish(broadcast("room", "before"))
        yield* within(() => texts(onB).includes("before"))
        const undelivered = yield* count(RedisBackplane.undeliveredTotal)

        server.freeze()
        yield* within(
          () => logs.lines.filter((l) => l.includes("no reply to PING within 300 ms")).length === 2,
          5_000,
          "hang noticed by both nodes"
        )
        expect(yield* gauge).toBe(0)
        const publishing = Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => a.publish(broadcast("room", `during ${i}`))
        )
        yield* publishing.pipe(
          Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("publish waited on a frozen Redis") })
        )
        expect(texts(onA).filter((t) => t.startsWith("during"))).toHaveLength(100)
        expect((yield* count(RedisBackplane.undeliveredTotal)) - undelivered).toBe(100)
        // a new topic during the hang is subscribed without waiting for it
        yield* b
          .subscribe("later", () => {})
          .pipe(Effect.timeoutOrElse({ duration: "1 second", orElse: () => Effect.die("subscribe waited") }))
        // one line per node for the whole hang
        yield* Effect.sleep(1_000)
        expect(logs.lines.filter((l) => l.includes(": lost "))).toHaveLength(2)

        server.thaw()
        yield* within(() => logs.lines.filter((l) => l.includes("is back after")).length === 2, 10_000, "answering")
        expect(yield* gauge).toBe(1)
        yield* a.publish(broadcast("room", "after"))
        yield* within(() => texts(onB).includes("after"))
        expect(texts(onB).filter((t) => t.startsWith("during"))).toEqual([])
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    },
    30_000
  )

  it.live("survives a Redis restart in the middle of a stream: what arrives is in order, without duplicates", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startRedisServer()),
        (s) => Effect.promise(() => s.stop())
      )
      const a = yield* node({ url: server.url })
      const b = yield* node({ url: server.url })
      const got: Array<number> = []
      yield* b.subscribe("stream", (e) => {
        if (e._tag === "Broadcast") got.push(Number(e.message))
      })
      let sent = 0
      const publishFor = (millis: number) =>
        Effect.gen(function* () {
          const end = Date.now() + millis
          while (Date.now() < end) {
            yield* a.publish(broadcast("stream", String(sent++)))
            if (sent % 20 === 0) yield* Effect.sleep(1)
          }
        })
      yield* publishFor(300)
      yield* Effect.promise(() => server.kill())
      yield* publishFor(300)
      yield* Effect.promise(() => server.restart())
      // back once a probe crosses: both nodes resubscribed
      let probes = 0
      const probed: Array<Backplane.Envelope> = []
      yield* b.subscribe("probe", (e) => probed.push(e))
      yield* within(
        () => {
          Effect.runFork(a.publish(broadcast("probe", String(probes++))))
          return probed.length > 0
        },
        15_000,
        "reconnected"
      )
      const resumedAt = sent
      yield* publishFor(300)
      yield* within(() => got.includes(sent - 1), 10_000, "the last message")
      for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThan(got[i - 1] ?? -1)
      expect(new Set(got).size).toBe(got.length)
      // everything published once Redis was back arrived
      expect(got.filter((n) => n >= resumedAt)).toHaveLength(sent - resumedAt)
    }).pipe(Effect.scoped)
  )

  it.live("carries presence across nodes: a hub started later lists the members already there", () =>
    Effect.gen(function* () {
      const a = yield* node({ url: sharedUrl() })
      const b = yield* node({ url: sharedUrl() })
      const hubA = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, a))
      const ada = yield* TestClient.connect(Quiet, { keepalive: false, closeTimeout: false })
      yield* hubA.join("room", ada.connection, { nick: "ada" })
      const scopeB = yield* Scope.make()
      const hubB = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, b), Scope.provide(scopeB))
      const nicksOn = (hub: Hub.Hub["Service"]) =>
        Effect.runSync(hub.members("room")).map((m) => (m.meta as { readonly nick: string }).nick)
      yield* within(() => nicksOn(hubB).join() === "ada", 5_000, "B learns ada")
      const bob = yield* TestClient.connect(Quiet, { keepalive: false, closeTimeout: false })
      yield* hubB.join("room", bob.connection, { nick: "bob" })
      yield* within(() => nicksOn(hubA).join() === "ada,bob", 5_000, "A learns bob")
      // B stops: it says so, and its members leave A's list at once
      yield* Scope.close(scopeB, Exit.void)
      yield* within(() => nicksOn(hubA).join() === "ada", 5_000, "bob leaves")
    }).pipe(Effect.scoped)
  )

  it.live("authenticates with user and password in the URL, and fails the layer on a wrong one", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startRedisServer({ user: { name: "switch", password: "s3cret/+=" } })),
        (s) => Effect.promise(() => s.stop())
      )
      const url = `redis://switch:${encodeURIComponent("s3cret/+=")}@127.0.0.1:${server.port}`
      const a = yield* node({ url: Redacted.make(url) })
      const b = yield* node({ url })
      const got: Array<Backplane.Envelope> = []
      yield* b.subscribe("t", (e) => got.push(e))
      yield* a.publish(broadcast("t", "authenticated"))
      yield* within(() => texts(got).includes("authenticated"))
      const wrong = yield* Effect.exit(
        node({ url: `redis://switch:wrong@127.0.0.1:${server.port}`, connectTimeout: "3 seconds" })
      )
      expect(Exit.isFailure(wrong)).toBe(true)
      const message = Exit.isFailure(wrong) ? String(wrong.cause) : ""
      expect(message).toContain("BackplaneError")
      expect(message).not.toContain("wrong@")
    }).pipe(Effect.scoped)
  )

  it.live("serves rediss:// with a private CA", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startRedisServer({ tls: true })),
        (s) => Effect.promise(() => s.stop())
      )
      expect(server.url.startsWith("rediss://")).toBe(true)
      const tls = { ca: server.ca ?? "" }
      const a = yield* node({ url: server.url, tls })
      const b = yield* node({ url: server.url, tls })
      const got: Array<Backplane.Envelope> = []
      yield* b.subscribe("t", (e) => got.push(e))
      const bytes = new Uint8Array([0, 255, 1, 254])
      yield* a.publish(broadcast("t", bytes))
      yield* within(() => got.length === 1)
      const message = got[0]?._tag === "Broadcast" ? got[0].message : undefined
      expect(message instanceof Uint8Array && [...message]).toEqual([...bytes])
    }).pipe(Effect.scoped)
  )

  it.live("fails the layer with a BackplaneError when nothing answers within connectTimeout", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const started = Date.now()
      const exit = yield* Effect.exit(node({ url: `redis://127.0.0.1:${port}`, connectTimeout: "1 second" }))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain(`could not reach redis://127.0.0.1:${port}`)
      expect(Date.now() - started).toBeLessThan(5_000)
    }).pipe(Effect.scoped)
  )

  it.live("fails the layer with a BackplaneError for bad options", () =>
    Effect.gen(function* () {
      const bad: ReadonlyArray<[RedisBackplane.Options, string]> = [
        [{ url: "http://127.0.0.1:6379" }, "is not redis: or rediss:"],
        [{ url: "not a url" }, "not a URL"],
        [{ url: "redis://127.0.0.1:6379", tls: { ca: "x" } }, "need a rediss:// URL"],
        [{ url: "redis://127.0.0.1:6379", maxInFlight: 0 }, "maxInFlight"],
        [{ url: "redis://127.0.0.1:6379", connectTimeout: "soon" as never }, "connectTimeout"]
      ]
      for (const [options, expected] of bad) {
        const exit = yield* Effect.exit(node(options))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain(expected)
      }
    }).pipe(Effect.scoped)
  )

  it.live("drops a message on its channel that is not in its format, and counts it", () =>
    Effect.gen(function* () {
      const a = yield* node({ url: sharedUrl(), prefix: "garbage-test:" })
      const got: Array<Backplane.Envelope> = []
      yield* a.subscribe("t", (e) => got.push(e))
      const malformed = yield* count(RedisBackplane.malformedTotal)
      yield* Effect.promise(() => shared?.publishRaw("garbage-test:t", Buffer.from([9, 9, 9])) ?? Promise.resolve())
      yield* within(() => Effect.runSync(count(RedisBackplane.malformedTotal)) > malformed)
      yield* a.publish(broadcast("t", "still fine"))
      expect(texts(got)).toEqual(["still fine"])
    }).pipe(Effect.scoped)
  )
})
