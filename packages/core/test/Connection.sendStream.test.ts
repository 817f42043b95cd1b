import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, type ConnectionError, Hub, type Message } from "@switchboard/core"
import { type Frame, TestClient } from "@switchboard/testing"
import { Data, Effect, Exit, Fiber, Layer, Queue, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"

const noTimers = { keepalive: false, closeTimeout: false } as const
const settle = Effect.gen(function* () {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

class SourceFailed extends Data.TaggedError("SourceFailed")<{ readonly at: number }> {}

/** Streams whatever `make` builds for the message it gets, and records how the send ended. */
const Streamer = <E>(
  make: (message: Message.Message, conn: Connection.Connection<never>) => Stream.Stream<Message.Message, E>,
  ended: Ref.Ref<Array<string>>,
  options?: Connection.SendStreamOptions
) =>
  Behavior.make({
    onMessage: (conn, message) =>
      conn.sendStream(make(message, conn), options).pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Ref.update(ended, (all) => [
            ...all,
            Exit.isSuccess(exit)
              ? "done"
              : `failed: ${JSON.stringify(exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r._tag)))}`
          ])
        )
      )
  })

const fragments = (frames: ReadonlyArray<Frame.Frame>) =>
  frames.map((f) =>
    f._tag === "Fragment"
      ? `${typeof f.data === "string" ? f.data : `[${f.data.join(",")}]`}${f.fin ? "!" : ""}`
      : f._tag
  )

const readFrames = (client: TestClient.TestClient, count: number) =>
  Effect.gen(function* () {
    const frames: Array<Frame.Frame> = []
    for (let i = 0; i < count; i++) frames.push(yield* client.nextFrame)
    return frames
  })

describe("Connection.sendStream", () => {
  it.effect("sends one message as fragments, the last with fin; the client reads it whole", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const client = yield* TestClient.connect(
        Streamer(() => Stream.make("ab", "cd", "ef"), ended),
        noTimers
      )
      yield* client.send("go")
      yield* settle
      expect(fragments(client.pending)).toEqual(["ab", "cd", "ef!"])
      expect(yield* client.expectText).toBe("abcdef")
      expect(yield* Ref.get(ended)).toEqual(["done"])
    })
  )

  it.effect("a one-chunk stream is an ordinary message; an empty stream sends an empty one", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const client = yield* TestClient.connect(
        Streamer((m) => (m === "one" ? Stream.make("only") : Stream.empty), ended),
        noTimers
      )
      yield* client.send("one")
      yield* client.send("none")
      yield* settle
      expect(fragments(yield* readFrames(client, 2))).toEqual(["only!", "!"])
      const binary = yield* TestClient.connect(
        Streamer(() => Stream.empty, ended, { binary: true }),
        noTimers
      )
      yield* binary.send("none")
      expect(yield* binary.expectBinary).toEqual(new Uint8Array(0))
    })
  )

  it.effect("the first chunk sets the kind; the other kind is converted (strings as UTF-8, UTF-8 bytes as text)", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const euro = new TextEncoder().encode("€") // 3 bytes, split across chunks below
      const client = yield* TestClient.connect(
        Streamer(
          (m) =>
            m === "binary"
              ? Stream.make(new Uint8Array([1, 2]), "é")
              : Stream.make("price: ", euro.subarray(0, 1), euro.subarray(1), " 5"),
          ended
        ),
        noTimers
      )
      yield* client.send("binary")
      expect(yield* client.expectBinary).toEqual(new Uint8Array([1, 2, 0xc3, 0xa9]))
      yield* client.send("text")
      expect(yield* client.expectText).toBe("price: € 5")
      yield* settle
      expect(yield* Ref.get(ended)).toEqual(["done", "done"])
    })
  )

  it.effect("a byte order mark in UTF-8 bytes of a text message is kept, as every other character", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const client = yield* TestClient.connect(
        Streamer(() => Stream.make(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), "b"), ended, { binary: false }),
        noTimers
      )
      yield* client.send("go")
      expect(yield* client.expectText).toBe("\uFEFFab")
    })
  )

  it.effect("a character split between string chunks (a surrogate pair) arrives whole", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const smile = "😀"
      const client = yield* TestClient.connect(
        Streamer(() => Stream.make(`a${smile[0]}`, `${smile[1]}b`), ended),
        noTimers
      )
      yield* client.send("go")
      yield* settle
      // no fragment ends inside the character
      expect(fragments(client.pending)).toEqual(["a", `${smile}b!`])
      expect(yield* client.expectText).toBe(`a${smile}b`)
    })
  )

  it.effect("bytes that are not UTF-8 in a text message: InvalidStream, and 1011 once fragments went out", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const client = yield* TestClient.connect(
        Streamer(
          (m) => (m === "early" ? Stream.make(new Uint8Array([0xff])) : Stream.make("a", "b", new Uint8Array([0xff]))),
          ended,
          {
            binary: false
          }
        ),
        noTimers
      )
      // the bad chunk is the first: nothing went out, the connection stays open
      yield* client.send("early")
      yield* settle
      expect(client.pending).toEqual([])
      expect(client.connection.isOpen).toBe(true)
      yield* client.send("late")
      yield* settle
      expect(fragments(yield* readFrames(client, 1))).toEqual(["a"])
      expect(yield* client.expectClose(1011)).toEqual({ code: 1011, reason: "message stream failed" })
      const reasons = (yield* Ref.get(ended)).map((line) => line.includes("InvalidStream"))
      expect(reasons).toEqual([true, true])
    })
  )

  it.effect("a stream that fails after its first fragment closes with 1011 and fails with its error", () =>
    Effect.gen(function* () {
      const ended = yield* Ref.make<Array<string>>([])
      const failing = (at: number) =>
        Stream.concat(
          Stream.fromIterable(Array.from({ length: at }, (_, i) => `c${i}`)),
          Stream.fail(new SourceFailed({ at }))
        )
      const client = yield* TestClient.connect(
        Streamer((m) => failing(Number(m)), ended),
        noTimers
      )
      // after one chunk nothing was sent: the error, no close
      yield* client.send("1")
      yield* settle
      expect(client.pending).toEqual([])
      expect(client.connection.isOpen).toBe(true)
      yield* client.send("3")
      yield* settle
      const frames = yield* readFrames(client, 3)
      expect(fragments(frames)).toEqual(["c0", "c1", "Close"])
      expect(frames[2]).toEqual({ _tag: "Close", code: 1011, reason: "message stream failed" })
      expect(yield* Ref.get(ended)).toEqual([
        `failed: ${JSON.stringify([new SourceFailed({ at: 1 })])}`,
        `failed: ${JSON.stringify([new SourceFailed({ at: 3 })])}`
      ])
    })
  )

  it.effect(
    "each chunk waits while more than highWaterMark bytes are unread: the stream is pulled as the peer reads",
    () =>
      Effect.gen(function* () {
        const ended = yield* Ref.make<Array<string>>([])
        const pulled = yield* Ref.make(0)
        const chunk = new Uint8Array(8 * 1024)
        const source = Stream.fromIterable(Array.from({ length: 100 }, () => chunk)).pipe(
          Stream.rechunk(1),
          Stream.tap(() => Ref.update(pulled, (n) => n + 1))
        )
        const client = yield* TestClient.connect(
          Streamer(() => source, ended),
          { ...noTimers, highWaterMark: 16 * 1024 }
        )
        yield* client.send("go")
        yield* settle
        // one chunk held back, fragments until the buffer passes 16 KiB: a handful, not 100
        const before = yield* Ref.get(pulled)
        expect(before).toBeGreaterThanOrEqual(3)
        expect(before).toBeLessThanOrEqual(5)
        expect(client.connection.bufferedAmount).toBeLessThanOrEqual(24 * 1024)
        // the socket drains once the peer has read all it holds: then the stream is pulled again
        const read = client.pending.length
        yield* readFrames(client, read)
        yield* settle
        expect(yield* Ref.get(pulled)).toBeGreaterThan(before)
        const whole = yield* client.next
        // the rest of the message, read whole
        expect(whole._tag === "Binary" && whole.data.byteLength).toBe((100 - read) * 8 * 1024)
        yield* settle
        expect(yield* Ref.get(pulled)).toBe(100)
        expect(yield* Ref.get(ended)).toEqual(["done"])
      })
  )

  it.effect(
    "other writes wait behind the message, in order, and count in bufferedAmount; another stream waits its turn",
    () =>
      Effect.gen(function* () {
        const ended = yield* Ref.make<Array<string>>([])
        const queue = yield* Queue.unbounded<Message.Message>()
        const client = yield* TestClient.connect(
          Behavior.make({
            onMessage: (conn, message) =>
              message === "stream"
                ? Effect.gen(function* () {
                    // a second stream from another fiber, started while the first runs
                    const other = yield* Effect.forkChild(conn.sendStream(Stream.make("x", "y")))
                    yield* conn.sendStream(Stream.fromQueue(queue).pipe(Stream.takeWhile((c) => c !== "END")))
                    yield* Fiber.join(other)
                    yield* Ref.update(ended, (all) => [...all, "done"])
                  })
                : Effect.void
          }),
          noTimers
        )
        yield* client.send("stream")
        yield* settle
        yield* Queue.offer(queue, "a")
        yield* Queue.offer(queue, "b")
        yield* settle
        // a send from outside the actor while the message is open: held
        yield* client.connection.send("held")
        expect(fragments(client.pending)).toEqual(["a"])
        expect(client.connection.bufferedAmount).toBe(1 + 4)
        yield* Queue.offer(queue, "c")
        yield* Queue.offer(queue, "END")
        yield* settle
        const frames = yield* readFrames(client, 6)
        expect(fragments(frames.slice(0, 3))).toEqual(["a", "b", "c!"])
        expect(frames[3]).toEqual({ _tag: "Text", text: "held" })
        expect(fragments(frames.slice(4))).toEqual(["x", "y!"])
        expect(yield* Ref.get(ended)).toEqual(["done"])
      })
  )

  it.effect("hub broadcasts to a streaming subscriber follow the message; other subscribers get them at once", () =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<Message.Message>()
      const Sub = Behavior.make({
        init: (conn) => Hub.subscribe("feed", conn),
        onMessage: (conn) =>
          Effect.orDie(conn.sendStream(Stream.fromQueue(queue).pipe(Stream.takeWhile((c) => c !== "END"))))
      })
      const streaming = yield* TestClient.connect(Sub, noTimers)
      const other = yield* TestClient.connect(Sub, noTimers)
      yield* settle
      yield* streaming.send("go")
      yield* Queue.offer(queue, "part1")
      yield* Queue.offer(queue, "part2")
      yield* settle
      yield* Hub.broadcast("feed", "news")
      expect(yield* other.expectText).toBe("news")
      expect(fragments(streaming.pending)).toEqual(["part1"])
      yield* Queue.offer(queue, "END")
      yield* settle
      expect(yield* streaming.expectText).toBe("part1part2")
      expect(yield* streaming.expectText).toBe("news")
    }).pipe(Effect.provide(Hub.layer().pipe(Layer.provide(Backplane.layerMemory))))
  )

  it.effect("a connection that closes while the stream waits for its next chunk ends the send and runs onClose", () =>
    Effect.gen(function* () {
      const events = yield* Ref.make<Array<string>>([])
      const client = yield* TestClient.connect(
        Behavior.make({
          onMessage: (conn) =>
            conn
              .sendStream(Stream.concat(Stream.make("a", "b"), Stream.never))
              .pipe(Effect.ensuring(Ref.update(events, (all) => [...all, "send ended"]))),
          onClose: () => Ref.update(events, (all) => [...all, "onClose"])
        }),
        noTimers
      )
      yield* client.send("go")
      yield* settle
      expect(fragments(client.pending)).toEqual(["a"])
      yield* client.drop
      yield* client.finished
      expect(yield* Ref.get(events)).toEqual(["send ended", "onClose"])
    })
  )

  it.effect("interrupting a send whose message started closes with 1011", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(
        Behavior.make({
          onMessage: (conn) =>
            conn
              .sendStream(Stream.concat(Stream.make("a", "b"), Stream.never))
              .pipe(Effect.timeoutOrElse({ duration: "1 second", orElse: () => Effect.void }))
        }),
        noTimers
      )
      yield* client.send("go")
      yield* settle
      yield* TestClock.adjust("1 second")
      const frames = yield* readFrames(client, 2)
      expect(fragments(frames)).toEqual(["a", "Close"])
      expect(frames[1]).toMatchObject({ code: 1011 })
    })
  )

  it.effect("typed errors: the stream's own error type and ConnectionError", () =>
    Effect.gen(function* () {
      const failed = yield* Ref.make<ReadonlyArray<string>>([])
      const client = yield* TestClient.connect(
        Behavior.make({
          onMessage: (conn) =>
            conn.sendStream(Stream.make("a", "b").pipe(Stream.concat(Stream.fail(new SourceFailed({ at: 2 }))))).pipe(
              Effect.catchTags({
                SourceFailed: (e: SourceFailed) => Ref.set(failed, [`source at ${e.at}`]),
                ConnectionError: (e: ConnectionError.ConnectionError) => Ref.set(failed, [e.reason._tag])
              })
            )
        }),
        noTimers
      )
      yield* client.send("go")
      yield* settle
      expect(yield* Ref.get(failed)).toEqual(["source at 2"])
    })
  )
})
