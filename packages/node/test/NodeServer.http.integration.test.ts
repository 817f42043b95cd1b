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
import { Effect, Exit, Layer, Scope } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise, serve } from "./support.ts"

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })

/** Everything the server sends on a raw socket after `request`, until it closes or 500 ms pass. */
const rawExchange = (port: number, request: string, waitMs = 500) =>
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
        setTimeout(done, waitMs)
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

  it.live(
    "a request with Expect: 100-continue ends its socket's handshake too: a slow router answer is not cut off",
    () =>
      Effect.gen(function* () {
        const server = Http.createServer()
        const Slow = HttpRouter.add(
          "POST",
          "/upload",
          Effect.as(Effect.sleep("600 millis"), HttpServerResponse.text("stored"))
        )
        yield* Layer.build(
          Layer.mergeAll(
            HttpRouter.serve(Slow, { disableLogger: true }).pipe(
              Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
            ),
            NodeServer.layerAttached(server, {
              keepalive: false,
              handshakeTimeout: "200 millis",
              routes: { "/ws": Echo },
              metrics: { path: "/metrics" }
            })
          )
        )
        const port = (server.address() as Net.AddressInfo).port
        const body = "x".repeat(2048)
        const answer = yield* rawExchange(
          port,
          `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n${body}`,
          1_500
        )
        expect(answer).toMatch(/HTTP\/1\.1 200 OK[\s\S]*stored$/)
        const metrics = yield* rawExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
        expect(metrics).toMatch(/HTTP\/1\.1 200 OK[\s\S]*switchboard_connections_open/)
      })
  )

  it.live(
    "two layers on one server: each gets its routes, an unknown upgrade one 404, and the one that leaves lets go",
    () =>
      Effect.gen(function* () {
        const server = Http.createServer()
        yield* Effect.callback<void>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.void))
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
        const scopeA = yield* Scope.make()
        yield* Layer.buildWithScope(
          NodeServer.layerAttached(server, {
            keepalive: false,
            routes: { "/a": Echo },
            metrics: { path: "/metrics-a" }
          }),
          scopeA
        )
        yield* Layer.build(NodeServer.layerAttached(server, { keepalive: false, routes: { "/b": Echo } }))
        const port = (server.address() as Net.AddressInfo).port
        for (const path of ["/a", "/b"]) {
          const client = yield* connect(port, path)
          client.ws.send(path)
          expect(yield* promise(client.next)).toBe(path)
          client.ws.close()
        }
        expect(yield* rawExchange(port, upgradeRequest("/neither"))).toMatch(/^HTTP\/1\.1 404 /)
        expect(yield* rawExchange(port, "GET /metrics-a HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 200 /)
        yield* Scope.close(scopeA, Exit.void)
        // /a is no one's now: the remaining layer answers 404; its metrics path is gone with it
        expect(yield* rawExchange(port, upgradeRequest("/a"))).toMatch(/^HTTP\/1\.1 404 /)
        expect(yield* rawExchange(port, "GET /metrics-a HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("")
        const b = yield* connect(port, "/b")
        b.ws.send("still b")
        expect(yield* promise(b.next)).toBe("still b")
        b.ws.close()
      })
  )

  it.live("a metrics request pipelined before an upgrade is answered before the 101", () =>
    Effect.gen(function* () {
      const server = yield* serve({ keepalive: false, routes: { "/ws": Echo }, metrics: { path: "/metrics" } })
      const answer = yield* rawExchange(server.port, `GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n${upgradeRequest("/ws")}`)
      const ok = answer.indexOf("HTTP/1.1 200 OK")
      const switching = answer.indexOf("HTTP/1.1 101 ")
      expect(ok).toBe(0)
      expect(switching).toBeGreaterThan(ok)
    })
  )
})
