/**
 * Several reactors on one port (`NodeReactors`), in a child process with
 * REACTORS=2: both reactor threads accept connections, a broadcast and a
 * presence event cross from one to the other, a reactor that dies is
 * restarted while the other keeps serving, and SIGTERM closes every client
 * with 1001 and ends the process.
 */

import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { NodeReactors } from "@switchboard/node"
import { Effect, Layer } from "effect"
import WebSocket from "ws"
import { startNodeProcess } from "../../../test-support/process.ts"
import { type Client, connect, promise, waitUntil } from "./support.ts"

const fixture = new URL("./fixtures/reactorApp.ts", import.meta.url).pathname

const start = (reactors: number) =>
  Effect.acquireRelease(
    promise(() =>
      startNodeProcess(
        fixture,
        { REACTORS: String(reactors), PORT: "0" },
        { readyWhen: /reactors listening on ws:\/\/127\.0\.0\.1:(\d+)/, name: "the reactor app" }
      )
    ),
    (child) => promise(() => child.stop({ signal: "SIGKILL" }))
  )

/** Which reactor a new connection landed on: `<index>:<thread id>`. */
const who = (port: number) =>
  Effect.gen(function* () {
    const client = yield* connect(port, "/who")
    client.ws.send("?")
    const answer = String(yield* promise(client.next))
    return { client, reactor: answer.split(":")[0]!, answer }
  })

/** Connects until one connection lands on each reactor (the kernel spreads them by a hash of the address). */
const onEachReactor = (port: number, reactors: number) =>
  Effect.gen(function* () {
    const found = new Map<string, Client>()
    const extra: Array<Client> = []
    for (let i = 0; i < 200 && found.size < reactors; i++) {
      const { client, reactor } = yield* who(port)
      if (found.has(reactor)) extra.push(client)
      else found.set(reactor, client)
    }
    for (const client of extra) client.ws.close()
    return found
  })

const room = (port: number, nick: string) => connect(port, `/room?nick=${nick}`)

describe("NodeReactors metrics", () => {
  it.live(
    "a scrape on either reactor has every reactor's samples, each labelled with its reactor",
    () =>
      Effect.gen(function* () {
        const app = yield* start(2)
        const clients = yield* onEachReactor(app.port, 2)
        expect(clients.size).toBe(2)
        const scrape = promise(() => fetch(`http://127.0.0.1:${app.port}/metrics`).then((r) => r.text()))
        const openOn = (body: string) =>
          [0, 1].map((reactor) =>
            Number(
              new RegExp(`^switchboard_connections_open\\{reactor="${reactor}",route="/who"\\} (\\d+)$`, "m").exec(
                body
              )?.[1]
            )
          )
        // the extra connections onEachReactor closed are gone once their close handshakes end
        let settled = false
        for (let i = 0; i < 50 && !settled; i++) {
          settled = openOn(yield* scrape).join() === "1,1"
          if (!settled) yield* Effect.sleep("100 millis")
        }
        expect(settled).toBe(true)
        for (let i = 0; i < 6; i++) {
          // a scrape lands on one reactor or the other: each must show both
          const body = yield* scrape
          expect(openOn(body)).toEqual([1, 1])
          // one HELP and one TYPE per family
          expect(body.match(/^# TYPE switchboard_connections_open /gm)).toHaveLength(1)
        }
        for (const client of clients.values()) client.ws.close()
      }),
    30_000
  )
})

describe("NodeReactors", () => {
  it.live(
    "spreads connections on one port over both reactor threads",
    () =>
      Effect.gen(function* () {
        const app = yield* start(2)
        const seen = new Map<string, Set<string>>()
        for (let i = 0; i < 40; i++) {
          const { client, reactor, answer } = yield* who(app.port)
          const threads = seen.get(reactor) ?? new Set()
          threads.add(answer)
          seen.set(reactor, threads)
          client.ws.close()
        }
        // 40 connections from other source ports: the chance that all land on one reactor is 2^-39
        expect([...seen.keys()].sort()).toEqual(["0", "1"])
        // one thread per reactor, and not the main thread
        for (const threads of seen.values()) expect(threads.size).toBe(1)
        expect(seen.has("main")).toBe(false)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "carries a broadcast and presence events from one reactor to the other",
    () =>
      Effect.gen(function* () {
        const app = yield* start(2)
        // room clients until one is on each reactor; the others leave
        const byReactor = new Map<string, Client>()
        for (let i = 0; i < 200 && byReactor.size < 2; i++) {
          const client = yield* room(app.port, `n${i}`)
          const reactor = String(yield* promise(client.next)).replace("reactor:", "")
          if (byReactor.has(reactor)) {
            client.ws.close()
            yield* promise(() => client.closed)
          } else byReactor.set(reactor, client)
        }
        expect([...byReactor.keys()].sort()).toEqual(["0", "1"])
        const a = byReactor.get("0")!
        const b = byReactor.get("1")!
        const nickOf = (client: Client) => new URL(client.ws.url).searchParams.get("nick")!
        // the one that joined second was heard by the first, across reactors
        const [first, second] = [...byReactor.values()]
        yield* waitUntil(() => first!.received.includes(`presence:Joined:${nickOf(second!)}`))
        a.ws.send("hello from reactor 0")
        b.ws.send(Buffer.from([1, 2, 3]))
        // the two sends race: a may hear b's bytes (across reactors) before its own text comes back
        yield* waitUntil(
          () =>
            b.received.includes("hello from reactor 0") &&
            a.received.includes("hello from reactor 0") &&
            a.received.some(Buffer.isBuffer)
        )
        expect(a.received.filter((m) => m === "hello from reactor 0")).toHaveLength(1)
        expect(b.received.filter((m) => m === "hello from reactor 0")).toHaveLength(1)
        const binary = a.received.find(Buffer.isBuffer)
        expect(binary && [...binary]).toEqual([1, 2, 3])
        // the first leaves: the second hears it
        first!.ws.close()
        yield* waitUntil(() => second!.received.includes(`presence:Left:${nickOf(first!)}`))
        second!.ws.close()
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "restarts a reactor that died while the other keeps serving, and its clients can reconnect",
    () =>
      Effect.gen(function* () {
        const app = yield* start(2)
        const clients = yield* onEachReactor(app.port, 2)
        // the reactor that accepts /die exits (code 7), whichever it is
        yield* promise(
          () =>
            new Promise<void>((resolve) => {
              const ws = new WebSocket(`ws://127.0.0.1:${app.port}/die`)
              ws.on("error", () => resolve())
              ws.on("close", () => resolve())
            })
        )
        const isOpen = (client: Client) => client.ws.readyState === WebSocket.OPEN
        yield* waitUntil(() => [...clients.values()].some((client) => !isOpen(client)))
        const dead = [...clients.keys()].find((reactor) => !isOpen(clients.get(reactor)!))!
        const alive = dead === "0" ? "1" : "0"
        expect((yield* promise(() => clients.get(dead)!.closed)).code).toBe(1006)
        // the other reactor never noticed
        const survivor = clients.get(alive)!
        expect(isOpen(survivor)).toBe(true)
        survivor.ws.send("?")
        expect(String(yield* promise(survivor.next))).toMatch(new RegExp(`^${alive}:`))
        // the dead one is restarted (a new thread) and takes connections again
        yield* waitUntil(() => new RegExp(`reactor ${dead} restarted`).test(app.output()), 10_000)
        expect(app.output()).toMatch(new RegExp(`reactor ${dead} ended \\(exit code 7\\)`))
        const again = yield* onEachReactor(app.port, 2)
        expect([...again.keys()].sort()).toEqual(["0", "1"])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "closes every client of every reactor with 1001 on SIGTERM, and exits",
    () =>
      Effect.gen(function* () {
        const app = yield* start(2)
        const clients = yield* onEachReactor(app.port, 2)
        expect(clients.size).toBe(2)
        const closes = [...clients.values()].map((client) => client.closed)
        const how = yield* promise(() => app.stop({ signal: "SIGTERM", graceMs: 8_000 }))
        expect(how).toBe("stopped")
        const codes = yield* promise(() => Promise.all(closes))
        expect(codes.map((c) => c.code)).toEqual([1001, 1001])
        // it exited by itself, and a graceful stop is a success (Effect's own runMain says 130)
        expect(app.exitStatus()).toEqual({ code: 0, signal: null })
        expect(app.output()).toMatch(/shutdown: 2 reactor\(s\) stopped/)
      }).pipe(Effect.scoped),
    30_000
  )

  it.effect("refuses a reactor count out of range", () =>
    Effect.gen(function* () {
      for (const reactors of [0, -1, 1.5, 257]) {
        const error = yield* Effect.flip(Layer.build(NodeReactors.layer({ reactors, entry: fixture })))
        expect(error.reason._tag).toBe("InvalidOptions")
        expect(error.message).toContain("reactors")
      }
    }).pipe(Effect.scoped)
  )

  it.live(
    "fails with ReactorFailed, carrying the reactor's own error, when a reactor cannot listen",
    () =>
      Effect.gen(function* () {
        // a port held without SO_REUSEPORT: the reactors cannot share it
        const holder = Net.createServer()
        yield* promise(() => new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve)))
        yield* Effect.addFinalizer(() => Effect.sync(() => holder.close()))
        const taken = (holder.address() as Net.AddressInfo).port
        const saved = process.env.PORT
        process.env.PORT = String(taken)
        const error = yield* Effect.flip(Layer.build(NodeReactors.layer({ reactors: 2, entry: fixture }))).pipe(
          Effect.ensuring(
            Effect.sync(() => (saved === undefined ? delete process.env.PORT : (process.env.PORT = saved)))
          )
        )
        expect(error.reason._tag).toBe("ReactorFailed")
        expect(error.message).toMatch(/reactor 0 ended before listening/)
        expect(error.message).toMatch(/EADDRINUSE/)
      }).pipe(Effect.scoped),
    30_000
  )
})
