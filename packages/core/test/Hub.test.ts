import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, Hub } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Effect, Layer, Metric } from "effect"

const noTimers = { keepalive: false, closeTimeout: false } as const

/** Joins "room" on open; every message is broadcast to the room, the sender excluded unless it starts with "!". */
const Room = Behavior.make({
  init: (conn: Connection.Connection<Hub.Presence | string>) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.join("room", conn, { nick: conn.request.query.get("nick") })
    }),
  onMessage: (conn, message) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      if (typeof message === "string" && message.startsWith("!")) yield* hub.broadcast("room", message.slice(1))
      else yield* hub.broadcastFrom("room", conn, message)
    }),
  onInfo: (conn, info: Hub.Presence | string) =>
    typeof info === "string" ? conn.send(info) : conn.send(`${info._tag}:${info.member.id}`)
})

/** Subscribes to "feed"; a slow consumer as soon as the test stops reading its frames. */
const Sub = Behavior.make({
  init: (conn) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.subscribe("feed", conn)
    })
})

const HubLive = (options?: Hub.Options) => Hub.layer(options).pipe(Layer.provide(Backplane.layerMemory))

const as = (nick: string) => ({ ...noTimers, request: { query: new URLSearchParams({ nick }) } })

/** Lets the actors run until `condition` holds (their init joins the room on the next scheduler tick). */
const settle = (condition: Effect.Effect<boolean, never, Hub.Hub>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (yield* condition) return
      yield* Effect.yieldNow
    }
    throw new Error("did not settle")
  })
const membersAre = (n: number) =>
  Effect.gen(function* () {
    const hub = yield* Hub.Hub
    return (yield* hub.members("room")).length === n
  })

/** Reads frames until one that is not a presence notice. */
const nextMessage = (client: TestClient.TestClient<Hub.Presence | string>) =>
  Effect.gen(function* () {
    while (true) {
      const text = yield* client.expectText
      if (!text.startsWith("Joined:") && !text.startsWith("Left:")) return text
    }
  })

describe("Hub", () => {
  it.effect("delivers a broadcast to every subscriber, and broadcastFrom to all but the sender", () =>
    Effect.gen(function* () {
      const [a, b, c] = yield* Effect.all([as("a"), as("b"), as("c")].map((o) => TestClient.connect(Room, o)))
      yield* settle(membersAre(3))
      yield* a!.send("from a")
      expect(yield* nextMessage(b!)).toBe("from a")
      expect(yield* nextMessage(c!)).toBe("from a")
      yield* a!.send("!to all")
      expect(yield* nextMessage(a!)).toBe("to all")
      expect(yield* nextMessage(b!)).toBe("to all")
      expect(yield* nextMessage(c!)).toBe("to all")
      expect(a!.pending.filter((f) => f._tag === "Text" && f.text === "from a")).toEqual([])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("frames a broadcast once and writes the same bytes to every subscriber", () =>
    Effect.gen(function* () {
      const clients = yield* Effect.all(Array.from({ length: 5 }, (_, i) => TestClient.connect(Room, as(`n${i}`))))
      yield* settle(membersAre(5))
      const before = (yield* Metric.value(Hub.framedTotal)).count
      yield* clients[0]!.send("!once")
      for (const client of clients) expect(yield* nextMessage(client)).toBe("once")
      expect((yield* Metric.value(Hub.framedTotal)).count - before).toBe(1)
      const frames = clients.map((client) => client.framed.at(-1))
      for (const frame of frames) expect(frame).toBe(frames[0])
      expect([...frames[0]!.bytes]).toEqual([0x81, 4, ...new TextEncoder().encode("once")])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("keeps one publisher's order at every subscriber", () =>
    Effect.gen(function* () {
      const [publisher, x, y] = yield* Effect.all([as("p"), as("x"), as("y")].map((o) => TestClient.connect(Room, o)))
      yield* settle(membersAre(3))
      for (let i = 0; i < 1000; i++) yield* publisher!.send(`m${i}`)
      for (const client of [x!, y!]) {
        for (let i = 0; i < 1000; i++) expect(yield* nextMessage(client)).toBe(`m${i}`)
      }
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("drops messages for a subscriber that does not read, without holding the others back", () =>
    Effect.gen(function* () {
      const limit = 4 * 1024
      const stuck = yield* TestClient.connect(Sub, noTimers)
      const reader = yield* TestClient.connect(Sub, noTimers)
      const hub = yield* Hub.Hub
      yield* settle(Effect.map(hub.topics, (topics) => topics.includes("feed")))
      const drops = Metric.withAttributes(Hub.slowConsumerTotal, { policy: "drop" })
      const before = (yield* Metric.value(drops)).count
      const payload = "x".repeat(1000)
      for (let i = 0; i < 100; i++) {
        yield* hub.broadcast("feed", `${i}:${payload}`)
        expect(yield* reader.expectText).toBe(`${i}:${payload}`)
      }
      // the stuck subscriber holds at most the limit plus one message
      const held = stuck.pending.length
      expect(held * 1000).toBeLessThanOrEqual(limit + 2 * 1000)
      expect(held).toBeGreaterThan(0)
      expect((yield* Metric.value(drops)).count - before).toBe(100 - held)
      expect(stuck.connection.isOpen).toBe(true)
    }).pipe(Effect.provide(HubLive({ maxBufferedBytes: 4 * 1024 })))
  )

  it.effect("closes a slow consumer with the configured code when the policy is close", () =>
    Effect.gen(function* () {
      const stuck = yield* TestClient.connect(Sub, noTimers)
      const hub = yield* Hub.Hub
      yield* settle(Effect.map(hub.topics, (topics) => topics.includes("feed")))
      for (let i = 0; i < 10; i++) yield* hub.broadcast("feed", "y".repeat(1000))
      expect(stuck.connection.isOpen).toBe(false)
      expect(stuck.pending.at(-1)).toEqual({ _tag: "Close", code: 1013, reason: "slow consumer" })
    }).pipe(Effect.provide(HubLive({ maxBufferedBytes: 2 * 1024, slowConsumer: { close: 1013 } })))
  )

  it.effect("tells present members when others join and leave, and lists members with their metadata", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const ada = yield* TestClient.connect(Room, as("ada"))
      const bob = yield* TestClient.connect(Room, as("bob"))
      expect(yield* ada.expectText).toBe(`Joined:${bob.connection.id}`)
      const members = yield* hub.members("room")
      expect(members.map((m) => m.meta)).toEqual([{ nick: "ada" }, { nick: "bob" }])
      yield* bob.close()
      yield* bob.finished
      expect(yield* ada.expectText).toBe(`Left:${bob.connection.id}`)
      expect((yield* hub.members("room")).map((m) => m.meta)).toEqual([{ nick: "ada" }])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("ends subscriptions with the connection and releases the topic when it empties", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const a = yield* TestClient.connect(Room, as("a"))
      const b = yield* TestClient.connect(Room, as("b"))
      yield* settle(membersAre(2))
      expect(yield* hub.topics).toEqual(["room"])
      yield* a.close()
      yield* a.finished
      expect((yield* hub.members("room")).length).toBe(1)
      yield* b.drop
      yield* b.finished
      expect(yield* hub.topics).toEqual([])
      expect(yield* hub.members("room")).toEqual([])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("carries broadcasts between two hubs on one backplane, excluding only the sender", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const hubB = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const onA = yield* TestClient.connect(Room, as("a")).pipe(Effect.provideService(Hub.Hub, hubA))
      const onB = yield* TestClient.connect(Room, as("b")).pipe(Effect.provideService(Hub.Hub, hubB))
      expect(yield* onA.expectText).toBe(`Joined:${onB.connection.id}`)
      yield* onA.send("across nodes")
      expect(yield* nextMessage(onB)).toBe("across nodes")
      yield* onB.send("!back to all")
      expect(yield* nextMessage(onA)).toBe("back to all")
      expect(yield* nextMessage(onB)).toBe("back to all")
    }).pipe(Effect.provide(Backplane.layerMemory))
  )
})
