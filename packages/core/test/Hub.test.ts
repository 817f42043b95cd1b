import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, type Connection, Hub } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Deferred, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"

const noTimers = { keepalive: false, closeTimeout: false } as const

/** Joins "room" on open; every message is broadcast to the room, the sender excluded unless it starts with "!". */
const Room = Behavior.make({
  init: (conn: Connection.Connection<Hub.Presence | string>) =>
    Hub.join("room", conn, { nick: conn.request.query.get("nick") }),
  onMessage: (conn, message) =>
    typeof message === "string" && message.startsWith("!")
      ? Hub.broadcast("room", message.slice(1))
      : Hub.broadcastFrom("room", conn, message),
  onInfo: (conn, info: Hub.Presence | string) =>
    typeof info === "string" ? conn.send(info) : conn.send(`${info._tag}:${info.member.id}`)
})

/** Subscribes to "feed"; a slow consumer as soon as the test stops reading its frames. */
const Sub = Behavior.make({
  init: (conn) => Hub.subscribe("feed", conn)
})

const HubLive = (options?: Hub.Options) => Hub.layer(options).pipe(Layer.provide(Backplane.layerMemory))

const as = (nick: string) => ({ ...noTimers, request: { query: new URLSearchParams({ nick }) } })

/** Lets the actors run until `condition` holds (their init joins the room on the next scheduler tick). */
const settle = <R>(condition: Effect.Effect<boolean, never, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (yield* condition) return
      yield* Effect.yieldNow
    }
    throw new Error("did not settle")
  })
const membersAre = (n: number) => Effect.map(Hub.members("room"), (members) => members.length === n)

/** Reads frames until one that is not a presence notice. */
const nextMessage = (client: TestClient.TestClient<Hub.Presence | string>) =>
  Effect.gen(function* () {
    while (true) {
      const text = yield* client.expectText
      if (!text.startsWith("Joined:") && !text.startsWith("Left:")) return text
    }
  })

interface Heard {
  readonly to: string
  readonly event: Hub.Presence
}

/** A connection that only records the presence events it is told, in `log`. */
const Listener = (log: Array<Heard>) =>
  Behavior.make({
    onInfo: (conn: Connection.Connection<Hub.Presence>, event: Hub.Presence) =>
      Effect.sync(() => {
        log.push({ to: conn.id, event })
      })
  })

const heardBy = (log: ReadonlyArray<Heard>, conn: Connection.Connection<never>) =>
  log.filter((heard) => heard.to === conn.id).map((heard) => `${heard.event._tag}:${heard.event.member.id}`)

/**
 * The number of the connection's finalizers. It is private to the actor
 * and read here on purpose: the hub must add one finalizer per connection,
 * not one per subscription. A renamed field reads as 0, failing the tests.
 */
const finalizerCount = (conn: Connection.Connection<never>): number => {
  const finalizers: unknown = Reflect.get(conn, "finalizers")
  const size: unknown = typeof finalizers === "object" && finalizers !== null ? Reflect.get(finalizers, "size") : 0
  return typeof size === "number" ? size : 0
}

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

  it.effect("sendTo reaches one connection by its address, on this node or another; a gone one is skipped", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const hubB = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const Plain = Behavior.make({})
      const onA = yield* TestClient.connect(Plain, noTimers)
      const onB = yield* TestClient.connect(Plain, noTimers)
      const other = yield* TestClient.connect(Plain, noTimers)
      // ids are unique across processes: a serial and the process's tag
      expect(onA.connection.id).toMatch(/^c\d+\.[0-9a-z]{8}$/)
      const addressOfB = hubB.address(onB.connection)
      expect(addressOfB).toBe(`${hubB.node}/${onB.connection.id}`)
      expect(Hub.addressOf({ node: hubB.node, id: onB.connection.id })).toBe(addressOfB)
      // from node A to a connection of node B, through the backplane
      yield* hubA.sendTo(addressOfB, "to b only")
      expect(yield* onB.expectText).toBe("to b only")
      // on its own node, written at once
      yield* hubA.sendTo(hubA.address(onA.connection), "to a")
      expect(yield* onA.expectText).toBe("to a")
      expect(onA.pending).toEqual([])
      expect(other.pending).toEqual([])
      // a connection that is gone, and an address that names nothing: skipped, no error
      yield* onB.close(1000)
      yield* onB.finished
      yield* hubA.sendTo(addressOfB, "too late")
      yield* hubA.sendTo("no-such-address", "nowhere")
      // ids spelled otherwise than the connection's own (a padded serial, another tag, another prefix) name no one
      const [serial, tag] = other.connection.id.slice(1).split(".")
      for (const id of [`c0${serial}.${tag}`, `c${serial}.zzzzzzzz`, `x${serial}.${tag}`, `c${serial}`, `c.${tag}`]) {
        yield* hubA.sendTo(Hub.addressOf({ node: hubA.node, id }), "misspelled")
      }
      yield* Effect.yieldNow
      expect(other.pending).toEqual([])
      yield* hubA.sendTo(Hub.addressOf({ node: hubA.node, id: other.connection.id }), "spelled right")
      expect(yield* other.expectText).toBe("spelled right")
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("sendToUser reaches every connection filed under a user, on every node, until each ends", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const hubB = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      const Plain = Behavior.make({})
      const phone = yield* TestClient.connect(Plain, noTimers)
      const laptop = yield* TestClient.connect(Plain, noTimers)
      const bob = yield* TestClient.connect(Plain, noTimers)
      yield* hubA.identify(phone.connection, "ada")
      yield* hubB.identify(laptop.connection, "ada")
      yield* hubB.identify(bob.connection, "bob")
      // from outside any connection (a timer, an HTTP handler): the accessor on the hub in context
      yield* Hub.sendToUser("ada", "hello ada").pipe(Effect.provideService(Hub.Hub, hubB))
      expect(yield* phone.expectText).toBe("hello ada")
      expect(yield* laptop.expectText).toBe("hello ada")
      expect(bob.pending).toEqual([])
      yield* laptop.close(1000)
      yield* laptop.finished
      yield* hubA.sendToUser("ada", "again")
      expect(yield* phone.expectText).toBe("again")
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("ignores a re-join with equal metadata, and tells the room once when the metadata changes", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const log: Array<Heard> = []
      const members = yield* Effect.all(Array.from({ length: 300 }, () => TestClient.connect(Listener(log), noTimers)))
      for (const [i, member] of members.entries()) yield* hub.join("room", member.connection, { nick: `m${i}` })
      const rejoiner = yield* TestClient.connect(Listener(log), noTimers)
      yield* hub.join("room", rejoiner.connection, { nick: "r" })
      // the k-th member to join is announced to the k before it
      yield* settle(Effect.sync(() => log.length === (300 * 301) / 2))
      log.length = 0
      for (let i = 0; i < 10_000; i++) yield* hub.join("room", rejoiner.connection, { nick: "r" })
      expect(finalizerCount(rejoiner.connection)).toBe(1)
      expect((yield* hub.members("room")).length).toBe(301)
      // new metadata: one Joined for each other member, queued behind anything the re-joins caused
      yield* hub.join("room", rejoiner.connection, { nick: "r2" })
      yield* settle(Effect.sync(() => log.length >= 300))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      expect(log.length).toBe(300)
      expect(new Set(log.map((heard) => heard.to)).size).toBe(300)
      for (const { event } of log) {
        expect(event).toEqual({
          _tag: "Joined",
          topic: "room",
          member: { id: rejoiner.connection.id, node: hub.node, meta: { nick: "r2" } }
        })
      }
      const listed = yield* hub.members("room")
      expect(listed.length).toBe(301)
      expect(listed.at(-1)?.meta).toEqual({ nick: "r2" })
      expect(finalizerCount(rejoiner.connection)).toBe(1)
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect(
    "switches a connection between two rooms for one Left and one Joined per switch, holding one finalizer",
    () =>
      Effect.gen(function* () {
        const hub = yield* Hub.Hub
        const log: Array<Heard> = []
        const roomy = { ...noTimers, mailboxCapacity: 20_000 }
        const inA = yield* Effect.all(Array.from({ length: 3 }, () => TestClient.connect(Listener(log), roomy)))
        const inB = yield* Effect.all(Array.from({ length: 2 }, () => TestClient.connect(Listener(log), roomy)))
        for (const member of inA) yield* hub.join("a", member.connection, { nick: "a" })
        for (const member of inB) yield* hub.join("b", member.connection, { nick: "b" })
        const switcher = yield* TestClient.connect(Listener(log), roomy)
        yield* hub.join("a", switcher.connection, { nick: "s" })
        yield* settle(Effect.sync(() => log.length === 3 + 3 + 1))
        log.length = 0
        for (let i = 0; i < 10_000; i++) {
          const [from, to] = i % 2 === 0 ? ["a", "b"] : ["b", "a"]
          yield* hub.unsubscribe(from, switcher.connection)
          yield* hub.join(to, switcher.connection, { nick: "s" })
        }
        yield* settle(Effect.sync(() => log.length >= 5 * 10_000))
        for (let i = 0; i < 10; i++) yield* Effect.yieldNow
        expect(log.length).toBe(5 * 10_000)
        const id = switcher.connection.id
        for (const member of inA) {
          const heard = heardBy(log, member.connection)
          expect(heard.length).toBe(10_000)
          // each switch away is a Left, each switch back a Joined, alternating
          expect(heard.every((h, i) => h === (i % 2 === 0 ? `Left:${id}` : `Joined:${id}`))).toBe(true)
        }
        for (const member of inB) {
          const heard = heardBy(log, member.connection)
          expect(heard.length).toBe(10_000)
          expect(heard.every((h, i) => h === (i % 2 === 0 ? `Joined:${id}` : `Left:${id}`))).toBe(true)
        }
        expect(heardBy(log, switcher.connection)).toEqual([])
        expect((yield* hub.members("a")).map((m) => m.id)).toEqual([...inA.map((c) => c.connection.id), id])
        expect((yield* hub.members("b")).map((m) => m.id)).toEqual(inB.map((c) => c.connection.id))
        expect([...(yield* hub.topics)].sort()).toEqual(["a", "b"])
        expect(finalizerCount(switcher.connection)).toBe(1)
      }).pipe(Effect.provide(HubLive()))
  )

  it.effect("announces one Left for a member that unsubscribed and then closed, and keeps nothing of it", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const log: Array<Heard> = []
      const stay = yield* TestClient.connect(Listener(log), noTimers)
      const leaver = yield* TestClient.connect(Listener(log), noTimers)
      yield* hub.join("room", stay.connection, { nick: "stay" })
      yield* hub.join("room", leaver.connection, { nick: "leaver" })
      yield* hub.subscribe("feed", leaver.connection)
      yield* hub.unsubscribe("room", leaver.connection)
      yield* hub.unsubscribe("feed", leaver.connection)
      yield* hub.unsubscribe("feed", leaver.connection)
      expect(yield* hub.topics).toEqual(["room"])
      expect(finalizerCount(leaver.connection)).toBe(1)
      yield* leaver.close()
      yield* leaver.finished
      // a later join is queued behind any Left the close could have caused
      const late = yield* TestClient.connect(Listener(log), noTimers)
      yield* hub.join("room", late.connection, { nick: "late" })
      yield* settle(Effect.sync(() => heardBy(log, stay.connection).length >= 3))
      const id = leaver.connection.id
      expect(heardBy(log, stay.connection)).toEqual([`Joined:${id}`, `Left:${id}`, `Joined:${late.connection.id}`])
      for (const client of [stay, late]) {
        yield* client.close()
        yield* client.finished
      }
      expect(yield* hub.topics).toEqual([])
      expect(yield* hub.members("room")).toEqual([])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("holds one finalizer for a connection that subscribes and unsubscribes 100,000 times", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const client = yield* TestClient.connect(Sub, noTimers)
      yield* settle(Effect.map(hub.topics, (topics) => topics.includes("feed")))
      yield* hub.unsubscribe("feed", client.connection)
      for (let i = 0; i < 100_000; i++) {
        yield* hub.subscribe("feed", client.connection)
        yield* hub.unsubscribe("feed", client.connection)
      }
      expect(finalizerCount(client.connection)).toBe(1)
      expect(yield* hub.topics).toEqual([])
      yield* hub.subscribe("feed", client.connection)
      yield* client.close()
      yield* client.finished
      expect(yield* hub.topics).toEqual([])
    }).pipe(Effect.provide(HubLive()))
  )

  it.effect("upgrades a subscriber that joins to a member with one Joined, and keeps a member that subscribes", () =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      const log: Array<Heard> = []
      const peer = yield* TestClient.connect(Listener(log), noTimers)
      const conn = yield* TestClient.connect(Listener(log), noTimers)
      yield* hub.join("room", peer.connection, { nick: "peer" })
      yield* hub.subscribe("room", conn.connection)
      expect((yield* hub.members("room")).length).toBe(1)
      yield* hub.join("room", conn.connection, { nick: "conn" })
      yield* hub.subscribe("room", conn.connection)
      expect((yield* hub.members("room")).map((m) => m.meta)).toEqual([{ nick: "peer" }, { nick: "conn" }])
      yield* hub.unsubscribe("room", conn.connection)
      yield* settle(Effect.sync(() => log.length >= 2))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      const id = conn.connection.id
      expect(heardBy(log, peer.connection)).toEqual([`Joined:${id}`, `Left:${id}`])
      expect(heardBy(log, conn.connection)).toEqual([])
      expect(finalizerCount(conn.connection)).toBe(1)
    }).pipe(Effect.provide(HubLive()))
  )
})

/** A node written by hand on the backplane: it publishes presence signals as a hub would, and records what it hears. */
const ghost = (backplane: Backplane.Backplane["Service"], origin: string) =>
  Effect.gen(function* () {
    const heard: Array<Backplane.Envelope> = []
    yield* backplane.subscribe(Hub.presenceTopic, (envelope) => {
      if (envelope.origin !== origin) heard.push(envelope)
    })
    const say = (version: number, signal: Backplane.PresenceSignal) =>
      backplane.publish({ _tag: "Presence", topic: Hub.presenceTopic, origin, version, signal })
    return { heard, say }
  })

const member = (id: string, node: string, nick: string): Backplane.Member => ({ id, node, meta: { nick } })

/** Two hubs (two nodes) on one backplane; B with its own scope, to stop it. */
const twoHubs = Effect.gen(function* () {
  const scopeB = yield* Scope.make()
  const hubA = yield* Hub.make()
  const hubB = yield* Hub.make().pipe(Scope.provide(scopeB))
  return { hubA, hubB, scopeB }
})

const nicks = (members: ReadonlyArray<Backplane.Member>) =>
  members.map((m) => (m.meta as { readonly nick: string }).nick)

describe("Hub presence across nodes", () => {
  it.effect("lists the members of every node, and a hub started later learns those already there", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make()
      const ada = yield* TestClient.connect(Room, as("ada")).pipe(Effect.provideService(Hub.Hub, hubA))
      yield* settle(Effect.map(hubA.members("room"), (m) => m.length === 1))
      // B starts after ada joined on A: its hello brings A's state
      const hubB = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, backplane))
      yield* settle(Effect.map(hubB.members("room"), (m) => m.length === 1))
      expect(yield* hubB.members("room")).toEqual([{ id: ada.connection.id, node: hubA.node, meta: { nick: "ada" } }])
      const bob = yield* TestClient.connect(Room, as("bob")).pipe(Effect.provideService(Hub.Hub, hubB))
      expect(yield* ada.expectText).toBe(`Joined:${bob.connection.id}`)
      expect(nicks(yield* hubA.members("room"))).toEqual(["ada", "bob"])
      expect(nicks(yield* hubB.members("room"))).toEqual(["bob", "ada"])
      // a topic with no subscriber on a node is listed there too
      expect(yield* hubB.topics).toEqual(["room"])
      yield* bob.close()
      yield* bob.finished
      expect(yield* ada.expectText).toBe(`Left:${bob.connection.id}`)
      expect(nicks(yield* hubA.members("room"))).toEqual(["ada"])
      expect(nicks(yield* hubB.members("room"))).toEqual(["ada"])
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("drops a silent node's members from every list with one Left each, within timeout plus a heartbeat", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make({ presence: { heartbeat: "1 second", timeout: "5 seconds" } })
      const log: Array<Heard> = []
      const local = yield* TestClient.connect(Listener(log), noTimers).pipe(Effect.provideService(Hub.Hub, hubA))
      yield* hubA.join("room", local.connection, { nick: "local" })
      const node = yield* ghost(backplane, "ghost")
      yield* node.say(0, { _tag: "Heartbeat" })
      yield* node.say(1, { _tag: "Joined", topic: "room", member: member("g1", "ghost", "g1") })
      yield* node.say(2, { _tag: "Joined", topic: "room", member: member("g2", "ghost", "g2") })
      yield* settle(Effect.sync(() => log.length === 2))
      expect(nicks(yield* hubA.members("room"))).toEqual(["local", "g1", "g2"])
      const down = yield* Effect.map(Metric.value(Hub.presenceNodesDownTotal), (s) => s.count)
      // the ghost says nothing more: it died
      yield* TestClock.adjust("5 seconds")
      expect(nicks(yield* hubA.members("room"))).toEqual(["local", "g1", "g2"])
      yield* TestClock.adjust("1 second")
      expect(nicks(yield* hubA.members("room"))).toEqual(["local"])
      yield* settle(Effect.sync(() => log.length === 4))
      expect(nicks(yield* hubA.members("room"))).toEqual(["local"])
      expect(heardBy(log, local.connection)).toEqual(["Joined:g1", "Joined:g2", "Left:g1", "Left:g2"])
      expect((yield* Effect.map(Metric.value(Hub.presenceNodesDownTotal), (s) => s.count)) - down).toBe(1)
      yield* TestClock.adjust("30 seconds")
      expect(heardBy(log, local.connection)).toHaveLength(4)
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("keeps a node that keeps beating, and drops the members of a hub that stops at once", () =>
    Effect.gen(function* () {
      const { hubA, hubB, scopeB } = yield* twoHubs
      const log: Array<Heard> = []
      const onA = yield* TestClient.connect(Listener(log), noTimers).pipe(Effect.provideService(Hub.Hub, hubA))
      const onB = yield* TestClient.connect(Listener(log), noTimers).pipe(Effect.provideService(Hub.Hub, hubB))
      yield* hubA.join("room", onA.connection, { nick: "a" })
      yield* hubB.join("room", onB.connection, { nick: "b" })
      yield* TestClock.adjust("1 minute")
      expect(nicks(yield* hubA.members("room"))).toEqual(["a", "b"])
      expect(heardBy(log, onA.connection)).toEqual([`Joined:${onB.connection.id}`])
      yield* Scope.close(scopeB, Exit.void)
      expect(nicks(yield* hubA.members("room"))).toEqual(["a"])
      yield* settle(Effect.sync(() => log.length === 2))
      expect(heardBy(log, onA.connection)).toEqual([`Joined:${onB.connection.id}`, `Left:${onB.connection.id}`])
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("heals a lost change: a gap in a node's versions makes the hub ask for its state, once", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make()
      const log: Array<Heard> = []
      const local = yield* TestClient.connect(Listener(log), noTimers).pipe(Effect.provideService(Hub.Hub, hubA))
      yield* hubA.join("room", local.connection, { nick: "local" })
      const node = yield* ghost(backplane, "ghost")
      yield* node.say(0, { _tag: "Heartbeat" })
      yield* node.say(1, { _tag: "Joined", topic: "room", member: member("g1", "ghost", "g1") })
      // version 2 (g1 left) was lost; version 3 arrives
      yield* node.say(3, { _tag: "Joined", topic: "room", member: member("g2", "ghost", "g2") })
      yield* settle(Effect.sync(() => node.heard.some((e) => e._tag === "Presence" && e.signal._tag === "Sync")))
      const asks = node.heard.filter(
        (e) => e._tag === "Presence" && e.signal._tag === "Sync" && e.signal.to === "ghost"
      )
      expect(asks).toHaveLength(1)
      yield* node.say(3, { _tag: "State", members: [{ topic: "room", member: member("g2", "ghost", "g2") }] })
      expect(nicks(yield* hubA.members("room"))).toEqual(["local", "g2"])
      yield* settle(Effect.sync(() => log.length === 3))
      expect(heardBy(log, local.connection)).toEqual(["Joined:g1", "Joined:g2", "Left:g1"])
      // in step again: heartbeats at its version ask nothing more
      yield* node.say(3, { _tag: "Heartbeat" })
      yield* TestClock.adjust("3 seconds")
      yield* node.say(3, { _tag: "Heartbeat" })
      yield* TestClock.adjust("1 second")
      expect(node.heard.filter((e) => e._tag === "Presence" && e.signal._tag === "Sync")).toHaveLength(1)
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("asks a node whose heartbeat shows changes it never heard, and answers a Sync with its state", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make()
      const local = yield* TestClient.connect(Listener([]), noTimers).pipe(Effect.provideService(Hub.Hub, hubA))
      yield* hubA.join("room", local.connection, { nick: "local" })
      const node = yield* ghost(backplane, "ghost")
      // a node at version 4 that this hub never heard from: its members are unknown
      yield* node.say(4, { _tag: "Heartbeat" })
      yield* node.say(4, { _tag: "Sync" })
      yield* settle(
        Effect.sync(
          () =>
            node.heard.some((e) => e._tag === "Presence" && e.signal._tag === "Sync" && e.signal.to === "ghost") &&
            node.heard.some((e) => e._tag === "Presence" && e.signal._tag === "State")
        )
      )
      const state = node.heard.find((e) => e._tag === "Presence" && e.signal._tag === "State")
      expect(state?._tag === "Presence" && state.signal._tag === "State" && state.signal.members).toEqual([
        { topic: "room", member: { id: local.connection.id, node: hubA.node, meta: { nick: "local" } } }
      ])
      expect(state?._tag === "Presence" && state.version).toBe(1)
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("tells nothing for a state that repeats what the hub already knows", () =>
    Effect.gen(function* () {
      const backplane = yield* Backplane.Backplane
      const hubA = yield* Hub.make()
      const log: Array<Heard> = []
      const local = yield* TestClient.connect(Listener(log), noTimers).pipe(Effect.provideService(Hub.Hub, hubA))
      yield* hubA.join("room", local.connection, { nick: "local" })
      const node = yield* ghost(backplane, "ghost")
      yield* node.say(0, { _tag: "Heartbeat" })
      yield* node.say(1, { _tag: "Joined", topic: "room", member: member("g1", "ghost", "g1") })
      yield* node.say(1, { _tag: "State", members: [{ topic: "room", member: member("g1", "ghost", "g1") }] })
      yield* node.say(2, { _tag: "Joined", topic: "room", member: member("g1", "ghost", "g1") })
      yield* settle(Effect.sync(() => log.length >= 1))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      expect(heardBy(log, local.connection)).toEqual(["Joined:g1"])
    }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect(
    "a join whose topic was released while it was being subscribed still joins (the last member left meanwhile)",
    () =>
      Effect.gen(function* () {
        const memory = yield* Backplane.Backplane
        // the first subscription of "room" waits for the gate, as a Redis SUBSCRIBE waits for its reply
        const gate = yield* Deferred.make<void>()
        let subscriptions = 0
        const slow = Backplane.Backplane.of({
          publish: memory.publish,
          subscribe: (topic, onEnvelope) =>
            Effect.andThen(
              topic === "room" && ++subscriptions === 1 ? Deferred.await(gate) : Effect.void,
              memory.subscribe(topic, onEnvelope)
            )
        })
        const hub = yield* Hub.make().pipe(Effect.provideService(Backplane.Backplane, slow))
        const Hears = Behavior.make<void, Hub.Presence | string>({
          onInfo: (conn, info) => (typeof info === "string" ? conn.send(info) : Effect.void)
        })
        const a = yield* TestClient.connect(Hears, noTimers)
        const b = yield* TestClient.connect(Hears, noTimers)
        const joining = yield* Effect.forkChild(hub.join("room", a.connection, { nick: "a" }))
        yield* settle(Effect.sync(() => subscriptions === 1))
        // b finds the topic being subscribed, joins and leaves it: the topic has no subscriber and is released
        yield* hub.join("room", b.connection, { nick: "b" })
        yield* hub.unsubscribe("room", b.connection)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(joining)
        expect((yield* hub.members("room")).map((m) => m.id)).toEqual([a.connection.id])
        yield* hub.broadcast("room", "heard")
        expect(yield* a.expectText).toBe("heard")
        // and it leaves as any member does
        yield* a.close()
        yield* a.finished
        expect(yield* hub.members("room")).toEqual([])
        expect(yield* hub.topics).toEqual([])
      }).pipe(Effect.provide(Backplane.layerMemory))
  )

  it.effect("dies at build with a clear message when the presence timeout is shorter than the heartbeat", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Hub.make({ presence: { heartbeat: "2 seconds", timeout: "1 second" } }))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("presence.timeout")
    }).pipe(Effect.scoped, Effect.provide(Backplane.layerMemory))
  )
})
