import { assert, describe, expect, it } from "@effect/vitest"
import { Behavior, CloseCode, type CloseReason, type Connection, type ConnectionError } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Deferred, Effect, Exit, Fiber, Logger, Ref, References, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { recordingTracer } from "./fixtures/tracing.ts"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

const noTimers = { keepalive: false, closeTimeout: false } as const

/** A connection whose infos are connections like it. */
interface Bouncing extends Connection.Connection<Bouncing> {}

describe("Supervisor (connection actor)", () => {
  it.effect("echoes text as text and binary as binary", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, noTimers)
      yield* client.send("hello")
      yield* client.send(new Uint8Array([1, 2, 3]))
      expect(yield* client.expectText).toBe("hello")
      expect([...(yield* client.expectBinary)]).toEqual([1, 2, 3])
    })
  )

  it.effect("handles messages one at a time, in arrival order, with the state it returned", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      let inFlight = 0
      let maxInFlight = 0
      const Slow = Behavior.make({
        init: () => Effect.succeed(0),
        onMessage: (conn, message, count: number) =>
          Effect.gen(function* () {
            inFlight++
            maxInFlight = Math.max(maxInFlight, inFlight)
            yield* Effect.yieldNow
            seen.push(String(message))
            inFlight--
            yield* conn.send(`${count + 1}:${String(message)}`)
            return count + 1
          })
      })
      const client = yield* TestClient.connect(Slow, noTimers)
      for (let i = 0; i < 50; i++) yield* client.send(`m${i}`)
      for (let i = 0; i < 50; i++) expect(yield* client.expectText).toBe(`${i + 1}:m${i}`)
      expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`))
      expect(maxInFlight).toBe(1)
    })
  )

  it.effect("runs init before any message and delivers tell to onInfo after queued messages", () =>
    Effect.gen(function* () {
      const Greeter = Behavior.make({
        // init's `conn` is annotated: TypeScript would otherwise fix the info type before reading onInfo
        init: (conn: Connection.Connection<string>) => Effect.as(conn.send("welcome"), "anon"),
        onMessage: (conn, message, nick: string) =>
          typeof message === "string" && message.startsWith("/nick ")
            ? Effect.succeed(message.slice(6))
            : Effect.as(conn.send(`${nick}: ${String(message)}`), nick),
        onInfo: (conn, info: string, nick: string) => Effect.as(conn.send(`info for ${nick}: ${info}`), nick)
      })
      const client = yield* TestClient.connect(Greeter, noTimers)
      expect(yield* client.expectText).toBe("welcome")
      yield* client.send("/nick ada")
      yield* client.send("hi")
      yield* client.connection.tell("tick")
      expect(yield* client.expectText).toBe("ada: hi")
      expect(yield* client.expectText).toBe("info for ada: tick")
    })
  )

  it.effect("calls onClose once with the client's close code and reason", () =>
    Effect.gen(function* () {
      const reasons: Array<CloseReason.CloseReason> = []
      const Tracked = Behavior.make({
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason))
      })
      const client = yield* TestClient.connect(Tracked, noTimers)
      yield* client.close(4001, "bye")
      expect(yield* client.expectClose(4001)).toEqual({ code: 4001, reason: "bye" })
      yield* client.finished
      expect(reasons).toEqual([{ _tag: "Peer", code: 4001, reason: "bye" }])
      expect(client.connection.isOpen).toBe(false)
    })
  )

  it.effect("closes with 1011 when a callback fails, logs it with the connection id, and reports a Crash", () =>
    Effect.gen(function* () {
      const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make<unknown, void>(({ message, fiber }) => {
        logs.push({ message, annotations: fiber.getRef(References.CurrentLogAnnotations) })
      })
      const reasons: Array<string> = []
      const Failing = Behavior.make({
        onMessage: (conn, message) => (message === "boom" ? Effect.fail("kaput") : conn.send(message)),
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason._tag))
      })
      const client = yield* TestClient.connect(Failing, noTimers).pipe(
        Effect.provide(Logger.layer([logger], { mergeWithExisting: false }))
      )
      yield* client.send("ok")
      yield* client.send("boom")
      yield* client.send("after")
      expect(yield* client.expectText).toBe("ok")
      expect((yield* client.expectClose()).code).toBe(CloseCode.InternalError)
      yield* client.finished
      expect(reasons).toEqual(["Crash"])
      const error = logs.find((l) => String(l.message).includes("behavior failed"))
      assert.isDefined(error)
      expect(error?.annotations.connectionId).toBe(client.connection.id)
    })
  )

  it.effect("every log line of a connection, the behaviour's own too, carries its id and route", () =>
    Effect.gen(function* () {
      const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make<unknown, void>(({ message, fiber }) => {
        logs.push({ message, annotations: fiber.getRef(References.CurrentLogAnnotations) })
      })
      const Chatty = Behavior.make({
        init: () => Effect.log("opened"),
        onMessage: (conn, message) => Effect.andThen(Effect.log(`got ${String(message)}`), conn.send(message)),
        onClose: () => Effect.log("closed")
      })
      const client = yield* TestClient.connect(Chatty, { ...noTimers, request: { path: "/chatty" } }).pipe(
        Effect.provide(Logger.layer([logger], { mergeWithExisting: false }))
      )
      yield* client.send("hi")
      expect(yield* client.expectText).toBe("hi")
      yield* client.close(1000)
      yield* client.finished
      expect(logs.map((l) => String(l.message))).toEqual(["opened", "got hi", "closed"])
      for (const log of logs) {
        expect(log.annotations).toMatchObject({ connectionId: client.connection.id, route: "/chatty" })
      }
    })
  )

  it.effect(
    "with a tracer installed, each connection is a span from accept to close, parent of the behaviour's spans",
    () =>
      Effect.gen(function* () {
        const { tracer: recording, spans } = recordingTracer()
        const Traced = Behavior.make({
          onMessage: (conn, message) => conn.send(message).pipe(Effect.withSpan("app.echo"))
        })
        const client = yield* TestClient.connect(Traced, { ...noTimers, request: { path: "/traced" } }).pipe(
          Effect.provideService(Tracer.Tracer, recording)
        )
        yield* client.send("hi")
        expect(yield* client.expectText).toBe("hi")
        yield* client.close(4000, "done")
        yield* client.finished
        const connection = spans.find((span) => span.name === "switchboard.connection")
        assert.isDefined(connection)
        expect(connection!.attributes.get("switchboard.route")).toBe("/traced")
        expect(connection!.attributes.get("switchboard.connection.id")).toBe(client.connection.id)
        expect(connection!.attributes.get("switchboard.close.reason")).toBe("Peer")
        expect(connection!.attributes.get("switchboard.close.code")).toBe(4000)
        expect(connection!.status._tag).toBe("Ended")
        const echo = spans.find((span) => span.name === "app.echo")
        assert.isDefined(echo)
        expect(echo!.parent._tag === "Some" && echo!.parent.value.spanId).toBe(connection!.spanId)
      })
  )

  it.effect("with Effect's default tracer, connections make no span", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Echo, noTimers)
      expect((client.connection as unknown as { span: unknown }).span).toBeUndefined()
    })
  )

  it.effect("a defect in one connection closes only that connection", () =>
    Effect.gen(function* () {
      const Fragile = Behavior.make({
        onMessage: (conn, message) => (message === "die" ? Effect.die(new Error("bug")) : conn.send(message))
      })
      const a = yield* TestClient.connect(Fragile, noTimers)
      const b = yield* TestClient.connect(Fragile, noTimers)
      yield* a.send("die")
      expect((yield* a.expectClose()).code).toBe(1011)
      yield* b.send("still here")
      expect(yield* b.expectText).toBe("still here")
      expect(b.connection.isOpen).toBe(true)
    })
  )

  it.effect("still runs onClose when a callback fails in the same batch as the close", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const reasons: Array<string> = []
      const Tricky = Behavior.make({
        onMessage: (_conn, message) => (message === "slow" ? Deferred.await(gate) : Effect.fail("boom")),
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason._tag))
      })
      const client = yield* TestClient.connect(Tricky, noTimers)
      yield* client.send("slow")
      yield* Effect.yieldNow
      // while the actor waits on "slow", the failing message and the drop land in one batch
      yield* client.send("boom")
      yield* client.drop
      yield* Deferred.succeed(gate, undefined)
      yield* client.finished
      expect(reasons).toEqual(["Lost"])
    })
  )

  it.effect("refuses tell after the actor crashed", () =>
    Effect.gen(function* () {
      const Failing = Behavior.make({
        onMessage: () => Effect.fail("boom"),
        onInfo: (_conn, _info: string) => Effect.void
      })
      const client = yield* TestClient.connect(Failing, { ...noTimers, answerClose: false })
      yield* client.send("x")
      yield* client.expectClose(1011)
      expect(client.connection.tellUnsafe("late")).toBe(false)
      expect((yield* Effect.flip(client.connection.tell("late"))).reason._tag).toBe("NotOpen")
      yield* client.drop
    })
  )

  it.effect("does not call onClose when init failed, and closes with 1011", () =>
    Effect.gen(function* () {
      let closes = 0
      const BadInit = Behavior.make({
        init: () => Effect.fail("no state"),
        onClose: () => Effect.sync(() => void closes++)
      })
      const client = yield* TestClient.connect(BadInit, noTimers)
      expect((yield* client.expectClose()).code).toBe(1011)
      yield* client.finished
      expect(closes).toBe(0)
    })
  )

  it.effect("pauses reading while the mailbox is full and loses nothing", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const received: Array<string> = []
      const Gated = Behavior.make({
        onMessage: (_conn, message) =>
          Effect.andThen(
            Deferred.await(gate),
            Effect.sync(() => void received.push(String(message)))
          )
      })
      const client = yield* TestClient.connect(Gated, { ...noTimers, mailboxCapacity: 4 })
      for (let i = 0; i < 100; i++) yield* client.send(`m${i}`)
      yield* Effect.yieldNow
      expect(client.paused).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      while (received.length < 100) yield* Effect.yieldNow
      expect(received).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`))
      expect(client.paused).toBe(false)
      expect(client.pauses).toBeGreaterThan(1)
    })
  )

  it.effect("suspends send while more than highWaterMark bytes are unread, until the socket drains", () =>
    Effect.gen(function* () {
      const progress = yield* Ref.make(0)
      const chunk = new Uint8Array(16 * 1024)
      const Flood = Behavior.make({
        onMessage: (conn) =>
          Effect.gen(function* () {
            for (let i = 0; i < 10; i++) {
              yield* conn.send(chunk)
              yield* Ref.set(progress, i + 1)
            }
          })
      })
      const client = yield* TestClient.connect(Flood, { ...noTimers, highWaterMark: 32 * 1024 })
      yield* client.send("go")
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      // 3 chunks put the buffer over 32 KiB: the third send waits for a drain
      expect(yield* Ref.get(progress)).toBe(2)
      expect(client.connection.bufferedAmount).toBe(3 * 16 * 1024)
      for (let i = 0; i < 10; i++) expect((yield* client.expectBinary).byteLength).toBe(chunk.byteLength)
      expect(yield* Ref.get(progress)).toBe(10)
    })
  )

  it.effect("rejects a close code that may not be sent", () =>
    Effect.gen(function* () {
      const results: Array<Exit.Exit<void, ConnectionError.ConnectionError>> = []
      const Closer = Behavior.make({
        onMessage: (conn, message) =>
          Effect.flatMap(Effect.exit(conn.close(Number(message), "x")), (exit) =>
            Effect.sync(() => void results.push(exit))
          )
      })
      const client = yield* TestClient.connect(Closer, noTimers)
      yield* client.send("1005")
      yield* client.send("1000")
      expect((yield* client.expectClose()).code).toBe(1000)
      yield* client.finished
      const first = results[0]!
      assert.isTrue(Exit.isFailure(first))
      if (Exit.isFailure(first)) {
        const error = first.cause.reasons[0]
        expect(error?._tag === "Fail" && error.error.reason._tag).toBe("InvalidClose")
      }
      assert.isTrue(Exit.isSuccess(results[1]!))
    })
  )

  it.effect("tell fails with MailboxFull when the mailbox is full and NotOpen after close", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const Stuck = Behavior.make({
        init: () => Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)),
        onInfo: (_conn, _info: string) => Effect.void
      })
      const client = yield* TestClient.connect(Stuck, { ...noTimers, mailboxCapacity: 2 })
      yield* Deferred.await(started)
      yield* client.connection.tell("a")
      yield* client.connection.tell("b")
      const full = yield* Effect.flip(client.connection.tell("c"))
      expect(full.reason._tag).toBe("MailboxFull")
      yield* Deferred.succeed(gate, undefined)
      yield* client.close()
      yield* client.finished
      const closed = yield* Effect.flip(client.connection.tell("d"))
      expect(closed.reason._tag).toBe("NotOpen")
    })
  )

  it.effect("closes every connection with 1001 when its scope closes, and runs onClose with Shutdown", () =>
    Effect.gen(function* () {
      const reasons: Array<string> = []
      const Tracked = Behavior.make({
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason._tag))
      })
      const scope = yield* Scope.make()
      const clients = yield* Effect.all(
        [TestClient.connect(Tracked, noTimers), TestClient.connect(Tracked, noTimers)],
        { concurrency: "unbounded" }
      ).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      for (const client of clients) {
        expect(yield* client.expectClose(CloseCode.GoingAway)).toEqual({ code: 1001, reason: "server shutdown" })
        expect((yield* client.closed).code).toBe(1001)
      }
      expect(reasons).toEqual(["Shutdown", "Shutdown"])
    })
  )

  it.effect("terminates connections that do not finish closing within the shutdown timeout, and says what it did", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const logger = Logger.make<unknown, void>(({ message }) => {
        logs.push(String(message))
      })
      const scope = yield* Scope.make()
      const client = yield* TestClient.connect(Echo, { ...noTimers, answerClose: false }).pipe(
        Scope.provide(scope),
        Effect.provide(Logger.layer([logger], { mergeWithExisting: false }))
      )
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* client.expectClose(1001)
      yield* TestClock.adjust("5 seconds")
      expect((yield* client.closed).code).toBe(1006)
      yield* Fiber.await(closing)
      expect(logs).toContain("shutdown: 0 of 1 connection(s) closed with 1001, 1 terminated, in 5000 ms")
    })
  )

  it.effect("actors that keep telling each other leave the event loop to timers and I/O", () =>
    Effect.gen(function* () {
      let hops = 0
      let stop = false
      // bounded, so that a loop that starves the timer still ends (and the test fails)
      const maxHops = 100_000
      // each info is the connection to tell next: two actors bounce it back and forth
      const Bouncer = Behavior.make({
        onInfo: (conn: Bouncing, peer: Bouncing) =>
          Effect.suspend(() => {
            hops++
            return stop || hops >= maxHops ? Effect.void : peer.tell(conn)
          })
      })
      const a = yield* TestClient.connect(Bouncer, noTimers)
      const b = yield* TestClient.connect(Bouncer, noTimers)
      yield* a.connection.tell(b.connection)
      // a real timer: it fires only if the bouncing gives the event loop its turns
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))
      const during = hops
      stop = true
      yield* a.idle
      yield* b.idle
      expect(during).toBeGreaterThan(10)
      expect(during).toBeLessThan(maxHops)
    })
  )
})
