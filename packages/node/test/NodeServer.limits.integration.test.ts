/**
 * Per-connection limits over real sockets on 127.0.0.1: the rate limit as a
 * route option of the Node server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { Effect } from "effect"
import { connect, promise, serve } from "./support.ts"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

describe("NodeServer limits (real sockets on 127.0.0.1)", () => {
  it.live("closes a client that floods a rate-limited route with 1008, and spares the others", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        keepalive: false,
        rateLimit: { messagesPerSecond: 100, burstMessages: 10 },
        routes: { "/echo": Echo, "/free": { behavior: Echo, rateLimit: false } }
      })
      const flooder = yield* connect(server.port, "/echo")
      const calm = yield* connect(server.port, "/echo")
      const free = yield* connect(server.port, "/free")
      for (let i = 0; i < 200; i++) {
        flooder.ws.send(`f${i}`)
        free.ws.send(`u${i}`)
      }
      expect(yield* promise(() => flooder.closed)).toEqual({ code: 1008, reason: "rate limit exceeded" })
      // at most the burst was let through (replies to it that were not out before the close frame are not sent)
      expect(flooder.received.length).toBeLessThanOrEqual(10)
      calm.ws.send("hello")
      expect(yield* promise(calm.next)).toBe("hello")
      for (let i = 0; i < 200; i++) expect(yield* promise(free.next)).toBe(`u${i}`)
      calm.ws.close()
      free.ws.close()
    })
  )
})
