/**
 * One port for an Effect HTTP app and Switchboard: an `HttpRouter` served by
 * `NodeHttpServer` on an `http.Server`, and `NodeServer.layerAttached` on
 * the same server. Upgrades to Switchboard's routes and requests for its
 * metrics path are Switchboard's alone; every other request and upgrade is
 * the router's.
 */
import * as Http from "node:http"
import * as Net from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise } from "./support.ts"

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })

/** Everything the server sends on a raw socket after `request`, until it closes or 500 ms pass. */
const rawExchange = (port: number, request: string) =>
  promise(
    () =>
      new Promise<string>((resolve) => {
        let data = ""
        const socket = Net.connect(port, "127.0.0.1", () => socket.write(request))
        socket.on("data", (chunk) => {
          data += chunk.toString("latin1")
        })
        socket.on("error", () => {})
        const done = () => {
          socket.destroy()
          resolve(data)
        }
        socket.on("close", done)
        setTimeout(done, 500)
      })
  )

describe("NodeServer next to an Effect HttpRouter on one port", () => {
  it.live("serves the router's /health and the WebSocket route side by side", () =>
    Effect.gen(function* () {
      const server = Http.createServer()
      const Routes = HttpRouter.add("GET", "/health", HttpServerResponse.text("ok"))
      const HttpLive = HttpRouter.serve(Routes, { disableLogger: true }).pipe(
        Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
      )
      const WsLive = NodeServer.layerAttached(server, {
        keepalive: false,
        routes: { "/ws": Echo },
        metrics: { path: "/metrics" }
      })
      yield* Layer.build(Layer.mergeAll(HttpLive, WsLive))
      const port = (server.address() as Net.AddressInfo).port

      const health = yield* promise(() => fetch(`http://127.0.0.1:${port}/health`))
      expect(health.status).toBe(200)
      expect(yield* promise(() => health.text())).toBe("ok")

      const client = yield* connect(port, "/ws")
      client.ws.send("through the shared port")
      expect(yield* promise(client.next)).toBe("through the shared port")

      // the metrics path is Switchboard's; any other path is the router's
      const metrics = yield* promise(() => fetch(`http://127.0.0.1:${port}/metrics`))
      expect(metrics.status).toBe(200)
      expect(yield* promise(() => metrics.text())).toContain("switchboard_connections_open")
      expect((yield* promise(() => fetch(`http://127.0.0.1:${port}/missing`))).status).toBe(404)

      // an upgrade to no Switchboard route gets one answer, the router's, and nothing else
      const answer = yield* rawExchange(port, upgradeRequest("/not-a-socket"))
      expect(answer).toMatch(/^HTTP\/1\.1 404 /)
      expect(answer.match(/HTTP\/1\.1 /g)).toHaveLength(1)
      client.ws.close()
    })
  )
})
