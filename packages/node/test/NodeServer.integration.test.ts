import * as Http from "node:http"
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type CloseReason, type Connection, Handshake, Hub, Route } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { clientFrame, upgradeRequest } from "../../../test-support/wire.ts"
import { connect, promise, rawStatus, rawUpgrade, serve, waitUntil } from "./support.ts"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})
const quiet = { keepalive: false } as const

describe("NodeServer (real sockets on 127.0.0.1)", () => {
  it.live("echoes text as text and binary as binary", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/echo": Echo } })
      const client = yield* connect(server.port, "/echo")
      client.ws.send("héllo")
      client.ws.send(Buffer.from([0, 1, 2, 255]))
      expect(yield* promise(client.next)).toBe("héllo")
      const binary = yield* promise(client.next)
      expect(Buffer.isBuffer(binary) && [...binary]).toEqual([0, 1, 2, 255])
      client.ws.close()
    })
  )

  it.live("keeps order across 10,000 messages into a slow behaviour with a small mailbox, pausing the socket", () =>
    Effect.gen(function* () {
      let handled = 0
      const Slow = Behavior.make({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            // a slow consumer: yield to the event loop every few messages
            if (++handled % 16 === 0) yield* Effect.sleep(1)
            yield* conn.send(message)
          })
      })
      const server = yield* serve({ ...quiet, routes: { "/slow": { behavior: Slow, mailboxCapacity: 8 } } })
      const client = yield* connect(server.port, "/slow")
      const payload = "x".repeat(1000)
      for (let i = 0; i < 10_000; i++) client.ws.send(`${i}:${payload}`)
      yield* waitUntil(() => client.received.length === 10_000, 25_000)
      const order = client.received.map((m) => Number(String(m).split(":")[0]))
      expect(order).toEqual(Array.from({ length: 10_000 }, (_, i) => i))
      expect(server.pausedReads()).toBeGreaterThan(0)
      client.ws.close()
    })
  )

  it.live("suspends a sender whose client stops reading, holding at most about highWaterMark bytes", () =>
    Effect.gen(function* () {
      let sent = 0
      let maxBuffered = 0
      const chunk = Buffer.alloc(64 * 1024, 7)
      const Flood = Behavior.make({
        onMessage: (conn) =>
          Effect.gen(function* () {
            for (let i = 0; i < 400; i++) {
              yield* conn.send(chunk)
              sent++
              maxBuffered = Math.max(maxBuffered, conn.bufferedAmount)
            }
          })
      })
      const highWaterMark = 256 * 1024
      const server = yield* serve({ ...quiet, routes: { "/flood": { behavior: Flood, highWaterMark } } })
      const client = yield* connect(server.port, "/flood")
      client.ws.pause()
      client.ws.send("go")
      yield* Effect.sleep(300)
      // 400 × 64 KiB = 25 MiB would be sent by now if send did not wait for the socket
      expect(sent).toBeLessThan(400)
      expect(maxBuffered).toBeLessThanOrEqual(highWaterMark + chunk.length)
      client.ws.resume()
      yield* waitUntil(() => client.received.length === 400, 20_000)
      expect(sent).toBe(400)
      client.ws.close()
    })
  )

  it.live("closes only the failing connection with 1011", () =>
    Effect.gen(function* () {
      const Fragile = Behavior.make({
        onMessage: (conn, message) => (message === "die" ? Effect.die(new Error("bug")) : conn.send(message))
      })
      const server = yield* serve({ ...quiet, routes: { "/f": Fragile } })
      const a = yield* connect(server.port, "/f")
      const b = yield* connect(server.port, "/f")
      a.ws.send("die")
      expect((yield* promise(() => a.closed)).code).toBe(1011)
      b.ws.send("fine")
      expect(yield* promise(b.next)).toBe("fine")
      expect(server.connections()).toBe(1)
      b.ws.close()
    })
  )

  it.live("closes with 1009 and reports MessageTooLarge for a message over maxMessageBytes", () =>
    Effect.gen(function* () {
      const reasons: Array<CloseReason.CloseReason> = []
      const Tracked = Behavior.make({
        onMessage: (conn, message) => conn.send(message),
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason))
      })
      const server = yield* serve({ ...quiet, maxMessageBytes: 1024, routes: { "/t": Tracked } })
      const client = yield* connect(server.port, "/t")
      client.ws.send("a".repeat(1024))
      expect(yield* promise(client.next)).toHaveLength(1024)
      client.ws.send("a".repeat(1025))
      expect((yield* promise(() => client.closed)).code).toBe(1009)
      yield* waitUntil(() => reasons.length === 1)
      const reason = reasons[0]
      expect(reason?._tag === "Error" && reason.error.reason._tag).toBe("MessageTooLarge")
    })
  )

  it.live("answers 404, 400, 426, 403, 401 and 503 with plain HTTP, and keeps serving", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        routes: { "/echo": Echo },
        allowedOrigins: ["http://good.example"],
        maxConnections: 1,
        authenticate: (request) =>
          request.query.get("token") === "secret"
            ? Effect.succeed({ user: "ada" })
            : Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "bad token" }))
      })
      const origin = { Origin: "http://good.example" }
      expect(yield* rawStatus(server.port, upgradeRequest("/nope?token=secret", origin))).toBe(404)
      expect(
        yield* rawStatus(server.port, upgradeRequest("/echo?token=secret", { Origin: "http://evil.example" }))
      ).toBe(403)
      expect(yield* rawStatus(server.port, upgradeRequest("/echo?token=wrong", origin))).toBe(401)
      const badKey = upgradeRequest("/echo?token=secret", origin).replace("dGhlIHNhbXBsZSBub25jZQ==", "short")
      expect(yield* rawStatus(server.port, badKey)).toBe(400)
      expect(yield* rawStatus(server.port, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")).toBe(426)
      expect(yield* rawStatus(server.port, "NOT HTTP AT ALL\r\n\r\n")).toBe(400)
      const first = yield* connect(server.port, "/echo?token=secret", { origin: "http://good.example" })
      expect(yield* rawStatus(server.port, upgradeRequest("/echo?token=secret", origin))).toBe(503)
      first.ws.send("still serving")
      expect(yield* promise(first.next)).toBe("still serving")
      first.ws.close()
    })
  )

  it.live("gives the behaviour what authenticate attached, and the request", () =>
    Effect.gen(function* () {
      const WhoAmI = Behavior.make({
        init: (conn) =>
          conn.send(JSON.stringify({ auth: conn.auth, path: conn.request.path, q: conn.request.query.get("room") }))
      })
      const server = yield* serve({
        ...quiet,
        routes: { "/me": WhoAmI },
        authenticate: () => Effect.succeed({ user: "ada" })
      })
      const client = yield* connect(server.port, "/me?room=lobby")
      expect(JSON.parse(String(yield* promise(client.next)))).toEqual({
        auth: { user: "ada" },
        path: "/me",
        q: "lobby"
      })
      client.ws.close()
    })
  )

  it.live("a route's own hook (Route.make) types conn.auth and replaces the server's for its path", () =>
    Effect.gen(function* () {
      interface Staff {
        readonly staff: string
      }
      const staffOnly: Handshake.Authenticate<Staff> = (request) => {
        const name = request.query.get("staff")
        return name === null
          ? Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "staff only" }))
          : Effect.succeed({ staff: name })
      }
      const Console = Behavior.make({
        init: (conn: Connection.Connection<never, Staff>) => conn.send(`console for ${conn.auth.staff}`)
      })
      const Lobby = Behavior.make({
        init: (conn: Connection.Connection<never, { readonly user: string }>) =>
          conn.send(`lobby for ${conn.auth.user}`)
      })
      const server = yield* serve({
        ...quiet,
        authenticate: () => Effect.succeed({ user: "guest" }),
        routes: { "/lobby": Lobby, "/console": Route.make({ authenticate: staffOnly, behavior: Console }) }
      })
      const lobby = yield* connect(server.port, "/lobby?staff=ada")
      expect(yield* promise(lobby.next)).toBe("lobby for guest")
      const staff = yield* connect(server.port, "/console?staff=ada")
      expect(yield* promise(staff.next)).toBe("console for ada")
      // the server's hook would admit this one; the route's does not
      expect(yield* rawStatus(server.port, upgradeRequest("/console"))).toBe(401)
      lobby.ws.close()
      staff.ws.close()
    })
  )

  it.live(
    "lists a route's connections (id, address, auth, since when), and the hub reaches one by id from outside",
    () =>
      Effect.gen(function* () {
        const Quiet = Behavior.make({})
        const server = yield* serve({
          ...quiet,
          authenticate: (request) => Effect.succeed({ user: request.query.get("user") ?? "anonymous" }),
          routes: { "/a": Quiet, "/b": Quiet }
        })
        const before = Date.now()
        const ada = yield* connect(server.port, "/a?user=ada")
        const bob = yield* connect(server.port, "/a?user=bob")
        const other = yield* connect(server.port, "/b")
        const listed = server.list("/a")
        expect(listed.map((info) => info.auth)).toEqual([{ user: "ada" }, { user: "bob" }])
        for (const info of listed) {
          expect(info).toMatchObject({ route: "/a", remoteAddress: "127.0.0.1", isOpen: true, protocol: undefined })
          expect(info.id).toMatch(/^c\d+\.[0-9a-z]{8}$/)
          expect(info.connectedAt).toBeGreaterThanOrEqual(before - 1000)
        }
        expect(server.list().map((info) => info.route)).toEqual(["/a", "/a", "/b"])
        // from outside any connection: one of them, by its id
        const hub = yield* Hub.make().pipe(Effect.provide(Backplane.layerMemory))
        const target = listed.find((info) => (info.auth as { user: string }).user === "bob")!
        yield* hub.sendTo(Hub.addressOf({ node: hub.node, id: target.id }), "just for bob")
        expect(yield* promise(bob.next)).toBe("just for bob")
        yield* Effect.sleep("50 millis")
        expect(ada.received).toEqual([])
        expect(other.received).toEqual([])
        for (const client of [ada, bob, other]) client.ws.close()
      })
  )

  it.live("shuts down: closes every client with 1001, stops listening, leaves no connection behind", () =>
    Effect.gen(function* () {
      const reasons: Array<string> = []
      const Tracked = Behavior.make({
        onMessage: (conn, message) => conn.send(message),
        onClose: (_conn, reason) => Effect.sync(() => void reasons.push(reason._tag))
      })
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(NodeServer.layer({ ...quiet, port: 0, routes: { "/t": Tracked } }), scope)
      const server = Context.get(ctx, NodeServer.NodeServer)
      const clients = yield* Effect.all([1, 2, 3].map(() => connect(server.port, "/t")))
      yield* Scope.close(scope, Exit.void)
      for (const client of clients) {
        expect(yield* promise(() => client.closed)).toEqual({ code: 1001, reason: "server shutdown" })
      }
      expect(reasons).toEqual(["Shutdown", "Shutdown", "Shutdown"])
      expect(server.connections()).toBe(0)
      const refused = yield* promise(
        () =>
          new Promise<string>((resolve) => {
            const socket = Net.connect(server.port, "127.0.0.1")
            socket.on("connect", () => resolve("connected"))
            socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"))
          })
      )
      expect(refused).toBe("ECONNREFUSED")
    })
  )

  it.live("runs beforeShutdown while every connection is open: its broadcast arrives before the 1001", () =>
    Effect.gen(function* () {
      const Member = Behavior.make({
        init: (conn) => Effect.andThen(Hub.subscribe("everyone", conn), conn.send("subscribed"))
      })
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(
        NodeServer.layer({
          ...quiet,
          port: 0,
          routes: { "/m": Member },
          beforeShutdown: Hub.broadcast("everyone", "restarting: back in a minute")
        }).pipe(Layer.provide(Hub.layer()), Layer.provide(Backplane.layerMemory)),
        scope
      )
      const server = Context.get(ctx, NodeServer.NodeServer)
      const clients = yield* Effect.all([1, 2].map(() => connect(server.port, "/m")))
      for (const client of clients) expect(yield* promise(client.next)).toBe("subscribed")
      yield* Scope.close(scope, Exit.void)
      for (const client of clients) {
        expect(yield* promise(() => client.closed)).toEqual({ code: 1001, reason: "server shutdown" })
        expect(client.received).toEqual(["subscribed", "restarting: back in a minute"])
      }
    })
  )

  it.live("fails the layer with ListenFailed when the port is taken", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, routes: { "/echo": Echo } })
      const exit = yield* Effect.exit(Layer.build(NodeServer.layer({ port: server.port, routes: { "/echo": Echo } })))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("ListenFailed")
    })
  )

  it.live("fails the layer with InvalidOptions for a bad setting", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Layer.build(NodeServer.layer({ port: 0, mailboxCapacity: 0, routes: { "/echo": Echo } }))
      )
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("mailboxCapacity")
    })
  )
})

describe("NodeServer lifecycle timers (real sockets, short durations)", () => {
  it.live("disconnects a client that never answers pings", () =>
    Effect.gen(function* () {
      const reasons: Array<CloseReason.CloseReason> = []
      const Tracked = Behavior.make({ onClose: (_c, reason) => Effect.sync(() => void reasons.push(reason)) })
      const server = yield* serve({
        keepalive: { pingAfter: "150 millis", closeAfterNoPong: "150 millis" },
        routes: { "/k": Tracked }
      })
      const raw = yield* rawUpgrade(server.port, "/k")
      yield* promise(() => raw.closed)
      // the server pinged (opcode 0x9) before it gave up
      expect(Buffer.concat(raw.data)[0]).toBe(0x89)
      yield* waitUntil(() => reasons.length === 1)
      expect(reasons[0]).toEqual({ _tag: "Timeout", timer: "keepalive" })
    })
  )

  it.live("keeps a client that answers pings (ws answers automatically)", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        keepalive: { pingAfter: "100 millis", closeAfterNoPong: "100 millis" },
        routes: { "/k": Echo }
      })
      const client = yield* connect(server.port, "/k")
      let pings = 0
      client.ws.on("ping", () => pings++)
      yield* Effect.sleep(600)
      expect(pings).toBeGreaterThan(1)
      expect(client.ws.readyState).toBe(client.ws.OPEN)
      client.ws.close()
    })
  )

  it.live("drops a TCP connection that sends only half an upgrade request", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, handshakeTimeout: "200 millis", routes: { "/echo": Echo } })
      const started = Date.now()
      const closedAfter = yield* promise(
        () =>
          new Promise<number>((resolve) => {
            const socket = Net.connect(server.port, "127.0.0.1", () =>
              socket.write("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            )
            socket.on("error", () => {})
            socket.on("close", () => resolve(Date.now() - started))
          })
      )
      expect(closedAfter).toBeGreaterThanOrEqual(150)
      expect(closedAfter).toBeLessThan(5_000)
    })
  )

  it.live("bounds a slow authenticate hook by the handshake timeout", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        handshakeTimeout: "200 millis",
        authenticate: () => Effect.never,
        routes: { "/echo": Echo }
      })
      const closed = yield* promise(
        () =>
          new Promise<boolean>((resolve) => {
            const socket = Net.connect(server.port, "127.0.0.1", () => socket.write(upgradeRequest("/echo")))
            socket.on("error", () => {})
            socket.on("close", () => resolve(true))
            setTimeout(() => resolve(false), 5_000)
          })
      )
      expect(closed).toBe(true)
    })
  )

  it.live("terminates a client that ignores the server's close frame", () =>
    Effect.gen(function* () {
      const Closer = Behavior.make({ init: (conn) => conn.close(4000, "bye") })
      const server = yield* serve({ ...quiet, closeTimeout: "200 millis", routes: { "/c": Closer } })
      const raw = yield* rawUpgrade(server.port, "/c")
      yield* promise(() => raw.closed)
      const frame = Buffer.concat(raw.data)
      expect(frame[0]).toBe(0x88)
      expect(frame.readUInt16BE(2)).toBe(4000)
      yield* waitUntil(() => server.connections() === 0)
    })
  )

  it.live("gives a small binary message its own bytes, not a view that pins the whole socket read", () =>
    Effect.gen(function* () {
      const sizes: Array<{ bytes: number; pinned: number }> = []
      const Record = Behavior.make({
        onMessage: (_conn, message) =>
          Effect.sync(() => {
            if (typeof message !== "string")
              sizes.push({ bytes: message.byteLength, pinned: message.buffer.byteLength })
          })
      })
      const server = yield* serve({ ...quiet, routes: { "/b": Record } })
      const raw = yield* rawUpgrade(server.port, "/b")
      // one write, so one socket read: a 1-byte message, then a 48 KiB one
      raw.socket.write(
        Buffer.concat([clientFrame(0x2, Buffer.from([7])), clientFrame(0x2, Buffer.alloc(48 * 1024, 1))])
      )
      yield* waitUntil(() => sizes.length === 2)
      expect(sizes[0]).toEqual({ bytes: 1, pinned: 1 })
      expect(sizes[1]?.bytes).toBe(48 * 1024)
      raw.socket.destroy()
    })
  )

  it.live("closes an idle connection after idleTimeout", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, idleTimeout: "200 millis", routes: { "/i": Echo } })
      const client = yield* connect(server.port, "/i")
      expect(yield* promise(() => client.closed)).toEqual({ code: 1000, reason: "idle timeout" })
    })
  )
})

describe("NodeServer.layerAttached (a server the user owns)", () => {
  it.live("serves WebSocket routes on an existing http.Server, leaves its other requests alone, and detaches", () =>
    Effect.gen(function* () {
      const http = Http.createServer((req, res) => {
        if (req.url === "/slow") setTimeout(() => res.end("slow http"), 500)
        else res.end("plain http")
      })
      yield* promise(() => new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve)))
      const address = http.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        NodeServer.layerAttached(http, { ...quiet, handshakeTimeout: "100 millis", routes: { "/echo": Echo } }),
        scope
      )
      const client = yield* connect(port, "/echo")
      client.ws.send("attached")
      expect(yield* promise(client.next)).toBe("attached")
      const body = yield* promise(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()))
      expect(body).toBe("plain http")
      // a slow plain HTTP response outlives the handshake timeout: it is not a handshake
      const slow = yield* promise(() => fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text()))
      expect(slow).toBe("slow http")
      yield* Scope.close(scope, Exit.void)
      expect((yield* promise(() => client.closed)).code).toBe(1001)
      // the user's server keeps running; our listeners are gone
      expect(http.listening).toBe(true)
      expect(http.listenerCount("upgrade")).toBe(0)
      yield* promise(
        () =>
          new Promise<void>((resolve) => {
            http.close(() => resolve())
            http.closeAllConnections()
          })
      )
    })
  )
})
