/**
 * `conn.sendStream` over real sockets on 127.0.0.1: 100 MiB streamed to a
 * raw client that hashes the frames as they come (neither side holds the
 * message), with the server's memory sampled meanwhile; a compressed text
 * stream with a broadcast during it; a stream that fails half-way.
 */
import { createHash } from "node:crypto"
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, Hub } from "@switchboard/core"
import { Data, Effect, Layer, Stream } from "effect"
import { upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise, serve, waitUntil } from "./support.ts"

const quiet = { keepalive: false } as const
const MiB = 1024 * 1024

/** Heap and buffers in use after a full collection (vitest runs with --expose-gc). */
const liveBytes = (): number => {
  if (globalThis.gc === undefined) throw new Error("run with --expose-gc (vitest.config.ts)")
  globalThis.gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}
const chunkBytes = 64 * 1024
const chunks = 1600 // 100 MiB

/** Chunk `i` of the big message: made when pulled, so the source holds one at a time. */
const chunkAt = (i: number): Uint8Array => {
  const chunk = new Uint8Array(chunkBytes)
  chunk.fill(i & 0xff)
  chunk[0] = i >> 8
  return chunk
}

interface Read {
  /** Data frames: opcode and fin of each. */
  readonly frames: Array<{ readonly opcode: number; readonly fin: boolean }>
  bytes: number
  readonly hash: ReturnType<typeof createHash>
  readonly socket: Net.Socket
  done: boolean
}

/** A raw client that parses the server's frames as they arrive and keeps nothing but a hash of the payload. */
const rawReader = (port: number, path: string): Promise<Read> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.write(upgradeRequest(path)))
    const read: Read = { frames: [], bytes: 0, hash: createHash("sha256"), done: false, socket }
    let buffer: Buffer = Buffer.alloc(0)
    let upgraded = false
    /** Payload bytes of the current frame still to come. */
    let remaining = 0
    /** Whether the current frame is a data frame (text, binary, continuation). */
    let isData = false
    socket.on("data", (data: Buffer) => {
      buffer = buffer.length === 0 ? data : Buffer.concat([buffer, data])
      if (!upgraded) {
        const end = buffer.indexOf("\r\n\r\n")
        if (end < 0) return
        upgraded = true
        buffer = buffer.subarray(end + 4)
        socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0x67, 0x6f])) // "go", zero mask
        resolve(read)
      }
      while (buffer.length > 0) {
        if (remaining > 0) {
          const take = Math.min(remaining, buffer.length)
          if (isData) {
            read.hash.update(buffer.subarray(0, take))
            read.bytes += take
          }
          remaining -= take
          buffer = buffer.subarray(take)
          continue
        }
        if (buffer.length < 2) return
        let length = buffer[1]! & 0x7f
        let header = 2
        if (length === 126) {
          if (buffer.length < 4) return
          length = buffer.readUInt16BE(2)
          header = 4
        } else if (length === 127) {
          if (buffer.length < 10) return
          length = Number(buffer.readBigUInt64BE(2))
          header = 10
        }
        const fin = (buffer[0]! & 0x80) !== 0
        const opcode = buffer[0]! & 0x0f
        isData = opcode < 8
        if (isData) read.frames.push({ opcode, fin })
        if (isData && fin) read.done = true
        remaining = length
        buffer = buffer.subarray(header)
      }
    })
    socket.on("error", reject)
  })

const HubLive = Hub.layer().pipe(Layer.provide(Backplane.layerMemory))

class SourceFailed extends Data.TaggedError("SourceFailed")<{}> {}

describe("NodeServer sendStream (real sockets on 127.0.0.1)", () => {
  it.live(
    "100 MiB leaves as fragments with memory bounded by the high-water mark, never whole",
    () =>
      Effect.gen(function* () {
        let read: Read | undefined
        /** The most bytes the source had made beyond what the client had read, at any pull. */
        let ahead = 0
        let peak = 0
        const Big = Behavior.make({
          onMessage: (conn) =>
            conn.sendStream(
              Stream.fromIterable(Array.from({ length: chunks }, (_, i) => i)).pipe(
                Stream.rechunk(1),
                Stream.map((i) => {
                  ahead = Math.max(ahead, (i + 1) * chunkBytes - (read?.bytes ?? 0))
                  if (i % 100 === 50) peak = Math.max(peak, liveBytes())
                  return chunkAt(i)
                })
              )
            )
        })
        const server = yield* serve({ ...quiet, routes: { "/big": Big } })
        const before = liveBytes()
        read = yield* promise(() => rawReader(server.port, "/big"))
        yield* waitUntil(() => read!.done, 60_000)
        const expected = createHash("sha256")
        for (let i = 0; i < chunks; i++) expected.update(chunkAt(i))
        expect(read.bytes).toBe(chunks * chunkBytes)
        expect(read.hash.digest("hex")).toBe(expected.digest("hex"))
        // one binary frame opens the message, continuations follow, fin only on the last
        expect(read.frames[0]).toEqual({ opcode: 2, fin: false })
        expect(read.frames.slice(1).every((f) => f.opcode === 0)).toBe(true)
        expect(read.frames.filter((f) => f.fin).length).toBe(1)
        expect(read.frames.at(-1)!.fin).toBe(true)
        expect(read.frames.length).toBe(chunks)
        read.socket.destroy()
        // the source runs at most the route's 1 MiB buffer plus what the kernel's socket buffers hold ahead of the reader
        expect(ahead / MiB).toBeLessThan(16)
        // what the process holds after a collection, sampled 16 times on the way: a message held whole would add 100 MiB
        expect((peak - before) / MiB).toBeLessThan(24)
      }),
    90_000
  )

  it.live("a compressed text stream arrives whole, and a broadcast sent during it arrives after it", () =>
    Effect.gen(function* () {
      let streaming = false
      let release: (() => void) | undefined
      const gate = Effect.callback<void>((resume) => {
        release = () => resume(Effect.void)
      })
      const part = (i: number) => `${JSON.stringify({ i, text: "lorem ipsum ".repeat(500) })}\n`
      const Feed = Behavior.make({
        init: (conn) => Hub.subscribe("feed", conn),
        onMessage: (conn) =>
          Effect.orDie(
            conn.sendStream(
              Stream.concat(
                Stream.fromIterable([0, 1, 2]).pipe(Stream.map(part)),
                Stream.fromEffect(
                  Effect.andThen(
                    Effect.sync(() => (streaming = true)),
                    gate
                  )
                ).pipe(Stream.flatMap(() => Stream.fromIterable([3, 4, 5]).pipe(Stream.map(part))))
              )
            )
          )
      })
      const server = yield* serve({
        ...quiet,
        compression: true,
        routes: { "/feed": Feed }
      })
      const client = yield* connect(server.port, "/feed", { perMessageDeflate: true })
      expect(client.ws.extensions).toContain("permessage-deflate")
      yield* waitUntil(() => server.connections() === 1)
      client.ws.send("go")
      yield* waitUntil(() => streaming)
      // the stream is open on the wire: the broadcast must wait for its end
      yield* Hub.broadcast("feed", "news")
      release!()
      expect(yield* promise(client.next)).toBe([0, 1, 2, 3, 4, 5].map(part).join(""))
      expect(yield* promise(client.next)).toBe("news")
      client.ws.close()
    }).pipe(Effect.provide(HubLive))
  )

  it.live("a stream that fails half-way closes with 1011; the client never sees the message", () =>
    Effect.gen(function* () {
      let failure: unknown
      const Failing = Behavior.make({
        onMessage: (conn) =>
          conn
            .sendStream(Stream.concat(Stream.make("part one, ", "part two, "), Stream.fail(new SourceFailed())))
            .pipe(Effect.catchTag("SourceFailed", (error) => Effect.sync(() => (failure = error))))
      })
      const server = yield* serve({ ...quiet, routes: { "/f": Failing } })
      const client = yield* connect(server.port, "/f")
      client.ws.send("go")
      expect(yield* promise(() => client.closed)).toEqual({ code: 1011, reason: "message stream failed" })
      expect(client.received).toEqual([])
      expect(failure).toBeInstanceOf(SourceFailed)
    })
  )
})
