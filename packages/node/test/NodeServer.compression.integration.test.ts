/**
 * permessage-deflate over real sockets on 127.0.0.1: negotiation per route,
 * compressed echo, the decompression bound (1009), and the hub's fan-out to
 * compressed connections, with and without context takeover, interleaved
 * with each connection's own sends.
 */

import type * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, Hub } from "@switchboard/core"
import { Effect, Layer } from "effect"
import type WebSocket from "ws"
import { connect, promise, serve, waitUntil } from "./support.ts"

const quiet = { keepalive: false } as const
/** Bytes the client wrote to its TCP socket so far. */
const wire = (ws: WebSocket) => (ws as unknown as { readonly _socket: Net.Socket })._socket.bytesWritten
const deflate = { perMessageDeflate: { threshold: 0 } } as const

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })

/** A repetitive JSON document of about `bytes` bytes: what compresses well. */
const json = (bytes: number, tag: string) =>
  JSON.stringify(Array.from({ length: Math.ceil(bytes / 60) }, (_, i) => ({ id: i, tag, text: "the quick brown fox" })))

/**
 * Subscribes to "room". "b:…" is acknowledged to the sender (a long, compressed message of its
 * own) and then broadcast to the room: the sender must see the two in that order. Anything else
 * is echoed to the sender alone.
 */
const Room = Behavior.make({
  init: (conn) => Hub.subscribe("room", conn),
  onMessage: (conn, message) =>
    typeof message === "string" && message.startsWith("b:")
      ? Effect.andThen(conn.send(ack(message.slice(2))), Hub.broadcast("room", message.slice(2)))
      : conn.send(message)
})
const ack = (broadcast: string) => json(3_000, `ack of ${broadcast.length}`)
const HubLive = Hub.layer().pipe(Layer.provide(Backplane.layerMemory))

describe("NodeServer permessage-deflate (real sockets on 127.0.0.1)", () => {
  it.live("negotiates it only on a route that turns it on, and echoes compressed", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        routes: { "/plain": Echo, "/z": { behavior: Echo, compression: true } }
      })
      const plain = yield* connect(server.port, "/plain", deflate)
      expect(plain.ws.extensions).toBe("")
      const z = yield* connect(server.port, "/z", deflate)
      expect(z.ws.extensions).toContain("permessage-deflate")
      const document = json(200_000, "echo")
      const before = wire(z.ws)
      z.ws.send(document)
      expect(yield* promise(z.next)).toBe(document)
      // both ways compressed: a fraction of the document crossed the wire
      expect(wire(z.ws) - before).toBeLessThan(document.length / 10)
      plain.ws.close()
      z.ws.close()
    })
  )

  it.live(
    "bounds a message after decompression: a small frame that inflates past maxMessageBytes closes with 1009",
    () =>
      Effect.gen(function* () {
        const server = yield* serve({
          ...quiet,
          routes: { "/z": { behavior: Echo, compression: true, maxMessageBytes: 1024 * 1024 } }
        })
        const client = yield* connect(server.port, "/z", deflate)
        const before = wire(client.ws)
        // 64 MiB of zeros: about 64 KiB on the wire
        client.ws.send(Buffer.alloc(64 * 1024 * 1024))
        const closed = yield* promise(() => client.closed)
        expect(closed.code).toBe(1009)
        expect(wire(client.ws) - before).toBeLessThan(1024 * 1024)
        // the server goes on
        const next = yield* connect(server.port, "/z", deflate)
        next.ws.send("still here")
        expect(yield* promise(next.next)).toBe("still here")
        next.ws.close()
      })
  )

  for (const serverNoContextTakeover of [true, false]) {
    it.live(
      `fans broadcasts out to compressed subscribers, in order with their own sends (serverNoContextTakeover: ${serverNoContextTakeover})`,
      () =>
        Effect.gen(function* () {
          const server = yield* serve({
            ...quiet,
            routes: {
              "/room": { behavior: Room, compression: { serverNoContextTakeover, threshold: 64 } }
            }
          })
          // compressed clients, and one that did not negotiate it: the same frames must suit each
          const clients = yield* Effect.all([
            connect(server.port, "/room", deflate),
            connect(server.port, "/room", deflate),
            connect(server.port, "/room", { perMessageDeflate: false })
          ])
          expect(clients.map((c) => c.ws.extensions !== "")).toEqual([true, true, false])
          yield* waitUntil(() => server.connections() === 3)
          clients[0]!.ws.send("b:probe")
          expect(yield* promise(clients[0]!.next)).toBe(ack("probe"))
          for (const client of clients) expect(yield* promise(client.next)).toBe("probe")
          const expected: Array<Array<string>> = [[], [], []]
          for (let i = 0; i < 40; i++) {
            // short (under the threshold) and long broadcasts, and each client's own compressed echo between
            const broadcast = i % 3 === 0 ? `short ${i}` : json(2_000 + i * 50, `b${i}`)
            // one sender: the order of its broadcasts is defined
            clients[0]!.ws.send(`b:${broadcast}`)
            expected[0]!.push(ack(broadcast))
            for (const list of expected) list.push(broadcast)
            const own = json(1_000 + i, `own${i}`)
            clients[1]!.ws.send(own)
            expected[1]!.push(own)
          }
          const received = yield* Effect.forEach(clients, (client, index) =>
            Effect.forEach(expected[index]!, () => promise(client.next))
          )
          // the sender: each acknowledgement before its broadcast, whatever was compressed when
          expect(received[0]!).toEqual(expected[0]!)
          for (let index = 1; index < 3; index++) {
            // the order of the broadcasts holds for every subscriber; the own echoes hold among themselves
            const broadcasts = received[index]!.filter((m) => typeof m === "string" && !m.includes('"own'))
            expect(broadcasts).toEqual(expected[index]!.filter((m) => !m.includes('"own')))
            const own = received[index]!.filter((m) => typeof m === "string" && m.includes('"own'))
            expect(own).toEqual(expected[index]!.filter((m) => m.includes('"own')))
          }
          for (const client of clients) client.ws.close()
        }).pipe(Effect.provide(HubLive))
    )
  }

  it.live("fails the layer with InvalidOptions naming a bad parameter", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.scoped(
          serve({ ...quiet, routes: { "/z": { behavior: Echo, compression: { serverMaxWindowBits: 8 } } } })
        )
      )
      expect(exit._tag).toBe("Failure")
      expect(String(exit._tag === "Failure" && exit.cause)).toContain(
        "compression.serverMaxWindowBits: must be an integer from 9 to 15, got 8"
      )
    })
  )
})
