/**
 * Admission under attack, over real sockets on 127.0.0.1: hung
 * `authenticate` hooks, keep-alive sockets that turn slow, the per-IP limit,
 * and the default connection limit.
 */
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Admission, Behavior } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Effect, Exit, Layer, Metric, Scope } from "effect"
import { upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise, rawStatus, serve, waitUntil } from "./support.ts"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})
const quiet = { keepalive: false } as const

/** Opens a TCP connection, writes `request`, and resolves when the server closes it (or after `within` ms: false). */
const closedWithin = (port: number, request: string, within: number) =>
  promise(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = Net.connect(port, "127.0.0.1", () => socket.write(request))
        socket.on("error", () => {})
        socket.resume()
        socket.on("close", () => resolve(true))
        setTimeout(() => {
          socket.destroy()
          resolve(false)
        }, within)
      })
  )

const rejected = (reason: string) =>
  Metric.value(Metric.withAttributes(Admission.upgradesRejectedTotal, { reason })).pipe(Effect.map((s) => s.count))

describe("NodeServer admission (real sockets on 127.0.0.1)", () => {
  it.live("interrupts a hung authenticate hook when its handshake times out, and frees its slot", () =>
    Effect.gen(function* () {
      let started = 0
      let interrupted = 0
      const server = yield* serve({
        ...quiet,
        maxConnections: 2,
        handshakeTimeout: "150 millis",
        authenticate: (request) =>
          request.query.get("hang") === "1"
            ? Effect.sync(() => void started++).pipe(
                Effect.andThen(Effect.never),
                Effect.onInterrupt(() => Effect.sync(() => void interrupted++))
              )
            : Effect.succeed(undefined),
        routes: { "/echo": Echo }
      })
      // two hung hooks take both slots until the handshake timeout drops their sockets
      const hung = yield* Effect.all(
        [1, 2].map(() => closedWithin(server.port, upgradeRequest("/echo?hang=1"), 5_000)),
        { concurrency: "unbounded" }
      )
      expect(hung).toEqual([true, true])
      expect(started).toBe(2)
      yield* waitUntil(() => interrupted === 2)
      const client = yield* connect(server.port, "/echo")
      client.ws.send("a slot is free")
      expect(yield* promise(client.next)).toBe("a slot is free")
      client.ws.close()
    })
  )

  it.live("interrupts the hook when the client goes away before it completes", () =>
    Effect.gen(function* () {
      let interrupted = 0
      const server = yield* serve({
        ...quiet,
        maxConnections: 1,
        handshakeTimeout: false,
        authenticate: (request) =>
          request.query.get("hang") === "1"
            ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted++)))
            : Effect.succeed(undefined),
        routes: { "/echo": Echo }
      })
      const socket = Net.connect(server.port, "127.0.0.1", () => socket.write(upgradeRequest("/echo?hang=1")))
      socket.on("error", () => {})
      yield* Effect.sleep("100 millis")
      socket.destroy()
      yield* waitUntil(() => interrupted === 1)
      const client = yield* connect(server.port, "/echo")
      client.ws.close()
    })
  )

  it.live("bounds an upgrade request that follows a plain HTTP request on a keep-alive socket", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        handshakeTimeout: "200 millis",
        onRequest: (_req, res) => res.end("ok"),
        routes: { "/echo": Echo }
      })
      const closed = yield* promise(
        () =>
          new Promise<{ answered: boolean; closedAfter: number }>((resolve) => {
            const socket = Net.connect(server.port, "127.0.0.1", () =>
              socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
            )
            let answered = false
            let since = 0
            socket.on("error", () => {})
            socket.on("data", (chunk: Buffer) => {
              if (answered || !chunk.toString("latin1").startsWith("HTTP/1.1 200")) return
              answered = true
              since = Date.now()
              // then the first half of an upgrade request, and nothing more
              socket.write(upgradeRequest("/echo").slice(0, 40))
            })
            socket.on("close", () => resolve({ answered, closedAfter: Date.now() - since }))
            setTimeout(() => socket.destroy(), 5_000)
          })
      )
      expect(closed.answered).toBe(true)
      // dropped by the handshake timeout (200 ms, swept every 25 ms), not by Node's 60 s header timeout
      expect(closed.closedAfter).toBeLessThan(2_000)
    })
  )

  it.live("closes the keep-alive socket after answering 426 on a server it owns", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/echo": Echo } })
      const closed = yield* closedWithin(server.port, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 3_000)
      expect(closed).toBe(true)
    })
  )

  it.live("a hook that throws instead of returning an Effect answers 500, is logged, and the server carries on", () =>
    Effect.gen(function* () {
      const before = yield* rejected("auth_error")
      const server = yield* serve({
        ...quiet,
        routes: { "/echo": Echo },
        authenticate: (request) => {
          const parsed = JSON.parse(request.query.get("t") ?? "") as { readonly user: string }
          return Effect.succeed(parsed)
        }
      })
      expect(yield* rawStatus(server.port, upgradeRequest("/echo?t=not-json"))).toBe(500)
      expect((yield* rejected("auth_error")) - before).toBe(1)
      const client = yield* connect(server.port, `/echo?t=${encodeURIComponent(JSON.stringify({ user: "ada" }))}`)
      client.ws.send("still serving")
      expect(yield* promise(client.next)).toBe("still serving")
      client.ws.close()
    })
  )

  it.live("counts no handshake timeout for upgrades that were answered at once", () =>
    Effect.gen(function* () {
      const before = yield* rejected("handshake_timeout")
      const server = yield* serve({ ...quiet, handshakeTimeout: "200 millis", routes: { "/echo": Echo } })
      for (let i = 0; i < 20; i++) expect(yield* rawStatus(server.port, upgradeRequest("/nope"))).toBe(404)
      yield* Effect.sleep("1200 millis")
      expect((yield* rejected("handshake_timeout")) - before).toBe(0)
    })
  )

  it.live("bounds beforeShutdown by shutdownTimeout even when the hook cannot be interrupted", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        NodeServer.layer({
          ...quiet,
          port: 0,
          shutdownTimeout: "300 millis",
          routes: { "/echo": Echo },
          beforeShutdown: Effect.uninterruptible(Effect.never)
        }),
        scope
      )
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - started).toBeLessThan(3_000)
    })
  )

  it.live("answers 429 beyond maxConnectionsPerIp, counts it, and frees the slot when a connection closes", () =>
    Effect.gen(function* () {
      const before = yield* rejected("per_ip")
      const server = yield* serve({ ...quiet, maxConnectionsPerIp: 2, routes: { "/echo": Echo } })
      const first = yield* connect(server.port, "/echo")
      const second = yield* connect(server.port, "/echo")
      expect(yield* rawStatus(server.port, upgradeRequest("/echo"))).toBe(429)
      expect((yield* rejected("per_ip")) - before).toBe(1)
      first.ws.close()
      yield* promise(() => first.closed)
      yield* waitUntil(() => server.connections() === 1)
      // the slot is released when the TCP socket closes
      const third = yield* Effect.eventually(
        Effect.flatMap(Effect.sleep("10 millis"), () => connect(server.port, "/echo"))
      )
      third.ws.send("in")
      expect(yield* promise(third.next)).toBe("in")
      second.ws.close()
      third.ws.close()
    })
  )

  it.live("releases a per-IP slot taken by an upgrade that ws rejects", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, maxConnectionsPerIp: 1, routes: { "/echo": Echo } })
      const badKey = upgradeRequest("/echo").replace("dGhlIHNhbXBsZSBub25jZQ==", "short")
      for (let i = 0; i < 3; i++) expect(yield* rawStatus(server.port, badKey)).toBe(400)
      const client = yield* Effect.eventually(
        Effect.flatMap(Effect.sleep("10 millis"), () => connect(server.port, "/echo"))
      )
      client.ws.close()
    })
  )

  it.live("rejects bad limits with InvalidOptions", () =>
    Effect.gen(function* () {
      for (const options of [{ maxConnectionsPerIp: 0 }, { maxConnections: -1 }, { maxConnectionsPerIp: 1.5 }]) {
        const exit = yield* Effect.exit(serve({ ...quiet, ...options, routes: { "/echo": Echo } }))
        expect(exit._tag).toBe("Failure")
        expect(String(exit)).toContain("InvalidOptions")
      }
    })
  )
})

describe("NodeServer.defaultMaxConnections", () => {
  it("leaves file descriptors for the rest of the process", () => {
    expect(NodeServer.defaultMaxConnections(20_000)).toBe(18_000)
    expect(NodeServer.defaultMaxConnections(1_024)).toBe(896)
    expect(NodeServer.defaultMaxConnections(100)).toBe(1)
    expect(NodeServer.defaultMaxConnections(undefined)).toBe(NodeServer.fallbackMaxConnections)
  })
})
