import { describe, expect, it } from "@effect/vitest"
import { Behavior, type Connection, ServerOptions, type StreamedMessage } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Cause, Effect, Exit, Logger, Stream } from "effect"

const noTimers = { keepalive: false, closeTimeout: false } as const
const settle = Effect.gen(function* () {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

/** What a behaviour saw of each streamed message: its kind, its pieces and how its stream ended. */
interface Seen {
  readonly tag: StreamedMessage.StreamedMessage["_tag"]
  readonly pieces: Array<string>
  end: string
}

const show = (chunk: string | Uint8Array) => (typeof chunk === "string" ? chunk : `[${chunk.join(",")}]`)

/** Reads every message to its end, recording each piece as it comes and replying with the count of pieces. */
const Recorder = (seen: Array<Seen>) =>
  Behavior.make({
    onStream: (conn: Connection.Connection<never>, message) =>
      Effect.gen(function* () {
        const entry: Seen = { tag: message._tag, pieces: [], end: "open" }
        seen.push(entry)
        const chunks: Stream.Stream<string | Uint8Array, unknown> = message.chunks
        const exit = yield* Effect.exit(
          Stream.runForEach(chunks, (chunk) => Effect.sync(() => void entry.pieces.push(show(chunk))))
        )
        entry.end = Exit.isSuccess(exit) ? "done" : `failed: ${Cause.squash(exit.cause)}`
        if (Exit.isSuccess(exit)) yield* conn.send(`${message._tag} ${entry.pieces.length}`)
      })
  })

describe("onStream: messages received as streams", () => {
  it.effect("a whole message is a one-piece stream; an empty one an empty stream of its kind", () =>
    Effect.gen(function* () {
      const seen: Array<Seen> = []
      const client = yield* TestClient.connect(Recorder(seen), noTimers)
      yield* client.send("hello")
      yield* client.send(new Uint8Array([1, 2, 3]))
      yield* client.send("")
      yield* client.send(new Uint8Array(0))
      expect(yield* client.expectText).toBe("Text 1")
      expect(yield* client.expectText).toBe("Binary 1")
      expect(yield* client.expectText).toBe("Text 0")
      expect(yield* client.expectText).toBe("Binary 0")
      expect(seen.map((s) => [s.tag, s.pieces, s.end])).toEqual([
        ["Text", ["hello"], "done"],
        ["Binary", ["[1,2,3]"], "done"],
        ["Text", [], "done"],
        ["Binary", [], "done"]
      ])
    })
  )

  it.effect("yields each fragment as it arrives, before the message ends", () =>
    Effect.gen(function* () {
      const seen: Array<Seen> = []
      const client = yield* TestClient.connect(Recorder(seen), noTimers)
      yield* client.sendFragment("ab", false)
      yield* settle
      expect(seen).toHaveLength(1)
      expect(seen[0]!.pieces).toEqual(["ab"])
      expect(seen[0]!.end).toBe("open")
      yield* client.sendFragment("cd", false)
      yield* settle
      expect(seen[0]!.pieces).toEqual(["ab", "cd"])
      yield* client.sendFragment("", false)
      yield* client.sendFragment("ef", true)
      expect(yield* client.expectText).toBe("Text 3")
      expect(seen[0]!.end).toBe("done")
    })
  )

  it.effect("keeps messages apart and in order, and threads the state through", () =>
    Effect.gen(function* () {
      const Joiner = Behavior.make({
        init: () => Effect.succeed(0),
        onStream: (conn: Connection.Connection<never>, message, count: number) =>
          Effect.gen(function* () {
            const parts =
              message._tag === "Text"
                ? yield* Stream.runCollect(message.chunks)
                : (yield* Stream.runCollect(message.chunks)).map(show)
            yield* conn.send(`${count + 1}: ${parts.join("")}`)
            return count + 1
          })
      })
      const client = yield* TestClient.connect(Joiner, noTimers)
      yield* client.sendFragment("a", false)
      yield* client.sendFragment("b", true)
      yield* client.sendFragment(new Uint8Array([7]), false)
      yield* client.sendFragment(new Uint8Array([8]), true)
      yield* client.send("c")
      expect(yield* client.expectText).toBe("1: ab")
      expect(yield* client.expectText).toBe("2: [7][8]")
      expect(yield* client.expectText).toBe("3: c")
    })
  )

  it.effect("stops reading while more than highWaterMark bytes of pieces wait, and reads again as they are taken", () =>
    Effect.gen(function* () {
      const taken: Array<number> = []
      let release: (() => void) | undefined
      // takes one piece, then waits to be released before each next one
      const Slow = Behavior.make({
        onStream: (_conn: Connection.Connection<never>, message) =>
          message._tag === "Text"
            ? Effect.void
            : Stream.runForEach(message.chunks, (chunk) =>
                Effect.andThen(
                  Effect.sync(() => void taken.push(chunk.byteLength)),
                  Effect.callback<void>((resume) => {
                    release = () => resume(Effect.void)
                  })
                )
              )
      })
      const client = yield* TestClient.connect(Slow, { ...noTimers, highWaterMark: 16 * 1024 })
      const piece = new Uint8Array(8 * 1024)
      yield* client.sendFragment(piece, false)
      yield* settle
      expect(taken).toEqual([8192]) // the first piece is in the behaviour's hands
      yield* client.sendFragment(piece, false)
      yield* client.sendFragment(piece, false)
      expect(client.paused).toBe(false) // 16 KiB wait: not more than the mark
      yield* client.sendFragment(piece, false)
      expect(client.paused).toBe(true) // 24 KiB wait
      // what the client sends now is held back, as TCP would
      yield* client.sendFragment(piece, true)
      yield* settle
      expect(taken).toEqual([8192])
      release!()
      yield* settle
      // one pull took the three waiting pieces (their bytes are no longer counted): reading resumes and the last arrives
      expect(client.paused).toBe(false)
      expect(taken).toEqual([8192, 8192])
      for (let i = 0; i < 3; i++) {
        release!()
        yield* settle
      }
      expect(taken).toEqual([8192, 8192, 8192, 8192, 8192])
      release!()
    })
  )

  it.effect(
    "pieces taken as they arrive by a waiting reader never count: a message far over the mark is read without a pause",
    () =>
      Effect.gen(function* () {
        const seen: Array<Seen> = []
        const client = yield* TestClient.connect(Recorder(seen), { ...noTimers, highWaterMark: 16 * 1024 })
        const piece = new Uint8Array(8 * 1024)
        for (let i = 0; i < 20; i++) {
          yield* client.sendFragment(piece, i === 19)
          // the reader is waiting again before the next piece comes
          yield* settle
          expect(client.paused).toBe(false)
        }
        expect(yield* client.expectText).toBe("Binary 20")
        expect(seen[0]!.end).toBe("done")
      })
  )

  it.effect("a full mailbox stops reading on a streaming route too", () =>
    Effect.gen(function* () {
      const waiting: Array<() => void> = []
      const Stuck = Behavior.make({
        onStream: () =>
          Effect.callback<void>((resume) => {
            waiting.push(() => resume(Effect.void))
          })
      })
      const client = yield* TestClient.connect(Stuck, { ...noTimers, mailboxCapacity: 4 })
      for (let i = 0; i < 20; i++) yield* client.send(new Uint8Array(0))
      yield* settle
      // one message in the behaviour's hands, then the mailbox filled: the rest wait in TCP
      expect(client.paused).toBe(true)
      while (waiting.length > 0) {
        waiting.shift()!()
        yield* settle
      }
    })
  )

  it.effect("a streamed reply of a one-piece message waits for the buffer to drain, as send does", () =>
    Effect.gen(function* () {
      const Echo = Behavior.make({
        onStream: (conn: Connection.Connection<never>, message) =>
          conn.sendStream(message.chunks, { binary: message._tag === "Binary" })
      })
      const client = yield* TestClient.connect(Echo, { ...noTimers, highWaterMark: 16 * 1024 })
      yield* client.send(new Uint8Array(40 * 1024))
      yield* client.send(new Uint8Array(40 * 1024))
      yield* settle
      // the first reply is above the mark and unread: the second message waits behind it
      expect(client.pending).toHaveLength(1)
      yield* client.expectBinary
      yield* settle
      expect(client.pending).toHaveLength(1)
      yield* client.expectBinary
    })
  )

  it.effect(
    "a message cut off by the connection's end is not the behaviour's crash: no error log, the reason stays",
    () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
          logs.push(`${logLevel} ${String(message)}`)
        })
        const reasons: Array<string> = []
        const Reader = Behavior.make({
          onStream: (_conn: Connection.Connection<never>, message) =>
            Stream.runDrain(message.chunks as Stream.Stream<string | Uint8Array, unknown>),
          onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason._tag))
        })
        const client = yield* TestClient.connect(Reader, noTimers).pipe(
          Effect.provide(Logger.layer([logger], { mergeWithExisting: false }))
        )
        yield* client.sendFragment(new Uint8Array([1]), false)
        yield* settle
        yield* client.drop
        yield* client.finished
        expect(reasons).toEqual(["Lost"])
        expect(logs.filter((line) => line.startsWith("Error"))).toEqual([])
      })
  )

  it.effect("discards what the behaviour did not read; the next message follows and reading resumes", () =>
    Effect.gen(function* () {
      const FirstPiece = Behavior.make({
        onStream: (conn: Connection.Connection<never>, message) =>
          message._tag === "Text"
            ? Stream.runHead(message.chunks).pipe(
                Effect.flatMap((first) => conn.send(`first: ${first._tag === "Some" ? first.value : ""}`))
              )
            : conn.send("binary")
      })
      const client = yield* TestClient.connect(FirstPiece, { ...noTimers, highWaterMark: 16 * 1024 })
      yield* client.sendFragment("x".repeat(20 * 1024), false)
      expect(yield* client.expectText).toBe(`first: ${"x".repeat(20 * 1024)}`)
      // the rest of the message is read and dropped, however much of it comes
      for (let i = 0; i < 10; i++) yield* client.sendFragment("y".repeat(20 * 1024), false)
      yield* client.sendFragment("z", true)
      yield* settle
      expect(client.paused).toBe(false)
      yield* client.send("next")
      expect(yield* client.expectText).toBe("first: next")
    })
  )

  it.effect("a connection that closes mid-message fails the stream with Incomplete", () =>
    Effect.gen(function* () {
      const seen: Array<Seen> = []
      const client = yield* TestClient.connect(Recorder(seen), noTimers)
      yield* client.sendFragment("part", false)
      yield* settle
      yield* client.drop
      yield* settle
      expect(seen[0]!.pieces).toEqual(["part"])
      expect(seen[0]!.end).toContain("Incomplete")
    })
  )

  it.effect("a behaviour that fails while reading closes with 1011; the rest of the message is dropped", () =>
    Effect.gen(function* () {
      const Failing = Behavior.make({
        onStream: (_conn: Connection.Connection<never>, message) =>
          message._tag === "Text" ? Stream.runForEach(message.chunks, () => Effect.fail("no")) : Effect.void
      })
      const client = yield* TestClient.connect(Failing, noTimers)
      yield* client.sendFragment("a", false)
      yield* client.sendFragment("b", false)
      const close = yield* client.expectClose(1011)
      expect(close.code).toBe(1011)
    })
  )

  it.effect("a behaviour with both onMessage and onStream, or onStream with compression, is refused", () =>
    Effect.gen(function* () {
      const both = Behavior.make({ onMessage: () => Effect.void, onStream: () => Effect.void })
      const refused = yield* Effect.exit(TestClient.connect(both, noTimers))
      expect(Exit.isFailure(refused) && String(Cause.squash(refused.cause))).toContain("both onMessage and onStream")
      const streaming = Behavior.make({ onStream: () => Effect.void })
      const compressed = yield* Effect.exit(TestClient.connect(streaming, { ...noTimers, compression: true }))
      expect(Exit.isFailure(compressed) && String(Cause.squash(compressed.cause))).toContain("compression")
    })
  )

  it.effect("maxMessageBytes of a streaming route defaults to 64 MiB", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Behavior.make({ onStream: () => Effect.void }), noTimers)
      expect(client.connection.isOpen).toBe(true)
      const route = ServerOptions.route(Behavior.make({ onStream: () => Effect.void }), {})
      expect(route.settings.receive).toBe("stream")
      expect(route.settings.maxMessageBytes).toBe(64 * 1024 * 1024)
      expect(ServerOptions.route(Behavior.make({}), {}).settings.maxMessageBytes).toBe(1024 * 1024)
    })
  )
})
