/**
 * Subprotocol negotiation over real sockets on 127.0.0.1: what the 101
 * answers, what `conn.protocol` says, and the refusals.
 */
import { describe, expect, it } from "@effect/vitest"
import { Admission, Behavior } from "@switchboard/core"
import { Effect, Metric } from "effect"
import WebSocket from "ws"
import { upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise, rawHead, serve } from "./support.ts"

// answers every message with the subprotocol its connection speaks
const Which = Behavior.make({
  onMessage: (conn) => conn.send(conn.protocol ?? "(none)")
})
const quiet = { keepalive: false } as const

const offer = (path: string, protocols: string) => upgradeRequest(path, { "Sec-WebSocket-Protocol": protocols })

const rejected = (reason: string) =>
  Metric.value(Metric.withAttributes(Admission.upgradesRejectedTotal, { reason })).pipe(Effect.map((s) => s.count))

describe("NodeServer subprotocols (real sockets on 127.0.0.1)", () => {
  it.live("accepts no subprotocol on a route that speaks none, whatever the client offers", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/plain": Which } })
      const head = yield* rawHead(server.port, offer("/plain", "chat, superchat"))
      expect(head.status).toBe(101)
      // ws's default would have echoed "chat"
      expect(head.headers["sec-websocket-protocol"]).toBeUndefined()
    })
  )

  it.live("chooses by the server's order of preference; a client offering none gets none", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/chat": { behavior: Which, protocols: ["v2", "v1"] } } })
      const head = yield* rawHead(server.port, offer("/chat", "v1, v2"))
      expect(head.status).toBe(101)
      expect(head.headers["sec-websocket-protocol"]).toBe("v2")
      // a client that offers nothing gets no subprotocol: conn.protocol is undefined
      const client = yield* connect(server.port, "/chat")
      client.ws.send("which?")
      expect(yield* promise(client.next)).toBe("(none)")
      client.ws.close()
    })
  )

  it.live("gives a ws client the protocol it asked for, when the route speaks it", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/chat": { behavior: Which, protocols: ["v2", "v1"] } } })
      const client = yield* promise(
        () =>
          new Promise<{ protocol: string; first: string }>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${server.port}/chat`, ["v1", "v0"])
            ws.once("open", () => ws.send("which?"))
            ws.once("message", (data) => {
              resolve({ protocol: ws.protocol, first: data.toString() })
              ws.close()
            })
            ws.once("error", reject)
          })
      )
      expect(client).toEqual({ protocol: "v1", first: "v1" })
    })
  )

  it.live("refuses with 400 when the route requires a protocol the client does not offer, before authenticate", () =>
    Effect.gen(function* () {
      let authenticated = 0
      const server = yield* serve({
        ...quiet,
        authenticate: () => Effect.sync(() => void authenticated++),
        routes: { "/chat": { behavior: Which, protocols: ["v2"], requireProtocol: true } }
      })
      const before = yield* rejected("protocol")
      expect((yield* rawHead(server.port, offer("/chat", "v1"))).status).toBe(400)
      expect((yield* rawHead(server.port, upgradeRequest("/chat"))).status).toBe(400)
      expect((yield* rejected("protocol")) - before).toBe(2)
      expect(authenticated).toBe(0)
      expect((yield* rawHead(server.port, offer("/chat", "v1, v2"))).status).toBe(101)
      expect(authenticated).toBe(1)
    })
  )

  it.live("refuses a malformed Sec-WebSocket-Protocol with 400", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/chat": { behavior: Which, protocols: ["v1"] } } })
      for (const bad of ["v1, v1", "v1,,v2", "v1 v2", "v(1)"]) {
        expect((yield* rawHead(server.port, offer("/chat", bad))).status).toBe(400)
      }
    })
  )

  it.live("lets selectProtocol choose from the request, and answers 500 when it fails", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        routes: {
          "/chat": {
            behavior: Which,
            // the newest version the client offers, unless the query pins one
            selectProtocol: (offered, request) => {
              const pinned = request.query.get("v")
              if (pinned === "boom") throw new Error("boom")
              if (pinned === "unoffered") return "v9"
              return pinned !== null ? offered.find((p) => p === `v${pinned}`) : [...offered].sort().at(-1)
            }
          }
        }
      })
      expect((yield* rawHead(server.port, offer("/chat", "v1, v3, v2"))).headers["sec-websocket-protocol"]).toBe("v3")
      expect((yield* rawHead(server.port, offer("/chat?v=2", "v1, v3, v2"))).headers["sec-websocket-protocol"]).toBe(
        "v2"
      )
      const before = yield* rejected("protocol")
      expect((yield* rawHead(server.port, offer("/chat?v=boom", "v1"))).status).toBe(500)
      expect((yield* rawHead(server.port, offer("/chat?v=unoffered", "v1"))).status).toBe(500)
      expect((yield* rejected("protocol")) - before).toBe(2)
    })
  )

  it.live("fails the layer for a bad protocols setting", () =>
    Effect.gen(function* () {
      const bad = [
        { protocols: ["a b"] },
        { protocols: ["v1", "v1"] },
        { protocols: ["v1"], selectProtocol: () => undefined },
        { requireProtocol: true }
      ]
      for (const settings of bad) {
        const exit = yield* Effect.exit(
          Effect.scoped(serve({ ...quiet, routes: { "/x": { behavior: Which, ...settings } } }))
        )
        expect(exit._tag).toBe("Failure")
      }
    })
  )
})
