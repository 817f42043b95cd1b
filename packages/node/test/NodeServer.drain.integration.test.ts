/**
 * Drain, reading control and pings over real sockets on 127.0.0.1:
 * `awaitDrained` and `onDrain` against a client that stops reading,
 * `pauseReading` pushing back on a client through TCP, and `onPing`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { Deferred, Effect } from "effect"
import { connect, promise, serve, waitUntil } from "./support.ts"

const quiet = { keepalive: false } as const
// more than loopback's socket buffers hold, so a peer that stops reading leaves bytes queued in the sender
const huge = new Uint8Array(32 * 1024 * 1024)
const big = new Uint8Array(8 * 1024 * 1024)

describe("NodeServer drain, reading control and pings (real sockets on 127.0.0.1)", () => {
  it.live("awaitDrained returns only once a stalled client has read everything", () =>
    Effect.gen(function* () {
      let waited = false
      let bufferedWhileWaiting = 0
      const Writer = Behavior.make({
        onMessage: (conn) =>
          Effect.gen(function* () {
            // under this route's high-water mark: send returns at once, with most of it queued
            yield* conn.send(huge)
            waited = true
            bufferedWhileWaiting = conn.bufferedAmount
            yield* conn.awaitDrained
            yield* conn.send(`drained ${conn.bufferedAmount}`)
          })
      })
      const server = yield* serve({ ...quiet, routes: { "/w": { behavior: Writer, highWaterMark: 64 * 1024 * 1024 } } })
      const client = yield* connect(server.port, "/w")
      client.ws.pause()
      client.ws.send("go")
      yield* waitUntil(() => waited)
      expect(bufferedWhileWaiting).toBeGreaterThan(0)
      expect(client.received).toEqual([])
      client.ws.resume()
      expect((yield* promise(client.next)).length).toBe(huge.byteLength)
      expect(yield* promise(client.next)).toBe("drained 0")
      client.ws.close()
    })
  )

  it.live("onDrain runs once the buffer that passed the high-water mark is empty", () =>
    Effect.gen(function* () {
      const Burst = Behavior.make({
        init: () => Effect.succeed(0),
        onMessage: (conn, _message, drains: number) => Effect.as(conn.send(huge), drains),
        onDrain: (conn, drains) => Effect.as(conn.send(`drained ${drains + 1} ${conn.bufferedAmount}`), drains + 1)
      })
      const server = yield* serve({ ...quiet, routes: { "/b": Burst } })
      const client = yield* connect(server.port, "/b")
      client.ws.send("one")
      expect((yield* promise(client.next)).length).toBe(huge.byteLength)
      expect(yield* promise(client.next)).toBe("drained 1 0")
      client.ws.send("two")
      expect((yield* promise(client.next)).length).toBe(huge.byteLength)
      expect(yield* promise(client.next)).toBe("drained 2 0")
      client.ws.close()
    })
  )

  it.live("pauseReading stops reading the client (its own buffer fills) until resumeReading", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const seen: Array<number> = []
      const Pausing = Behavior.make({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            if (message === "pause") {
              yield* conn.pauseReading
              yield* Effect.forkDetach(Effect.andThen(Deferred.await(gate), conn.resumeReading))
              yield* conn.send("paused")
              return
            }
            seen.push(typeof message === "string" ? message.length : message.byteLength)
          })
      })
      const server = yield* serve({
        ...quiet,
        routes: { "/p": { behavior: Pausing, maxMessageBytes: 16 * 1024 * 1024 } }
      })
      const client = yield* connect(server.port, "/p")
      client.ws.send("pause")
      expect(yield* promise(client.next)).toBe("paused")
      for (let i = 0; i < 4; i++) client.ws.send(big)
      // TCP pushes back: the client cannot hand its 32 MiB to the kernel, the server handled none of it
      yield* waitUntil(() => client.ws.bufferedAmount > 0)
      yield* promise(() => new Promise((done) => setTimeout(done, 100)))
      expect(client.ws.bufferedAmount).toBeGreaterThan(0)
      expect(seen).toEqual([])
      yield* Deferred.succeed(gate, undefined)
      yield* waitUntil(() => seen.length === 4, 20_000)
      expect(seen).toEqual([big.byteLength, big.byteLength, big.byteLength, big.byteLength])
      client.ws.close()
    })
  )

  it.live("onPing sees the client's ping payload, and the client gets its pong", () =>
    Effect.gen(function* () {
      const Pinged = Behavior.make({
        onPing: (conn, payload) => conn.send(`ping ${Buffer.from(payload).toString()}`)
      })
      const server = yield* serve({ ...quiet, routes: { "/ping": Pinged } })
      const client = yield* connect(server.port, "/ping")
      const pong = new Promise<string>((done) => client.ws.once("pong", (data: Buffer) => done(data.toString())))
      client.ws.ping("hello")
      expect(yield* promise(client.next)).toBe("ping hello")
      expect(yield* promise(() => pong)).toBe("hello")
      client.ws.close()
    })
  )
})
