/**
 * The connection metrics, read through Effect's `Metric` as an exporter or
 * a Prometheus scrape would: what a TestClient session moves on each of
 * them. The counters are per process, so each test compares before and
 * after.
 */
import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, Hub, ServerMetrics } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Data, Effect, Layer, Metric } from "effect"

const noTimers = { keepalive: false, closeTimeout: false } as const
const settle = Effect.gen(function* () {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

const count = (metric: Metric.Metric<number, Metric.CounterState<number>>) =>
  Effect.map(Metric.value(metric), (state) => state.count)
const gauge = (metric: Metric.Metric<number, Metric.GaugeState<number>>) =>
  Effect.map(Metric.value(metric), (state) => state.value)

class Boom extends Data.TaggedError("Boom")<{}> {}

describe("ServerMetrics", () => {
  it.effect("counts connections by route, messages both ways, and closes by reason and code", () =>
    Effect.gen(function* () {
      const route = "/metrics-test-echo"
      const open = Metric.withAttributes(ServerMetrics.connectionsOpen, { route })
      const opened = Metric.withAttributes(ServerMetrics.connectionsOpenedTotal, { route })
      const peer1000 = Metric.withAttributes(ServerMetrics.connectionsClosedTotal, { reason: "Peer", code: "1000" })
      const before = {
        received: yield* count(ServerMetrics.messagesReceivedTotal),
        sent: yield* count(ServerMetrics.messagesSentTotal),
        peer: yield* count(peer1000),
        durations: (yield* Metric.value(ServerMetrics.behaviorDurationSeconds)).count
      }
      const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
      const client = yield* TestClient.connect(Echo, { ...noTimers, request: { path: route } })
      expect(yield* gauge(open)).toBe(1)
      expect(yield* count(opened)).toBe(1)
      yield* client.send("one")
      yield* client.send(new Uint8Array([2]))
      expect(yield* client.expectText).toBe("one")
      yield* client.expectBinary
      expect((yield* count(ServerMetrics.messagesReceivedTotal)) - before.received).toBe(2)
      expect((yield* count(ServerMetrics.messagesSentTotal)) - before.sent).toBe(2)
      // the second callback ends after its reply reached the client
      yield* settle
      expect((yield* Metric.value(ServerMetrics.behaviorDurationSeconds)).count - before.durations).toBe(2)
      yield* client.close(1000, "bye")
      yield* client.expectClose(1000)
      yield* settle
      expect(yield* gauge(open)).toBe(0)
      expect((yield* count(peer1000)) - before.peer).toBe(1)
    })
  )

  it.effect("a failing callback counts as a behaviour failure and a Crash 1011 close", () =>
    Effect.gen(function* () {
      const crash = Metric.withAttributes(ServerMetrics.connectionsClosedTotal, { reason: "Crash", code: "1011" })
      const before = { failures: yield* count(ServerMetrics.behaviorFailuresTotal), crashes: yield* count(crash) }
      const Failing = Behavior.make({ onMessage: () => Effect.fail(new Boom()) })
      const client = yield* TestClient.connect(Failing, noTimers)
      yield* client.send("x")
      const closed = yield* client.expectClose()
      expect(closed.code).toBe(1011)
      yield* settle
      expect((yield* count(ServerMetrics.behaviorFailuresTotal)) - before.failures).toBe(1)
      expect((yield* count(crash)) - before.crashes).toBe(1)
    })
  )

  it.effect("a full mailbox: pauses counted, one socket not read while it lasts, none after", () =>
    Effect.gen(function* () {
      const waiting: Array<() => void> = []
      let handled = 0
      const Slow = Behavior.make({
        onMessage: () =>
          Effect.callback<void>((resume) => {
            waiting.push(() => {
              handled++
              resume(Effect.void)
            })
          })
      })
      const before = {
        pauses: yield* count(ServerMetrics.mailboxPausesTotal),
        paused: yield* gauge(ServerMetrics.readingPaused)
      }
      const client = yield* TestClient.connect(Slow, { ...noTimers, mailboxCapacity: 2 })
      for (let i = 0; i < 4; i++) yield* client.send(`m${i}`)
      yield* settle
      expect(client.paused).toBe(true)
      // m0 and m1 fill it; the drain takes them as a batch and reads m2 and m3, which fill it again
      expect((yield* count(ServerMetrics.mailboxPausesTotal)) - before.pauses).toBe(2)
      expect((yield* gauge(ServerMetrics.readingPaused)) - before.paused).toBe(1)
      while (handled < 4) {
        const next = waiting.shift()
        expect(next).toBeDefined()
        next!()
        yield* settle
      }
      expect(client.paused).toBe(false)
      expect((yield* gauge(ServerMetrics.readingPaused)) - before.paused).toBe(0)
    })
  )

  it.effect("a send above highWaterMark suspends (counted); buffered bytes are summed over connections", () =>
    Effect.gen(function* () {
      const Big = Behavior.make({
        init: (conn: Connection.Connection<never>) => conn.send(new Uint8Array(40 * 1024))
      })
      const before = yield* count(ServerMetrics.sendSuspensionsTotal)
      const client = yield* TestClient.connect(Big, { ...noTimers, highWaterMark: 16 * 1024 })
      yield* settle
      expect((yield* count(ServerMetrics.sendSuspensionsTotal)) - before).toBe(1)
      expect(yield* gauge(ServerMetrics.bufferedBytes)).toBeGreaterThanOrEqual(40 * 1024)
      yield* client.expectBinary
    })
  )

  it.effect("hub broadcasts: one delivery per subscriber, published and received through the backplane", () =>
    Effect.gen(function* () {
      const Member = Behavior.make({
        init: (conn: Connection.Connection<never>) =>
          Effect.flatMap(Effect.service(Hub.Hub), (hub) => hub.subscribe("room", conn))
      })
      const before = {
        deliveries: yield* count(ServerMetrics.hubDeliveriesTotal),
        published: yield* count(ServerMetrics.backplanePublishedTotal),
        received: yield* count(ServerMetrics.backplaneReceivedTotal)
      }
      const clients = [yield* TestClient.connect(Member, noTimers), yield* TestClient.connect(Member, noTimers)]
      yield* settle
      const hub = yield* Hub.Hub
      yield* hub.broadcast("room", "hello")
      for (const client of clients) expect(yield* client.expectText).toBe("hello")
      expect((yield* count(ServerMetrics.hubDeliveriesTotal)) - before.deliveries).toBe(2)
      expect((yield* count(ServerMetrics.backplanePublishedTotal)) - before.published).toBe(1)
      expect((yield* count(ServerMetrics.backplaneReceivedTotal)) - before.received).toBe(1)
    }).pipe(Effect.provide(Hub.layer().pipe(Layer.provide(Backplane.layerMemory))))
  )
})
