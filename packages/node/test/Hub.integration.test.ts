import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, Hub } from "@switchboard/core"
import { Effect, Layer } from "effect"
import { connect, promise, serve, waitUntil } from "./support.ts"

/** Everyone on "/room" gets every message, the sender included: the bench contract's /broadcast. */
const Room = Behavior.make({
  init: (conn) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.subscribe("room", conn)
    }),
  onMessage: (_conn, message) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.broadcast("room", message)
    })
})

const HubLive = Hub.layer().pipe(Layer.provide(Backplane.layerMemory))

describe("Hub over real sockets", () => {
  it.live("writes frames a real ws client parses: text and binary, 7-, 16- and 64-bit lengths", () =>
    Effect.gen(function* () {
      const server = yield* serve({ keepalive: false, maxMessageBytes: 1024 * 1024, routes: { "/room": Room } })
      const clients = yield* Effect.all([1, 2, 3].map(() => connect(server.port, "/room")))
      yield* waitUntil(() => server.connections() === 3)
      const big = Buffer.alloc(70_000)
      for (let i = 0; i < big.length; i++) big[i] = i % 251
      const messages: Array<string | Buffer> = ["hi ✓", "x".repeat(300), Buffer.from([0, 255, 1]), big]
      // wait until every client is subscribed: a probe comes back to all three
      clients[0]!.ws.send("probe")
      for (const client of clients) expect(yield* promise(client.next)).toBe("probe")
      for (const message of messages) clients[1]!.ws.send(message)
      for (const client of clients) {
        for (const message of messages) {
          const got = yield* promise(client.next)
          if (typeof message === "string") expect(got).toBe(message)
          else expect(Buffer.isBuffer(got) && Buffer.compare(got, message)).toBe(0)
        }
      }
      for (const client of clients) client.ws.close()
    }).pipe(Effect.provide(HubLive))
  )
})
