import { describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Effect, Fiber, Latch, Ref } from "effect"
import { TestClock } from "effect/testing"

const noTimers = { keepalive: false, closeTimeout: false } as const
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("Connection: drain, reading control and pings", () => {
  it.effect("awaitDrained waits until the peer has read every frame, and returns at once when nothing is queued", () =>
    Effect.gen(function* () {
      const drained = yield* Ref.make<Array<string>>([])
      const Writer = Behavior.make({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            if (message === "idle") {
              yield* conn.awaitDrained
              yield* Ref.update(drained, (seen) => [...seen, "idle"])
              return
            }
            yield* conn.send("a")
            yield* conn.send("b")
            yield* conn.awaitDrained
            yield* Ref.update(drained, (seen) => [...seen, `after ${conn.bufferedAmount}`])
          })
      })
      const client = yield* TestClient.connect(Writer, noTimers)
      yield* client.send("idle")
      yield* settle
      expect(yield* Ref.get(drained)).toEqual(["idle"])
      yield* client.send("go")
      yield* settle
      // two frames unread: the behaviour still waits
      expect(yield* Ref.get(drained)).toEqual(["idle"])
      expect(yield* client.expectText).toBe("a")
      yield* settle
      expect(yield* Ref.get(drained)).toEqual(["idle"])
      expect(yield* client.expectText).toBe("b")
      yield* settle
      expect(yield* Ref.get(drained)).toEqual(["idle", "after 0"])
    })
  )

  it.effect("awaitDrained returns when the connection closes with bytes still queued", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make(false)
      const Writer = Behavior.make({
        onMessage: (conn) =>
          Effect.andThen(Effect.andThen(conn.send("unread"), conn.awaitDrained), Ref.set(ended, true))
      })
      const client = yield* TestClient.connect(Writer, noTimers)
      yield* client.send("go")
      yield* settle
      expect(yield* Ref.get(ended)).toBe(false)
      yield* client.drop
      yield* client.finished
      expect(yield* Ref.get(ended)).toBe(true)
    })
  )

  it.effect("onDrain runs once each time the buffer passed highWaterMark and emptied, never below it", () =>
    Effect.gen(function* () {
      const chunk = new Uint8Array(4096)
      const Burst = Behavior.make({
        init: () => Effect.succeed(0),
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            const count = Number(message)
            // the send that passes the high-water mark waits for the drain
            for (let i = 0; i < count; i++) yield* conn.send(chunk)
            return 0
          }),
        onDrain: (conn, drains) => Effect.as(conn.send(`drained ${drains + 1}`), drains + 1)
      })
      const client = yield* TestClient.connect(Burst, { ...noTimers, highWaterMark: 16 * 1024 })
      // under the mark: no onDrain
      yield* client.send("2")
      for (let i = 0; i < 2; i++) expect((yield* client.expectBinary).byteLength).toBe(4096)
      yield* settle
      expect(client.pending).toEqual([])
      // over the mark: one onDrain once everything is read
      yield* client.send("8")
      yield* settle
      expect(client.connection.bufferedAmount).toBe(5 * 4096)
      for (let i = 0; i < 8; i++) expect((yield* client.expectBinary).byteLength).toBe(4096)
      expect(yield* client.expectText).toBe("drained 1")
      yield* client.send("8")
      yield* settle
      expect(client.connection.bufferedAmount).toBe(5 * 4096)
      for (let i = 0; i < 8; i++) expect((yield* client.expectBinary).byteLength).toBe(4096)
      expect(yield* client.expectText).toBe("drained 1")
      yield* settle
      expect(client.pending).toEqual([])
    })
  )

  it.effect(
    "pauseReading holds the peer's messages whatever the mailbox holds; resumeReading delivers them in order",
    () =>
      Effect.gen(function* () {
        const seen = yield* Ref.make<Array<string>>([])
        const Pausing = Behavior.make<void, "resume">({
          onMessage: (conn, message) =>
            Effect.gen(function* () {
              yield* Ref.update(seen, (all) => [...all, String(message)])
              if (message === "pause") yield* conn.pauseReading
            }),
          onInfo: (conn) => conn.resumeReading
        })
        const client = yield* TestClient.connect(Pausing, noTimers)
        yield* client.send("pause")
        yield* settle
        expect(client.paused).toBe(true)
        for (let i = 0; i < 5; i++) yield* client.send(`m${i}`)
        yield* settle
        expect(yield* Ref.get(seen)).toEqual(["pause"])
        yield* client.connection.tell("resume")
        yield* settle
        expect(client.paused).toBe(false)
        expect(yield* Ref.get(seen)).toEqual(["pause", "m0", "m1", "m2", "m3", "m4"])
      })
  )

  it.effect("a mailbox that drains does not resume reading the behaviour paused", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<Array<string>>([])
      const Pausing = Behavior.make<void, "resume">({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            yield* Ref.update(seen, (all) => [...all, String(message)])
            if (message === "m0") yield* conn.pauseReading
          }),
        onInfo: (conn) => conn.resumeReading
      })
      const client = yield* TestClient.connect(Pausing, { ...noTimers, mailboxCapacity: 2 })
      // the mailbox fills before the behaviour runs: the mailbox pauses first
      for (let i = 0; i < 6; i++) yield* client.send(`m${i}`)
      yield* settle
      // the mailbox emptied, but m0 asked for a pause: reading stays stopped
      expect(client.paused).toBe(true)
      const before = (yield* Ref.get(seen)).length
      yield* settle
      expect((yield* Ref.get(seen)).length).toBe(before)
      yield* client.connection.tell("resume")
      yield* settle
      expect(yield* Ref.get(seen)).toEqual(["m0", "m1", "m2", "m3", "m4", "m5"])
      expect(client.paused).toBe(false)
    })
  )

  it.effect("keepalive and the idle timeout are suspended while reading is paused, and start again on resume", () =>
    Effect.gen(function* () {
      const Pausing = Behavior.make<void, "resume">({
        onMessage: (conn, message) => (message === "pause" ? conn.pauseReading : Effect.void),
        onInfo: (conn) => conn.resumeReading
      })
      const client = yield* TestClient.connect(Pausing, {
        keepalive: { pingAfter: "10 seconds", closeAfterNoPong: "5 seconds" },
        idleTimeout: "30 seconds",
        closeTimeout: false
      })
      yield* client.send("pause")
      yield* settle
      yield* TestClock.adjust("5 minutes")
      expect(client.pending).toEqual([])
      yield* client.connection.tell("resume")
      yield* settle
      yield* TestClock.adjust("9 seconds")
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* client.expectPing
      // the client answers nothing: 5 s later it is closed as before
      yield* TestClock.adjust("5 seconds")
      expect((yield* client.closed).code).toBe(1006)
    })
  )

  it.effect("onPing sees each ping's payload, and a ping counts as activity", () =>
    Effect.gen(function* () {
      const Pinged = Behavior.make({
        onPing: (conn, payload) => conn.send(`ping ${[...payload].join(",")}`)
      })
      const client = yield* TestClient.connect(Pinged, {
        keepalive: { pingAfter: "10 seconds", closeAfterNoPong: "5 seconds" },
        closeTimeout: false
      })
      yield* client.pingWith(new Uint8Array([1, 2, 3]))
      expect(yield* client.expectText).toBe("ping 1,2,3")
      yield* client.ping
      expect(yield* client.expectText).toBe("ping ")
      yield* TestClock.adjust("9 seconds")
      yield* client.ping
      yield* TestClock.adjust("9 seconds")
      expect((yield* client.expectText).startsWith("ping")).toBe(true)
      expect(client.pending).toEqual([])
    })
  )

  it.effect("a ping that finds the mailbox full is not reported, and the connection goes on", () =>
    Effect.gen(function* () {
      const pings = yield* Ref.make(0)
      const gate = yield* Latch.make(false)
      const Slow = Behavior.make({
        onMessage: () => gate.await,
        onPing: () => Ref.update(pings, (n) => n + 1)
      })
      const client = yield* TestClient.connect(Slow, { ...noTimers, mailboxCapacity: 2 })
      yield* client.send("m0")
      yield* settle
      yield* client.send("m1")
      yield* client.send("m2")
      for (let i = 0; i < 10; i++) yield* client.pingWith(new Uint8Array([i]))
      const fiber = yield* Effect.forkChild(gate.open)
      yield* Fiber.join(fiber)
      yield* settle
      expect(yield* Ref.get(pings)).toBe(0)
      yield* client.ping
      yield* settle
      expect(yield* Ref.get(pings)).toBe(1)
    })
  )
})
