/**
 * Messages received as streams (`onStream`) over real sockets on 127.0.0.1:
 * a 1 GiB upload hashed as it arrives with the server's live memory sampled,
 * TCP backpressure while the behaviour does not read, text decoded across
 * fragments (and invalid UTF-8 failing at once), the size limit, a client
 * that drops mid-message, and 100 MiB the other way, from `sendStream` to a
 * `NodeClient` that reads it as a stream.
 */
import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Behavior, type Connection, type StreamedMessage } from "@switchboard/core"
import { NodeClient, NodeServer } from "@switchboard/node"
import { Cause, Effect, Exit, Stream } from "effect"
import type WebSocket from "ws"
import { startNodeProcess } from "../../../test-support/process.ts"
import { clientFrame, closeCodeOf, parseServerFrames } from "../../../test-support/wire.ts"
import { connect, promise, rawUpgrade, serve, waitUntil } from "./support.ts"

const uploader_ = new URL("./fixtures/uploader.ts", import.meta.url).pathname

const quiet = { keepalive: false } as const
const MiB = 1024 * 1024

/** Heap and buffers in use after full collections (vitest runs with --expose-gc). */
const liveBytes = (): number => {
  if (globalThis.gc === undefined) throw new Error("run with --expose-gc (vitest.config.ts)")
  // twice: buffers found dead by the first collection are freed by the second
  globalThis.gc()
  globalThis.gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}

/** Chunk `i` of a big message: a pattern that differs per chunk, so a lost or reordered piece changes the hash. */
const chunkAt = (i: number, bytes: number): Buffer => {
  const chunk = Buffer.alloc(bytes, i & 0xff)
  chunk.writeUInt32BE(i, 0)
  return chunk
}

/** What the server saw of each message: its kind, bytes, hash, how it ended, and memory samples. */
interface Report {
  tag?: string
  bytes: number
  pieces: number
  end?: string
  readonly live: Array<number>
}

/** Hashes each message as it arrives (sampling live memory every `sampleEvery` bytes) and answers `<bytes> <sha256>`. */
const Hasher = (reports: Array<Report>, sampleEvery = Number.POSITIVE_INFINITY) =>
  Behavior.make({
    onStream: (conn: Connection.Connection<never>, message: StreamedMessage.StreamedMessage) =>
      Effect.gen(function* () {
        const report: Report = { tag: message._tag, bytes: 0, pieces: 0, live: [] }
        reports.push(report)
        const hash = createHash("sha256")
        let nextSample = sampleEvery
        const chunks: Stream.Stream<string | Uint8Array, unknown> = message.chunks
        const exit = yield* Effect.exit(
          Stream.runForEach(chunks, (chunk) =>
            Effect.sync(() => {
              report.pieces++
              report.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength
              hash.update(chunk)
              if (report.bytes >= nextSample) {
                nextSample += sampleEvery
                report.live.push(liveBytes())
              }
            })
          )
        )
        report.end = Exit.isSuccess(exit) ? "done" : String(Cause.squash(exit.cause))
        if (Exit.isSuccess(exit)) yield* conn.send(`${report.bytes} ${hash.digest("hex")}`)
      })
  })

/** Sends `count` fragments made by `chunk(i)` as one message, keeping at most `ahead` bytes buffered in the client. */
const sendFragments = (ws: WebSocket, count: number, chunk: (i: number) => Buffer, binary: boolean, ahead = 4 * MiB) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    let i = 0
    const pump = () => {
      while (i < count) {
        if (ws.bufferedAmount > ahead) {
          setTimeout(pump, 1)
          return
        }
        const data = chunk(i)
        hash.update(data)
        i++
        ws.send(data, { fin: i === count, binary }, (error) => error && reject(error))
      }
      resolve(hash.digest("hex"))
    }
    pump()
  })

describe("onStream over real sockets", () => {
  it.live(
    "1 GiB uploaded as one message passes through with the server's live memory bounded",
    () =>
      Effect.gen(function* () {
        const reports: Array<Report> = []
        const server = yield* serve({
          ...quiet,
          maxMessageBytes: 2 * 1024 * MiB,
          routes: { "/upload": Hasher(reports, 64 * MiB) }
        })
        const baseline = liveBytes()
        // the client in its own process: the samples hold only the server
        const count = 1024 // 1 MiB fragments
        const uploader = yield* Effect.acquireRelease(
          promise(() =>
            startNodeProcess(
              uploader_,
              { URL: `ws://127.0.0.1:${server.port}/upload`, COUNT: String(count), CHUNK: String(MiB) },
              { readyWhen: /uploader port (\d+)/, name: "the uploader" }
            )
          ),
          (child) => promise(() => child.stop({ signal: "SIGKILL" }))
        )
        const exit = yield* promise(() => uploader.exited)
        const output = uploader.output()
        expect(exit.code, output).toBe(0)
        const sent = /sent ([0-9a-f]{64})/.exec(output)?.[1]
        expect(output).toContain(`reply ${1024 * MiB} ${sent}`)
        const report = reports[0]!
        expect(report.end).toBe("done")
        // pieces come as socket reads bring them, not as the client's 1 MiB fragments
        expect(report.pieces).toBeGreaterThan(count)
        expect(report.live).toHaveLength(16)
        // the route's high-water mark (1 MiB) and the socket's reads, not the message
        const peak = Math.max(...report.live) - baseline
        expect(peak).toBeLessThan(8 * MiB)
      }),
    120_000
  )

  it.live("stops reading from TCP while the behaviour does not read (the client's buffer fills)", () =>
    Effect.gen(function* () {
      let release: (() => void) | undefined
      const read: Array<number> = []
      const Waiting = Behavior.make({
        onStream: (conn: Connection.Connection<never>, message: StreamedMessage.StreamedMessage) =>
          Effect.gen(function* () {
            yield* Effect.callback<void>((resume) => {
              release = () => resume(Effect.void)
            })
            const chunks: Stream.Stream<string | Uint8Array, unknown> = message.chunks
            yield* Stream.runForEach(chunks, (chunk) => Effect.sync(() => void read.push(chunk.length)))
            yield* conn.send(`${read.reduce((a, b) => a + b, 0)}`)
          }).pipe(Effect.orDie)
      })
      const server = yield* serve({ ...quiet, routes: { "/slow": Waiting } })
      const client = yield* connect(server.port, "/slow")
      // 64 MiB handed to ws at once: without backpressure the server would read it all into memory
      for (let i = 0; i < 64; i++) client.ws.send(chunkAt(i, MiB), { fin: i === 63, binary: true })
      yield* waitUntil(() => release !== undefined)
      yield* Effect.sleep("300 millis")
      // the server read its high-water mark (1 MiB) and the kernel's buffers, then stopped
      expect(client.ws.bufferedAmount).toBeGreaterThan(32 * MiB)
      release!()
      expect(String(yield* promise(client.next))).toBe(String(64 * MiB))
      expect(client.ws.bufferedAmount).toBe(0)
    })
  )

  it.live(
    "decodes text across fragments and socket reads; invalid UTF-8 closes with 1007 before the message ends",
    () =>
      Effect.gen(function* () {
        const reports: Array<Report> = []
        const server = yield* serve({ ...quiet, routes: { "/text": Hasher(reports) } })
        const client = yield* connect(server.port, "/text")
        // 3 MiB of text whose characters are 1 to 4 bytes, cut into fragments at every offset modulo 7
        const text = Buffer.from("aé€😀".repeat(300_000))
        const sent = yield* promise(() =>
          sendFragments(
            client.ws,
            1000,
            (i) => text.subarray(Math.floor((i * text.length) / 1000), Math.floor(((i + 1) * text.length) / 1000)),
            false
          )
        )
        expect(String(yield* promise(client.next))).toBe(`${text.length} ${sent}`)
        expect(reports[0]!.tag).toBe("Text")

        // a bad byte in the second fragment: the connection fails at once, though the message never ends
        client.ws.send("fine", { fin: false })
        client.ws.send(Buffer.from([0x61, 0xff]), { fin: false, binary: false })
        const closed = yield* promise(() => client.closed)
        expect(closed.code).toBe(1007)
        yield* waitUntil(() => reports[1]?.end !== undefined)
        expect(reports[1]!.end).toContain("InvalidPayload")
      })
  )

  it.live("maxMessageBytes bounds the whole message: 1009, and the stream fails with MessageTooLarge", () =>
    Effect.gen(function* () {
      const reports: Array<Report> = []
      const server = yield* serve({ ...quiet, maxMessageBytes: MiB, routes: { "/small": Hasher(reports) } })
      const client = yield* connect(server.port, "/small")
      for (let i = 0; i < 3; i++) client.ws.send(chunkAt(i, 512 * 1024), { fin: i === 2, binary: true })
      const closed = yield* promise(() => client.closed)
      expect(closed.code).toBe(1009)
      yield* waitUntil(() => reports[0]?.end !== undefined)
      expect(reports[0]!.end).toContain("MessageTooLarge")
      // what came within the limit was delivered
      expect(reports[0]!.bytes).toBeGreaterThan(0)
      expect(reports[0]!.bytes).toBeLessThanOrEqual(MiB)
    })
  )

  it.live("a client that drops mid-message fails the stream with Incomplete", () =>
    Effect.gen(function* () {
      const reports: Array<Report> = []
      const server = yield* serve({ ...quiet, routes: { "/drop": Hasher(reports) } })
      const client = yield* connect(server.port, "/drop")
      client.ws.send(chunkAt(0, 1000), { fin: false, binary: true })
      yield* waitUntil(() => (reports[0]?.bytes ?? 0) === 1000)
      client.ws.terminate()
      yield* waitUntil(() => reports[0]?.end !== undefined)
      expect(reports[0]!.end).toContain("Incomplete")
    })
  )

  it.live(
    "a protocol error mid-message: 1002, the stream fails with ProtocolViolation and onClose gets that Error",
    () =>
      Effect.gen(function* () {
        const reasons: Array<string> = []
        const Reader = Behavior.make({
          onStream: (_conn: Connection.Connection<never>, message: StreamedMessage.StreamedMessage) =>
            Stream.runDrain(message.chunks as Stream.Stream<string | Uint8Array, unknown>),
          onClose: (_conn, reason) =>
            Effect.sync(
              () => void reasons.push(reason._tag === "Error" ? `Error ${reason.error.reason._tag}` : reason._tag)
            )
        })
        const server = yield* serve({ ...quiet, routes: { "/cut": Reader } })
        const raw = yield* rawUpgrade(server.port, "/cut")
        const first = clientFrame(0x2, "the start")
        first[0] = 0x02 // no FIN: the message goes on
        raw.socket.write(Buffer.concat([first, clientFrame(0x3, "reserved opcode")]))
        yield* promise(() => raw.closed)
        expect(closeCodeOf(parseServerFrames(Buffer.concat(raw.data)))).toBe(1002)
        yield* waitUntil(() => reasons.length > 0)
        expect(reasons).toEqual(["Error ProtocolViolation"])
      })
  )

  it.live(
    "refuses a streaming route with compression when the layer is built, and declines deflate on one without",
    () =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(serve({ ...quiet, compression: true, routes: { "/up": Hasher([]) } }))
        expect(Exit.isFailure(exit) && String(Cause.squash(exit.cause))).toContain("InvalidOptions")
        const ok = yield* serve({
          ...quiet,
          compression: true,
          routes: { "/up": { behavior: Hasher([]), compression: false } }
        })
        // a client's offer of permessage-deflate is declined there
        const client = yield* connect(ok.port, "/up", { perMessageDeflate: true })
        expect(client.ws.extensions).toBe("")
        client.ws.close()
      })
  )

  it.live(
    "100 MiB from sendStream to a NodeClient that reads it as a stream: neither side holds the message",
    () =>
      Effect.gen(function* () {
        const count = 1600 // 64 KiB chunks
        const Export = Behavior.make({
          onMessage: (conn) =>
            conn.sendStream(Stream.range(0, count - 1, 1).pipe(Stream.map((i) => chunkAt(i, 64 * 1024))))
        })
        const expected = createHash("sha256")
        for (let i = 0; i < count; i++) expected.update(chunkAt(i, 64 * 1024))
        const server = yield* serve({ ...quiet, routes: { "/export": Export } })
        const reports: Array<Report> = []
        const Downloader = Behavior.make({
          init: (conn: Connection.Connection<never>) => conn.send("go"),
          onStream: (conn, message: StreamedMessage.StreamedMessage) =>
            Effect.gen(function* () {
              const report: Report = { tag: message._tag, bytes: 0, pieces: 0, live: [] }
              reports.push(report)
              const hash = createHash("sha256")
              const chunks: Stream.Stream<string | Uint8Array, unknown> = message.chunks
              yield* Stream.runForEach(chunks, (chunk) =>
                Effect.sync(() => {
                  report.pieces++
                  report.bytes += chunk.length
                  hash.update(chunk)
                  if (report.pieces % 400 === 0) report.live.push(liveBytes())
                })
              ).pipe(Effect.orDie)
              report.end = hash.digest("hex")
              yield* conn.close()
            }).pipe(Effect.orDie)
        })
        const baseline = liveBytes()
        const client = yield* NodeClient.connect(`ws://127.0.0.1:${server.port}/export`, Downloader, {
          ...quiet,
          maxMessageBytes: 128 * MiB
        })
        yield* client.done
        const report = reports[0]!
        expect(report.tag).toBe("Binary")
        expect(report.bytes).toBe(100 * MiB)
        expect(report.end).toBe(expected.digest("hex"))
        expect(report.live.length).toBeGreaterThan(2)
        // both ends are in this process: each holds about its high-water mark (1 MiB) and its socket's reads
        expect(Math.max(...report.live) - baseline).toBeLessThan(8 * MiB)
      }),
    60_000
  )
})

// the layer's own error for a bad route, checked without a server
describe("NodeServer options for streaming routes", () => {
  it.effect("a behaviour with both onMessage and onStream fails the layer with InvalidOptions", () =>
    Effect.gen(function* () {
      const both = Behavior.make({ onMessage: () => Effect.void, onStream: () => Effect.void })
      const exit = yield* Effect.exit(Effect.scoped(serve({ ...quiet, routes: { "/both": both } })))
      expect(Exit.isFailure(exit) && String(Cause.squash(exit.cause))).toContain("both onMessage and onStream")
      expect(NodeServer.layer).toBeTypeOf("function")
    })
  )
})
