/**
 * `NodeClient` over real sockets on 127.0.0.1, against Switchboard servers
 * and plain `ws` servers: the behaviour API on an outgoing connection,
 * subprotocols and headers, refused and failed handshakes, wss, compression,
 * keepalive from the same code, hub fan-out through a client (masked), and
 * reconnecting after a server restart.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, Hub } from "@switchboard/core"
import { NodeClient, type NodeClientError, NodeServer } from "@switchboard/node"
import { Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { type WebSocket, WebSocketServer } from "ws"
import { freePort } from "../../../test-support/net.ts"
import { type Certificates, makeCertificatesInMemory } from "../../../test-support/tls.ts"
import { serve, waitUntil } from "./support.ts"

const quiet = { keepalive: false } as const

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })

/** A client behaviour that records what it hears and how often it started. */
const recorder = () => {
  const log = { inits: 0, received: [] as Array<string>, closes: [] as Array<string> }
  const behavior = Behavior.make({
    init: (conn: Connection.Connection<never>) =>
      Effect.suspend(() => {
        log.inits++
        return conn.send(`hello ${log.inits}`)
      }),
    onMessage: (_conn, message) => Effect.sync(() => void log.received.push(String(message))),
    onClose: (_conn, reason) => Effect.sync(() => void log.closes.push(reason._tag))
  })
  return { log, behavior }
}

/** A plain ws server on a free port, for the client's interop. */
const plainServer = (options: ConstructorParameters<typeof WebSocketServer>[0] = {}) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly wss: WebSocketServer; readonly port: number; readonly sockets: Array<WebSocket> }>(
      (resume) => {
        const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, ...options })
        const sockets: Array<WebSocket> = []
        wss.on("connection", (ws) => sockets.push(ws))
        wss.on("listening", () => {
          const address = wss.address()
          resume(
            Effect.succeed({ wss, port: typeof address === "object" && address !== null ? address.port : 0, sockets })
          )
        })
      }
    ),
    ({ wss }) =>
      Effect.callback<void>((resume) => {
        for (const ws of wss.clients) ws.terminate()
        wss.close(() => resume(Effect.void))
      })
  )

const failureOf = (exit: Exit.Exit<unknown, NodeClientError.NodeClientError>) => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error.reason : undefined
}

/** An echo server on `port`, in a scope of its own (closing it stops the server). */
const serveOn = (port: number) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Scope.provide(scope)(
      Layer.build(NodeServer.layer({ ...quiet, port, host: "127.0.0.1", routes: { "/echo": Echo } }))
    )
    return scope
  })

let certificates: Certificates
beforeAll(() => {
  certificates = makeCertificatesInMemory()
})

describe("NodeClient (real sockets on 127.0.0.1)", () => {
  it.live("runs a behaviour on an outgoing connection: init, messages, onClose; close stops it", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/echo": Echo } })
      const { log, behavior } = recorder()
      const client = yield* NodeClient.connect(`ws://127.0.0.1:${server.port}/echo`, behavior, quiet)
      yield* waitUntil(() => log.received.length === 1)
      expect(log.received).toEqual(["hello 1"])
      const conn = yield* client.connected
      yield* conn.send("again")
      yield* waitUntil(() => log.received.length === 2)
      expect(conn.request.path).toBe("/echo")
      expect(conn.remoteAddress).toBe("127.0.0.1")
      expect(client.connections).toBe(1)
      yield* client.close()
      yield* client.done
      expect(log.closes).toEqual(["Local"])
      expect(client.connection).toBeUndefined()
    })
  )

  it.live("offers subprotocols and headers; the server's choice is conn.protocol", () =>
    Effect.gen(function* () {
      const Tell = Behavior.make({
        init: (conn: Connection.Connection<never>) =>
          conn.send(`${conn.protocol} ${String(conn.request.headers["x-token"])}`)
      })
      const server = yield* serve({ ...quiet, routes: { "/p": { behavior: Tell, protocols: ["v2", "v1"] } } })
      const { log, behavior } = recorder()
      const client = yield* NodeClient.connect(`ws://127.0.0.1:${server.port}/p`, behavior, {
        ...quiet,
        protocols: ["v1", "v2"],
        headers: { "X-Token": "secret" }
      })
      yield* waitUntil(() => log.received.length === 1)
      expect(log.received).toEqual(["v2 secret"])
      expect(client.connection?.protocol).toBe("v2")
      expect(client.connection?.request.headers["x-token"]).toBe("secret")
    })
  )

  it.live("fails with ConnectFailed: the HTTP status of a refused upgrade, or the socket's error", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/echo": Echo } })
      const refused = yield* Effect.exit(NodeClient.connect(`ws://127.0.0.1:${server.port}/nowhere`, Echo, quiet))
      expect(failureOf(refused)).toMatchObject({ _tag: "ConnectFailed", status: 404 })
      const port = yield* Effect.promise(() => freePort())
      const nobody = yield* Effect.exit(NodeClient.connect(`ws://127.0.0.1:${port}/`, Echo, quiet))
      expect(failureOf(nobody)).toMatchObject({ _tag: "ConnectFailed", status: undefined })
      expect((failureOf(nobody) as NodeClientError.ConnectFailed).message).toContain("ECONNREFUSED")
      const bad = yield* Effect.exit(NodeClient.connect("http://127.0.0.1/", Echo, quiet))
      expect(failureOf(bad)).toMatchObject({ _tag: "InvalidOptions" })
      const badOption = yield* Effect.exit(NodeClient.connect("ws://127.0.0.1/", Echo, { highWaterMark: 10 }))
      expect(failureOf(badOption)).toMatchObject({ _tag: "InvalidOptions" })
    })
  )

  it.live("a handshake that gets no answer fails after handshakeTimeout", () =>
    Effect.gen(function* () {
      // a TCP server that accepts and never answers the upgrade
      const held: Array<{ destroy(): void }> = []
      const silent = yield* plainServer({ verifyClient: (info, _callback) => void held.push(info.req.socket) })
      // an upgrade socket is half-open after the client leaves: end it, or closing the server waits for it
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const socket of held) socket.destroy()
        })
      )
      const started = Date.now()
      const exit = yield* Effect.exit(
        NodeClient.connect(`ws://127.0.0.1:${silent.port}/`, Echo, { ...quiet, handshakeTimeout: "300 millis" })
      )
      expect(failureOf(exit)).toMatchObject({ _tag: "ConnectFailed" })
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    })
  )

  it.live("speaks wss:// with the caller's certificate authority", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        tls: { key: certificates.key, cert: certificates.cert },
        routes: { "/echo": Echo }
      })
      const { log, behavior } = recorder()
      yield* NodeClient.connect(`wss://localhost:${server.port}/echo`, behavior, {
        ...quiet,
        tls: { ca: certificates.ca }
      })
      yield* waitUntil(() => log.received.length === 1)
      expect(log.received).toEqual(["hello 1"])
      const untrusted = yield* Effect.exit(NodeClient.connect(`wss://localhost:${server.port}/echo`, Echo, quiet))
      expect(failureOf(untrusted)).toMatchObject({ _tag: "ConnectFailed" })
    })
  )

  it.live("negotiates compression with a plain ws server", () =>
    Effect.gen(function* () {
      const plain = yield* plainServer({ perMessageDeflate: true })
      const { log, behavior } = recorder()
      yield* NodeClient.connect(`ws://127.0.0.1:${plain.port}/`, behavior, { ...quiet, compression: true })
      yield* waitUntil(() => plain.sockets.length === 1)
      expect(plain.sockets[0]!.extensions).toContain("permessage-deflate")
      const heard = yield* Effect.callback<string>((resume) => {
        plain.sockets[0]!.once("message", (data) => resume(Effect.succeed(String(data))))
      })
      expect(heard).toBe("hello 1")
      plain.sockets[0]!.send("x".repeat(10_000))
      yield* waitUntil(() => log.received.length === 1)
      expect(log.received[0]).toBe("x".repeat(10_000))
    })
  )

  it.live("keepalive runs on the client as on the server: a peer that never answers pings is dropped", () =>
    Effect.gen(function* () {
      const mute = yield* plainServer({ autoPong: false })
      const { log, behavior } = recorder()
      const client = yield* NodeClient.connect(`ws://127.0.0.1:${mute.port}/`, behavior, {
        keepalive: { pingAfter: "100 millis", closeAfterNoPong: "200 millis" }
      })
      yield* client.done
      expect(log.closes).toEqual(["Timeout"])
    })
  )

  it.live("hub fan-out reaches a server through a client connection (as masked frames)", () =>
    Effect.gen(function* () {
      const plain = yield* plainServer()
      const Sub = Behavior.make({ init: (conn: Connection.Connection<never>) => Hub.subscribe("feed", conn) })
      yield* NodeClient.connect(`ws://127.0.0.1:${plain.port}/`, Sub, quiet)
      yield* waitUntil(() => plain.sockets.length === 1)
      const heard: Array<string> = []
      plain.sockets[0]!.on("message", (data) => heard.push(String(data)))
      // the subscription is made in init, on the actor's first turn
      yield* Effect.sleep("50 millis")
      yield* Hub.broadcast("feed", "news")
      yield* waitUntil(() => heard.length === 1)
      expect(heard).toEqual(["news"])
    }).pipe(Effect.provide(Hub.layer().pipe(Layer.provide(Backplane.layerMemory))))
  )

  it.live("reconnects after a server restart and runs init again; the schedule starts afresh", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const { log, behavior } = recorder()
      let server = yield* serveOn(port)
      const client = yield* NodeClient.connect(`ws://127.0.0.1:${port}/echo`, behavior, {
        ...quiet,
        reconnect: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 20 }))
      })
      yield* waitUntil(() => log.received.length === 1)
      yield* Scope.close(server, Exit.void)
      yield* waitUntil(() => client.connection === undefined)
      expect(log.closes).toEqual(["Peer"])
      // down for a while: attempts fail, the client keeps trying
      yield* Effect.sleep("200 millis")
      server = yield* serveOn(port)
      const conn = yield* client.connected
      expect(conn.isOpen).toBe(true)
      yield* waitUntil(() => log.received.length === 2)
      expect(log.inits).toBe(2)
      expect(log.received).toEqual(["hello 1", "hello 2"])
      expect(client.connections).toBe(2)
      yield* client.close()
      yield* client.done
      yield* Scope.close(server, Exit.void)
    })
  )

  it.live("gives up when the schedule ends: done fails with the last error", () =>
    Effect.gen(function* () {
      const server = yield* Scope.make()
      const up = yield* Scope.provide(server)(serve({ ...quiet, routes: { "/echo": Echo } }))
      const client = yield* NodeClient.connect(`ws://127.0.0.1:${up.port}/echo`, Echo, {
        ...quiet,
        reconnect: Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 3 }))
      })
      yield* Scope.close(server, Exit.void)
      const exit = yield* Effect.exit(client.done)
      expect(failureOf(exit)).toMatchObject({ _tag: "ConnectFailed" })
      expect(failureOf(yield* Effect.exit(client.connected))).toMatchObject({ _tag: "ConnectFailed" })
    })
  )

  it.live("without a server at first, retries the first connection as the schedule says", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const { log, behavior } = recorder()
      const connecting = yield* Effect.forkChild(
        NodeClient.connect(`ws://127.0.0.1:${port}/echo`, behavior, {
          ...quiet,
          reconnect: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 40 }))
        })
      )
      yield* Effect.sleep("150 millis")
      const server = yield* serveOn(port)
      const client = yield* Fiber.join(connecting)
      yield* waitUntil(() => log.received.length === 1, 5_000)
      expect(client.connections).toBe(1)
      expect(log.inits).toBe(1)
      yield* Scope.close(server, Exit.void)
    })
  )
})
