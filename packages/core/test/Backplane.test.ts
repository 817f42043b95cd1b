import { Worker } from "node:worker_threads"
import { describe, expect, it } from "@effect/vitest"
import { Backplane } from "@switchboard/core"
import { BackplaneConformance } from "@switchboard/testing"
import { Context, Effect, Layer, Metric } from "effect"

/** A slow peer thread (fixtures/slowPeer.ts) on `channel`, and how many envelopes it has delivered so far. */
const slowPeer = (channel: string, spinMs: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const counter = new Int32Array(new SharedArrayBuffer(4))
      const worker = new Worker(new URL("./fixtures/slowPeer.ts", import.meta.url), {
        workerData: { channel, spinMs, counter }
      })
      await new Promise<void>((resolve, reject) => {
        worker.once("message", () => resolve())
        worker.once("error", reject)
      })
      return { worker, delivered: () => Atomics.load(counter, 0) }
    }),
    ({ worker }) => Effect.promise(() => worker.terminate())
  )

const threads = (options: Parameters<typeof Backplane.layerThreads>[0]) =>
  Effect.map(Layer.build(Layer.fresh(Backplane.layerThreads(options))), (c) => Context.get(c, Backplane.Backplane))

const counterValue = (counter: typeof Backplane.flowWaitsTotal) =>
  Effect.map(Metric.value(counter), (state) => state.count)

BackplaneConformance.run("memory", Backplane.layerMemory)
BackplaneConformance.run("threads", Backplane.layerThreads(), { crossNode: true })

describe("Backplane.layerThreads", () => {
  it.live("fails a publish whose envelope cannot cross threads, and delivers it to no one", () =>
    Effect.gen(function* () {
      const build = Effect.map(Layer.build(Layer.fresh(Backplane.layerThreads({ channel: "test:clone" }))), (c) =>
        Context.get(c, Backplane.Backplane)
      )
      const a = yield* build
      const b = yield* build
      const got: Array<Backplane.Envelope> = []
      yield* a.subscribe("t", (e) => got.push(e))
      yield* b.subscribe("t", (e) => got.push(e))
      const member = { id: "c1", node: "n", meta: { greet: () => "hi" } }
      const error = yield* Effect.flip(
        a.publish({
          _tag: "Presence",
          topic: "t",
          origin: "n",
          version: 1,
          signal: { _tag: "Joined", topic: "room", member }
        })
      )
      expect(error._tag).toBe("BackplaneError")
      expect(error.message).toContain("test:clone")
      yield* Effect.sleep(50)
      expect(got).toEqual([])
    }).pipe(Effect.scoped)
  )

  it.live("keeps backplanes with other channel names apart", () =>
    Effect.gen(function* () {
      const on = (channel: string) =>
        Effect.map(Layer.build(Layer.fresh(Backplane.layerThreads({ channel }))), (c) =>
          Context.get(c, Backplane.Backplane)
        )
      const a = yield* on("test:one")
      const b = yield* on("test:two")
      const c = yield* on("test:one")
      const onB: Array<Backplane.Envelope> = []
      const onC: Array<Backplane.Envelope> = []
      yield* b.subscribe("t", (e) => onB.push(e))
      yield* c.subscribe("t", (e) => onC.push(e))
      yield* a.publish({ _tag: "Broadcast", topic: "t", origin: "n", message: "hi" })
      while (onC.length === 0) yield* Effect.sleep(2)
      yield* Effect.sleep(50)
      expect(onC).toHaveLength(1)
      expect(onB).toHaveLength(0)
    }).pipe(Effect.scoped)
  )

  it.live("delivers the envelopes that arrive in one turn together, with no tick between them", () =>
    Effect.gen(function* () {
      // the reactor uncorks its sockets on the next tick: a tick between two deliveries is a write per envelope
      const channel = `test:batch:${crypto.randomUUID()}`
      const a = yield* threads({ channel })
      const b = yield* threads({ channel })
      let ticks = 0
      const seenAtTick: Array<number> = []
      yield* b.subscribe("t", () => {
        seenAtTick.push(ticks)
        process.nextTick(() => ticks++)
      })
      for (let i = 0; i < 100; i++) yield* a.publish({ _tag: "Broadcast", topic: "t", origin: "n", message: `m${i}` })
      while (seenAtTick.length < 100) yield* Effect.sleep(2)
      // 100 posts made in one go arrive together; at most a second batch if they straddle a poll
      expect(new Set(seenAtTick).size).toBeLessThanOrEqual(2)
    }).pipe(Effect.scoped)
  )

  it.live("makes a publisher wait for a thread that falls behind: never more than window envelopes ahead of it", () =>
    Effect.gen(function* () {
      const channel = `test:flow:${crypto.randomUUID()}`
      const peer = yield* slowPeer(channel, 2)
      const a = yield* threads({ channel, window: 16 })
      // the peer answers a's hello: from then on a waits for it
      yield* Effect.sleep(100)
      const waits = yield* counterValue(Backplane.flowWaitsTotal)
      let most = 0
      for (let i = 1; i <= 200; i++) {
        yield* a.publish({ _tag: "Broadcast", topic: "t", origin: "n", message: `m${i}` })
        // posted but not yet delivered by the peer
        most = Math.max(most, i - peer.delivered())
      }
      expect(most).toBeLessThanOrEqual(16)
      expect(peer.delivered()).toBeGreaterThanOrEqual(200 - 16)
      expect((yield* counterValue(Backplane.flowWaitsTotal)) - waits).toBeGreaterThan(0)
    }).pipe(Effect.scoped)
  )

  it.live("stops waiting for a thread that acknowledges nothing for peerTimeout, and counts it", () =>
    Effect.gen(function* () {
      const channel = `test:stuck:${crypto.randomUUID()}`
      // the peer spends a minute on its first envelope: it never acknowledges within the test
      yield* slowPeer(channel, 60_000)
      const a = yield* threads({ channel, window: 4, peerTimeout: "300 millis" })
      yield* Effect.sleep(100)
      const dropped = yield* counterValue(Backplane.peersDroppedTotal)
      const started = Date.now()
      for (let i = 1; i <= 10; i++) {
        yield* a.publish({ _tag: "Broadcast", topic: "t", origin: "n", message: `m${i}` })
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
      expect((yield* counterValue(Backplane.peersDroppedTotal)) - dropped).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.effect("fails the layer with a BackplaneError for a bad window or peerTimeout", () =>
    Effect.gen(function* () {
      for (const options of [{ window: 0 }, { window: 1.5 }, { peerTimeout: "soon" as never }, { peerTimeout: 0 }]) {
        const error = yield* Effect.flip(Layer.build(Backplane.layerThreads(options)))
        expect(error._tag).toBe("BackplaneError")
        expect(error.message).toContain("Backplane.layerThreads")
      }
    })
  )
})
