/**
 * The fault and abuse suite: bounded probes on 127.0.0.1 that attack the
 * Node server the way a hostile or broken peer would (it never reads, it
 * sends garbage, it leaves half-way) and check what must hold afterwards:
 * memory bounded by the documented limits, no error logged, every socket
 * closed, every file descriptor released, and the server still serving.
 * The longer, randomised version is `apps/bench/src/soak.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Backplane, Behavior, Hub } from "@switchboard/core"
import { Effect, Layer, Metric } from "effect"
import { pollUntil } from "../../../test-support/poll.ts"
import { clientFrame } from "../../../test-support/wire.ts"
import {
  type ChurnKind,
  captureLogs,
  churnOnce,
  garbageClient,
  garbageFor,
  halfOpenClient,
  nonReadingUpgrade,
  type Outcome,
  openFds,
  writeUntilStalled
} from "./abuse-support.ts"
import { connect, promise, serve, waitUntil } from "./support.ts"

const quiet = { keepalive: false } as const
const KiB = 1024
const MiB = 1024 * KiB
/** A 1 KiB binary message as the server frames it: 2 header bytes and a 16-bit length. */
const frameOf1KiB = KiB + 4

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

/** What a behaviour sees of its connection, kept by the tests that watch it from outside. */
interface Watched {
  readonly bufferedAmount: number
  readonly isOpen: boolean
}

/** Yields to the event loop (I/O included), which Effect's own yield does not promise. */
const nextTurn = promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Waits while `value()` keeps changing; resolves once it held still for `quietMs` (or after `timeoutMs`). */
const settled = (value: () => number, quietMs: number, timeoutMs: number) =>
  promise(
    () =>
      new Promise<void>((resolve) => {
        const started = Date.now()
        let last = value()
        let since = Date.now()
        const check = () => {
          const now = Date.now()
          const current = value()
          if (current !== last) {
            last = current
            since = now
          }
          if (now - since >= quietMs || now - started >= timeoutMs) return resolve()
          setTimeout(check, 20)
        }
        check()
      })
  )

describe("abuse: a peer that never reads", () => {
  it.live("suspends the sender and holds at most highWaterMark plus one message for a client that never reads", () =>
    Effect.gen(function* () {
      const highWaterMark = 64 * KiB
      const total = 200_000
      const flood = { sent: 0, maxBuffered: 0, peakRss: 0, done: false, conn: undefined as Watched | undefined }
      const Flood = Behavior.make({
        onMessage: (conn) =>
          Effect.gen(function* () {
            flood.conn = conn
            for (let i = 0; i < total && conn.isOpen; i++) {
              // a fresh buffer each time: without backpressure 200 MiB would pile up in the socket
              yield* conn.send(Buffer.alloc(KiB, i & 0xff))
              flood.sent++
              if (conn.bufferedAmount > flood.maxBuffered) flood.maxBuffered = conn.bufferedAmount
              if ((i & 1023) === 0) flood.peakRss = Math.max(flood.peakRss, process.memoryUsage.rss())
            }
            flood.done = true
          })
      })
      const server = yield* serve({ ...quiet, routes: { "/flood": { behavior: Flood, highWaterMark } } })
      const peer = yield* promise(() => nonReadingUpgrade(server.port, "/flood"))
      const rssBefore = process.memoryUsage.rss()
      peer.socket.write(clientFrame(0x1, "go"))
      yield* waitUntil(() => flood.sent > 0, 3_000)
      // the kernel's buffers fill first; then the sender must stop and stay stopped
      yield* settled(() => flood.sent, 300, 3_000)
      const stalledAt = flood.sent
      yield* Effect.sleep(200)
      expect(flood.sent).toBe(stalledAt)
      expect(flood.sent).toBeLessThan(total)
      // after each send the behaviour saw at most the mark plus one message; suspended, the socket holds just over it
      expect(flood.maxBuffered).toBeLessThanOrEqual(highWaterMark + frameOf1KiB)
      const held = flood.conn!.bufferedAmount
      expect(held).toBeGreaterThan(highWaterMark)
      expect(held).toBeLessThanOrEqual(highWaterMark + frameOf1KiB)
      // a generous bound: the suspended sender holds 64 KiB, an unbounded one would hold up to 200 MiB
      expect(Math.max(flood.peakRss, process.memoryUsage.rss()) - rssBefore).toBeLessThan(64 * MiB)
      // the suspended sender is released when the peer goes away, and the connection ends
      peer.socket.destroy()
      yield* waitUntil(() => flood.done && server.connections() === 0, 3_000)
      expect(flood.sent).toBeLessThan(total)
    })
  )

  it.live("stops reading from a client that sends without reading the replies, holding at most highWaterMark out", () =>
    Effect.gen(function* () {
      const highWaterMark = 64 * KiB
      const mirror: { conn: Watched | undefined; maxBuffered: number } = { conn: undefined, maxBuffered: 0 }
      const Mirror = Behavior.make({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            mirror.conn = conn
            yield* conn.send(message)
            mirror.maxBuffered = Math.max(mirror.maxBuffered, conn.bufferedAmount)
          })
      })
      const server = yield* serve({
        ...quiet,
        routes: { "/mirror": { behavior: Mirror, highWaterMark, mailboxCapacity: 64 } }
      })
      const peer = yield* promise(() => nonReadingUpgrade(server.port, "/mirror"))
      const pausesBefore = server.pausedReads()
      const rssBefore = process.memoryUsage.rss()
      const frame = clientFrame(0x2, Buffer.alloc(KiB, 1))
      const written = yield* promise(() =>
        writeUntilStalled(peer.socket, frame, { stallMs: 500, maxMs: 4_000, maxFrames: 200_000 })
      )
      // the server stopped reading: its actor waits in send, its mailbox is full, the socket is paused
      expect(written.stalled).toBe(true)
      expect(server.pausedReads()).toBeGreaterThan(pausesBefore)
      const held = mirror.conn!.bufferedAmount
      expect(held).toBeGreaterThan(highWaterMark)
      expect(held).toBeLessThanOrEqual(highWaterMark + frameOf1KiB)
      expect(mirror.maxBuffered).toBeLessThanOrEqual(highWaterMark + frameOf1KiB)
      // what the client got rid of sits in the kernel's buffers and one mailbox, not in an unbounded queue
      expect(written.frames * frame.length).toBeLessThan(64 * MiB)
      expect(process.memoryUsage.rss() - rssBefore).toBeLessThan(64 * MiB)
      peer.socket.destroy()
      yield* waitUntil(() => server.connections() === 0, 3_000)
    })
  )

  it.live("keeps a hub subscriber that never reads at maxBufferedBytes plus one message, counting the drops", () =>
    Effect.gen(function* () {
      const maxBufferedBytes = 256 * KiB
      const watched: { slow: Watched | undefined; reader: Watched | undefined; subscribed: number } = {
        slow: undefined,
        reader: undefined,
        subscribed: 0
      }
      const Feed = Behavior.make({
        init: (conn) =>
          Effect.gen(function* () {
            const hub = yield* Hub.Hub
            yield* hub.subscribe("feed", conn)
            if (conn.request.query.get("role") === "slow") watched.slow = conn
            else watched.reader = conn
            watched.subscribed++
          })
      })
      const server = yield* serve({ ...quiet, routes: { "/feed": Feed } })
      const reader = yield* connect(server.port, "/feed")
      const peer = yield* promise(() => nonReadingUpgrade(server.port, "/feed?role=slow"))
      yield* waitUntil(() => watched.subscribed === 2, 3_000)
      const slow = watched.slow!
      const readerConn = watched.reader!
      const hub = yield* Hub.Hub
      const drops = Metric.withAttributes(Hub.slowConsumerTotal, { policy: "drop" })
      const dropsBefore = (yield* Metric.value(drops)).count
      const deadline = Date.now() + 3_000
      let sent = 0
      let maxSlow = 0
      let dropped = 0
      // broadcast until the slow subscriber has been skipped 500 times (bounded in count and time)
      while (dropped < 500 && sent < 100_000 && Date.now() < deadline) {
        yield* hub.broadcast("feed", Buffer.alloc(KiB, sent & 0xff))
        sent++
        maxSlow = Math.max(maxSlow, slow.bufferedAmount)
        if (sent % 16 === 0) {
          // pace on the reader, which reads: it must never look slow itself
          do yield* nextTurn
          while (readerConn.bufferedAmount > maxBufferedBytes / 4 && Date.now() < deadline)
          dropped = (yield* Metric.value(drops)).count - dropsBefore
        }
      }
      dropped = (yield* Metric.value(drops)).count - dropsBefore
      expect(dropped).toBeGreaterThanOrEqual(500)
      expect(maxSlow).toBeGreaterThan(maxBufferedBytes)
      expect(maxSlow).toBeLessThanOrEqual(maxBufferedBytes + frameOf1KiB)
      expect(slow.bufferedAmount).toBeLessThanOrEqual(maxBufferedBytes + frameOf1KiB)
      expect(slow.isOpen).toBe(true)
      // the reader got every broadcast: the slow one held nobody back
      yield* waitUntil(() => reader.received.length === sent, 5_000)
      expect(reader.received.length).toBe(sent)
      peer.socket.destroy()
      reader.ws.close()
      yield* waitUntil(() => server.connections() === 0, 3_000)
    }).pipe(Effect.provide(Hub.layer({ maxBufferedBytes: 256 * KiB }).pipe(Layer.provide(Backplane.layerMemory))))
  )
})

describe("abuse: garbage frames", () => {
  it.live(
    "closes 1,000 connections that send garbage with 1002, 1007 or 1009 (or drops them), logs no error and keeps serving",
    () => {
      const logs = captureLogs()
      return Effect.gen(function* () {
        const server = yield* serve({
          // a peer that stops mid-frame, or sends nothing but a ping, is found by the keepalive
          keepalive: { pingAfter: "100 millis", closeAfterNoPong: "100 millis" },
          closeTimeout: "200 millis",
          maxMessageBytes: 16 * KiB,
          routes: { "/echo": Echo }
        })
        const seed = 0x5eed
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 1_000 }, (_, i) => i),
          (i) =>
            promise(async () => {
              const bytes = garbageFor(seed + i)
              return { i, bytes, outcome: await garbageClient(server.port, "/echo", bytes, 3_000) }
            }),
          { concurrency: 100 }
        )
        const byKind = (tag: Outcome["_tag"]) => outcomes.filter(({ outcome }) => outcome._tag === tag)
        const describeOne = ({ i, outcome }: { readonly i: number; readonly outcome: Outcome }) =>
          `seed ${seed + i}: ${JSON.stringify(outcome)}`
        expect(byKind("Hung").map(describeOne)).toEqual([])
        expect(byKind("Rejected").map(describeOne)).toEqual([])
        const codes = new Map<number, number>()
        const unexpected: Array<string> = []
        for (const { i, bytes, outcome } of outcomes) {
          if (outcome._tag !== "Closed") continue
          codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1)
          if (outcome.code === 1002 || outcome.code === 1007 || outcome.code === 1009) continue
          // the garbage may hold a well-formed close frame, which the server answers with the peer's code
          const peerMayHaveClosed = bytes.includes(0x88) && outcome.code >= 1000 && outcome.code !== 1001
          if (!peerMayHaveClosed) unexpected.push(describeOne({ i, outcome }))
        }
        expect(unexpected).toEqual([])
        // the generator reaches every protocol failure the server distinguishes
        expect(codes.get(1002) ?? 0).toBeGreaterThan(100)
        expect(codes.get(1007) ?? 0).toBeGreaterThan(10)
        expect(codes.get(1009) ?? 0).toBeGreaterThan(10)
        yield* waitUntil(() => server.connections() === 0, 3_000)
        const client = yield* connect(server.port, "/echo")
        client.ws.send("still serving")
        expect(yield* promise(client.next)).toBe("still serving")
        client.ws.close()
        yield* waitUntil(() => server.connections() === 0, 3_000)
        // the logger was wired to the server (it heard it start), and heard no error
        expect(logs.lines.some((line) => line.message.includes("switchboard listening"))).toBe(true)
        expect(logs.lines.filter((line) => line.level === "Error" || line.level === "Fatal")).toEqual([])
      }).pipe(Effect.provide(logs.layer))
    }
  )
})

describe("abuse: a peer that ignores the close handshake", () => {
  it.live("terminates a peer that breaks the protocol and then ignores the close frame, within closeTimeout", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        closeTimeout: "200 millis",
        maxMessageBytes: 16 * KiB,
        routes: { "/echo": Echo }
      })
      const tooLong = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0])
      const violations = [
        Buffer.from([0xc1, 0x80, 0, 0, 0, 0]), // RSV1 set, no extension negotiated: 1002
        clientFrame(0x1, Buffer.from([0xff, 0xfe])), // invalid UTF-8: 1007
        tooLong // a 1 MiB frame over maxMessageBytes: 1009
      ]
      const peers = yield* Effect.forEach(violations, (bytes) =>
        promise(() => halfOpenClient(server.port, "/echo", bytes))
      )
      expect(yield* Effect.forEach(peers, (peer) => promise(() => peer.closeCode))).toEqual([1002, 1007, 1009])
      // closeTimeout (200 ms) bounds the close handshake, as after any close the server starts
      const released = yield* promise(() => pollUntil(() => server.connections() === 0, 2_000))
      for (const peer of peers) peer.socket.destroy()
      expect({ released, open: server.connections() }).toEqual({ released: true, open: 0 })
    })
  )
})

describe("abuse: connection churn", () => {
  it.live("releases every file descriptor after 2,000 connections that close cleanly, abruptly or half-way", () =>
    Effect.gen(function* () {
      const server = yield* serve({ ...quiet, handshakeTimeout: "150 millis", routes: { "/echo": Echo } })
      const kinds: ReadonlyArray<ChurnKind | "clean"> = [
        "clean",
        "destroyBeforeRequest",
        "destroyMidRequest",
        "destroyAfterRequest",
        "destroyAfterUpgrade",
        "halfRequestThenWait",
        "clean",
        "destroyAfterUpgrade"
      ]
      const once = (kind: ChurnKind | "clean") =>
        kind === "clean"
          ? Effect.gen(function* () {
              const client = yield* connect(server.port, "/echo")
              client.ws.send("hi")
              yield* promise(client.next)
              client.ws.close()
              yield* promise(() => client.closed)
              return "ok" as const
            })
          : promise(() => churnOnce(server.port, "/echo", kind, 3_000))
      // warm up every path (lazy modules, ws's pools) before the baseline
      for (const kind of kinds) yield* once(kind)
      yield* waitUntil(() => server.connections() === 0, 3_000)
      yield* settled(openFds, 200, 2_000)
      const baseline = openFds()
      let peak = baseline
      const results = yield* Effect.forEach(
        Array.from({ length: 2_000 }, (_, i) => kinds[i % kinds.length]!),
        (kind, i) =>
          Effect.tap(once(kind), () =>
            Effect.sync(() => {
              if (i % 50 === 0) peak = Math.max(peak, openFds())
            })
          ),
        { concurrency: 100 }
      )
      expect(results.filter((result) => result !== "ok")).toEqual([])
      // the probe is live: the churn held many descriptors at once
      expect(peak).toBeGreaterThan(baseline + 50)
      yield* waitUntil(() => server.connections() === 0, 3_000)
      yield* promise(() => pollUntil(() => openFds() <= baseline + 5, 3_000))
      expect(openFds()).toBeLessThanOrEqual(baseline + 5)
      const client = yield* connect(server.port, "/echo")
      client.ws.send("still serving")
      expect(yield* promise(client.next)).toBe("still serving")
      client.ws.close()
    })
  )
})
