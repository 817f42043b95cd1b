import { describe, expect, it } from "@effect/vitest"
import { Behavior, type CloseReason } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})
const quiet = { keepalive: false, closeTimeout: false } as const

describe("TestClient", () => {
  // the example of DESIGN.md and docs/guide/testing.md
  it.effect("closes a client that never answers a ping", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, {
        keepalive: { pingAfter: "60 seconds", closeAfterNoPong: "100 seconds" }
      })
      yield* TestClock.adjust("60 seconds")
      yield* client.expectPing
      yield* TestClock.adjust("100 seconds")
      expect((yield* client.closed).code).toBe(1006)
    })
  )

  it.effect("fails an expectation with UnexpectedFrame naming what arrived", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, quiet)
      yield* client.send(new Uint8Array([1, 2]))
      const error = yield* Effect.flip(client.expectText)
      expect(error._tag).toBe("UnexpectedFrame")
      expect(error.message).toBe("expected a text message, got Binary(2 bytes)")
    })
  )

  it.effect("fails next once the connection closed with nothing left to read", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, quiet)
      yield* client.close(1000, "bye")
      expect(yield* client.expectClose(1000)).toEqual({ code: 1000, reason: "bye" })
      const error = yield* Effect.flip(client.next)
      expect(error.actual).toBe("nothing (the connection is closed)")
    })
  )

  it.effect("holds what the client sends while the server paused reading, and delivers it in order", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const handled: Array<string> = []
      const Gated = Behavior.make({
        onMessage: (_conn, message) =>
          Effect.andThen(
            Deferred.await(gate),
            Effect.sync(() => void handled.push(String(message)))
          ),
        onClose: () => Effect.sync(() => void handled.push("closed"))
      })
      const client = yield* TestClient.connect(Gated, { ...quiet, mailboxCapacity: 2 })
      for (let i = 0; i < 10; i++) yield* client.send(`m${i}`)
      yield* client.close(4001, "done")
      expect(client.paused).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      yield* client.finished
      // the close frame was read after the messages sent before it
      expect(handled).toEqual([...Array.from({ length: 10 }, (_, i) => `m${i}`), "closed"])
      yield* client.expectClose(4001)
      expect(client.pauses).toBeGreaterThan(1)
    })
  )

  it.effect("drop ends the connection without a close frame: the behaviour sees Lost", () =>
    Effect.gen(function* () {
      const reasons: Array<CloseReason.CloseReason> = []
      const Tracked = Behavior.make({ onClose: (_c, reason) => Effect.sync(() => void reasons.push(reason)) })
      const client = yield* TestClient.connect(Tracked, quiet)
      yield* client.drop
      yield* client.finished
      expect(reasons).toEqual([{ _tag: "Lost" }])
      expect((yield* client.closed).code).toBe(1006)
    })
  )

  it.effect("counts a client ping as activity", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, {
        keepalive: { pingAfter: "10 seconds", closeAfterNoPong: "5 seconds" }
      })
      yield* TestClock.adjust("9 seconds")
      yield* client.ping
      yield* TestClock.adjust("9 seconds")
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* client.expectPing
    })
  )

  it.effect("gives the behaviour the request and auth it was connected with", () =>
    Effect.gen(function* () {
      const WhoAmI = Behavior.make({
        init: (conn) => conn.send(`${conn.request.path}?${conn.request.query} ${JSON.stringify(conn.auth)}`)
      })
      const client = yield* TestClient.connect(WhoAmI, {
        ...quiet,
        request: { path: "/me", query: new URLSearchParams({ room: "lobby" }) },
        auth: { user: "ada" }
      })
      expect(yield* client.expectText).toBe('/me?room=lobby {"user":"ada"}')
    })
  )

  it.effect("idle waits until every signal so far is handled: init, then each message", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const Slow = Behavior.make({
        init: () =>
          Effect.andThen(
            Effect.sleep("1 second"),
            Effect.sync(() => void log.push("init"))
          ),
        onMessage: (_conn, message) =>
          Effect.andThen(
            Effect.sleep("1 second"),
            Effect.sync(() => void log.push(String(message)))
          )
      })
      const client = yield* TestClient.connect(Slow, quiet)
      yield* client.send("a")
      yield* client.send("b")
      const idle = yield* Effect.forkChild(client.idle)
      yield* TestClock.adjust("2 seconds")
      expect(log).toEqual(["init", "a"])
      expect(idle.pollUnsafe()).toBeUndefined() // "b" is still being handled
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(idle)
      expect(log).toEqual(["init", "a", "b"])
      // nothing queued: at once
      yield* client.idle
    })
  )
})
