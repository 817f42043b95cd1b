import { describe, expect, it } from "@effect/vitest"
import { Behavior, type CloseReason, Keepalive } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Effect } from "effect"
import { TestClock } from "effect/testing"

const reasons: Array<CloseReason.CloseReason> = []
const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message),
  onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason))
})
const keepalive = { pingAfter: "60 seconds", closeAfterNoPong: "100 seconds" } as const

describe("Keepalive", () => {
  it.effect("pings after pingAfter of inbound inactivity", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, { keepalive })
      yield* TestClock.adjust("59 seconds")
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* client.expectPing
    })
  )

  it.effect("postpones the ping after any inbound activity", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, { keepalive })
      yield* TestClock.adjust("45 seconds")
      yield* client.send("still here")
      expect(yield* client.expectText).toBe("still here")
      yield* TestClock.adjust("59 seconds")
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* client.expectPing
    })
  )

  it.effect("keeps a connection whose client answers with a pong", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, { keepalive })
      for (let round = 0; round < 3; round++) {
        yield* TestClock.adjust("60 seconds")
        yield* client.expectPing
        yield* TestClock.adjust("99 seconds")
        yield* client.pong
      }
      // the last pong counts as activity: the next ping is due 60 s after it
      yield* TestClock.adjust("59 seconds")
      expect(client.pending).toEqual([])
      expect(client.connection.isOpen).toBe(true)
      yield* client.send("alive")
      expect(yield* client.expectText).toBe("alive")
    })
  )

  it.effect("destroys the connection when no pong arrives within closeAfterNoPong, with reason Timeout", () =>
    Effect.gen(function* () {
      reasons.length = 0
      const client = yield* TestClient.connect(Echo, { keepalive })
      yield* TestClock.adjust("60 seconds")
      yield* client.expectPing
      yield* TestClock.adjust("99 seconds")
      expect(client.connection.isOpen).toBe(true)
      yield* TestClock.adjust("1 second")
      expect((yield* client.closed).code).toBe(1006)
      yield* client.finished
      expect(reasons).toEqual([{ _tag: "Timeout", timer: "keepalive" }])
    })
  )

  it.effect("closes with 1000 after idleTimeout without messages either way", () =>
    Effect.gen(function* () {
      reasons.length = 0
      const client = yield* TestClient.connect(Echo, { keepalive: false, idleTimeout: "30 seconds" })
      yield* TestClock.adjust("20 seconds")
      yield* client.send("a")
      expect(yield* client.expectText).toBe("a")
      yield* TestClock.adjust("29 seconds")
      expect(client.connection.isOpen).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* client.expectClose(1000)).toEqual({ code: 1000, reason: "idle timeout" })
      yield* client.finished
      expect(reasons).toEqual([{ _tag: "Timeout", timer: "idle" }])
    })
  )

  it.effect("counts outbound messages as activity for the idle timeout", () =>
    Effect.gen(function* () {
      const Ticker = Behavior.make({
        onInfo: (conn, info: string) => conn.send(info)
      })
      const client = yield* TestClient.connect(Ticker, { keepalive: false, idleTimeout: "30 seconds" })
      yield* TestClock.adjust("25 seconds")
      yield* client.connection.tell("tick")
      expect(yield* client.expectText).toBe("tick")
      yield* TestClock.adjust("25 seconds")
      expect(client.connection.isOpen).toBe(true)
      yield* TestClock.adjust("5 seconds")
      yield* client.expectClose(1000)
    })
  )

  it.effect("does not count pings and pongs as activity for the idle timeout", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, {
        keepalive: { pingAfter: "10 seconds", closeAfterNoPong: "5 seconds" },
        idleTimeout: "30 seconds"
      })
      for (let i = 0; i < 2; i++) {
        yield* TestClock.adjust("10 seconds")
        yield* client.expectPing
        yield* client.pong
      }
      yield* TestClock.adjust("10 seconds")
      expect(yield* client.expectClose(1000)).toEqual({ code: 1000, reason: "idle timeout" })
    })
  )

  it.effect("terminates a peer that does not answer the close frame within closeTimeout", () =>
    Effect.gen(function* () {
      const Closer = Behavior.make({ onMessage: (conn) => conn.close(4000, "done") })
      const client = yield* TestClient.connect(Closer, {
        keepalive: false,
        closeTimeout: "5 seconds",
        answerClose: false
      })
      yield* client.send("close please")
      yield* client.expectClose(4000)
      yield* TestClock.adjust("4999 millis")
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("1 milli")
      expect((yield* client.closed).code).toBe(1006)
    })
  )

  it.effect("sends no ping when keepalive is off", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, { keepalive: false })
      yield* TestClock.adjust("1 hour")
      expect(client.pending).toEqual([])
      expect(client.connection.isOpen).toBe(true)
    })
  )

  it("resolves durations, defaults and the sweep resolution", () => {
    expect(Keepalive.resolve(undefined)).toEqual(Keepalive.defaults)
    expect(Keepalive.resolve({ keepalive: false, idleTimeout: "2 minutes" })).toEqual({
      pingAfter: 0,
      closeAfterNoPong: 0,
      idleTimeout: 120_000,
      closeTimeout: 5_000
    })
    expect(Keepalive.resolutionFor([Keepalive.defaults])).toBe(625)
    expect(Keepalive.resolutionFor([{ pingAfter: 40, closeAfterNoPong: 40, idleTimeout: 0, closeTimeout: 0 }])).toBe(10)
    expect(() => Keepalive.resolve({ idleTimeout: "soon" as never })).toThrow(/idleTimeout/)
    expect(() => Keepalive.resolve({ closeTimeout: 0 })).toThrow(/closeTimeout/)
  })
})
