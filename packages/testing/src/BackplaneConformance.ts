/**
 * The conformance suite every backplane passes. It registers vitest tests
 * for a backplane layer: delivery to every subscriber of a topic and only
 * to them, publish order, the end of a subscription with its scope, and
 * envelopes (text, binary, presence metadata) arriving intact.
 *
 * Deliveries may be asynchronous (Redis), so the suite waits for them with
 * real time, bounded.
 *
 * A backplane that joins nodes (threads, processes, machines) also runs the
 * `crossNode` tests: two instances of the layer (`Layer.fresh`, as two
 * nodes would build it), an envelope published on one reaching the
 * subscribers of both, in order and intact.
 *
 * @example
 * ```ts
 * import { Backplane } from "@switchboard/core"
 * import { BackplaneConformance } from "@switchboard/testing"
 *
 * BackplaneConformance.run("memory", Backplane.layerMemory)
 * BackplaneConformance.run("threads", Backplane.layerThreads(), { crossNode: true })
 * ```
 *
 * @since 0.1.0
 */
import { describe, expect, it } from "@effect/vitest"
import { Backplane } from "@switchboard/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"

const within = (condition: () => boolean, millis = 5_000): Effect.Effect<void, Error> =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`not delivered within ${millis} ms`))
      yield* Effect.sleep(2)
    }
  })

let topicCounter = 0
const freshTopic = (name: string) => `conformance:${name}:${Date.now().toString(36)}:${++topicCounter}`

const broadcast = (
  topic: string,
  message: string | Uint8Array,
  origin = "node-a"
): Extract<Backplane.Envelope, { _tag: "Broadcast" }> => ({
  _tag: "Broadcast",
  topic,
  origin,
  message
})

const presence = (
  topic: string,
  origin: string,
  version: number,
  signal: Backplane.PresenceSignal
): Backplane.Envelope => ({ _tag: "Presence", topic, origin, version, signal })

/**
 * Options of `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The backplane joins nodes: run the tests with two instances too. */
  readonly crossNode?: boolean
}

/** A second instance of the backplane, as another node builds it, for the current scope. */
const another = <E>(layer: Layer.Layer<Backplane.Backplane, E>) =>
  Effect.map(Layer.build(Layer.fresh(layer)), (context) => Context.get(context, Backplane.Backplane))

/**
 * Registers the conformance tests for `layer` under `describe(name)`.
 *
 * @since 0.1.0
 * @category tests
 */
export const run = <E>(name: string, layer: Layer.Layer<Backplane.Backplane, E>, options: Options = {}): void => {
  if (options.crossNode === true) runCrossNode(name, layer)
  describe(`Backplane conformance: ${name}`, () => {
    it.live("delivers a published envelope to a subscriber of its topic", () =>
      Effect.gen(function* () {
        const backplane = yield* Backplane.Backplane
        const topic = freshTopic("one")
        const got: Array<Backplane.Envelope> = []
        yield* backplane.subscribe(topic, (e) => got.push(e))
        yield* backplane.publish(broadcast(topic, "hello"))
        yield* within(() => got.length === 1)
        expect(got[0]).toEqual(broadcast(topic, "hello"))
      }).pipe(Effect.provide(layer))
    )

    it.live("delivers to every subscriber of the topic, and to no other topic", () =>
      Effect.gen(function* () {
        const backplane = yield* Backplane.Backplane
        const topic = freshTopic("many")
        const other = freshTopic("other")
        const a: Array<Backplane.Envelope> = []
        const b: Array<Backplane.Envelope> = []
        const c: Array<Backplane.Envelope> = []
        yield* backplane.subscribe(topic, (e) => a.push(e))
        yield* backplane.subscribe(topic, (e) => b.push(e))
        yield* backplane.subscribe(other, (e) => c.push(e))
        yield* backplane.publish(broadcast(topic, "for the topic"))
        yield* backplane.publish(broadcast(other, "for the other"))
        yield* within(() => a.length === 1 && b.length === 1 && c.length === 1)
        expect(a.map((e) => e._tag === "Broadcast" && e.message)).toEqual(["for the topic"])
        expect(b.map((e) => e._tag === "Broadcast" && e.message)).toEqual(["for the topic"])
        expect(c.map((e) => e._tag === "Broadcast" && e.message)).toEqual(["for the other"])
      }).pipe(Effect.provide(layer))
    )

    it.live("keeps the publish order of one publisher (1,000 envelopes)", () =>
      Effect.gen(function* () {
        const backplane = yield* Backplane.Backplane
        const topic = freshTopic("order")
        const got: Array<string> = []
        yield* backplane.subscribe(topic, (e) => {
          if (e._tag === "Broadcast") got.push(String(e.message))
        })
        for (let i = 0; i < 1000; i++) yield* backplane.publish(broadcast(topic, String(i)))
        yield* within(() => got.length === 1000, 10_000)
        expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)))
      }).pipe(Effect.provide(layer))
    )

    it.live("stops delivering when the subscription's scope closes", () =>
      Effect.gen(function* () {
        const backplane = yield* Backplane.Backplane
        const topic = freshTopic("scope")
        const ended: Array<Backplane.Envelope> = []
        const kept: Array<Backplane.Envelope> = []
        const scope = yield* Scope.make()
        yield* backplane.subscribe(topic, (e) => ended.push(e)).pipe(Scope.provide(scope))
        yield* backplane.subscribe(topic, (e) => kept.push(e))
        yield* backplane.publish(broadcast(topic, "first"))
        yield* within(() => ended.length === 1 && kept.length === 1)
        yield* Scope.close(scope, Exit.void)
        yield* backplane.publish(broadcast(topic, "second"))
        yield* within(() => kept.length === 2)
        // give a late delivery the same chance to arrive as the one that did
        yield* Effect.sleep(50)
        expect(ended).toHaveLength(1)
      }).pipe(Effect.provide(layer))
    )

    it.live("carries text, binary, direct and presence envelopes intact", () =>
      Effect.gen(function* () {
        const backplane = yield* Backplane.Backplane
        const topic = freshTopic("intact")
        const got: Array<Backplane.Envelope> = []
        yield* backplane.subscribe(topic, (e) => got.push(e))
        const bytes = new Uint8Array([0, 1, 2, 253, 254, 255])
        const member = { id: "c7", node: "node-b", meta: { nick: "ada", tags: ["x"] } }
        yield* backplane.publish({ ...broadcast(topic, "héllo ✓", "node-b"), exclude: "c9" })
        yield* backplane.publish(broadcast(topic, bytes, "node-b"))
        yield* backplane.publish(presence(topic, "node-b", 1, { _tag: "Joined", topic: "room", member }))
        yield* backplane.publish(presence(topic, "node-b", 2, { _tag: "State", members: [{ topic: "room", member }] }))
        yield* backplane.publish({ ...broadcast(topic, "for one", "node-b"), to: "c3.abc" })
        yield* within(() => got.length === 5)
        expect(got[0]).toEqual({ ...broadcast(topic, "héllo ✓", "node-b"), exclude: "c9" })
        expect(got[4]).toEqual({ ...broadcast(topic, "for one", "node-b"), to: "c3.abc" })
        const binary = got[1]
        expect(binary?._tag === "Broadcast" && binary.message instanceof Uint8Array).toBe(true)
        expect(binary?._tag === "Broadcast" && [...(binary.message as Uint8Array)]).toEqual([...bytes])
        expect(got[2]).toEqual(presence(topic, "node-b", 1, { _tag: "Joined", topic: "room", member }))
        expect(got[3]).toEqual(presence(topic, "node-b", 2, { _tag: "State", members: [{ topic: "room", member }] }))
      }).pipe(Effect.provide(layer))
    )
  })
}

const runCrossNode = <E>(name: string, layer: Layer.Layer<Backplane.Backplane, E>): void => {
  describe(`Backplane conformance across nodes: ${name}`, () => {
    it.live("delivers an envelope published on one node to the subscribers of every node", () =>
      Effect.gen(function* () {
        const a = yield* another(layer)
        const b = yield* another(layer)
        const topic = freshTopic("cross")
        const onA: Array<Backplane.Envelope> = []
        const onB: Array<Backplane.Envelope> = []
        const otherTopic: Array<Backplane.Envelope> = []
        yield* a.subscribe(topic, (e) => onA.push(e))
        yield* b.subscribe(topic, (e) => onB.push(e))
        yield* b.subscribe(freshTopic("elsewhere"), (e) => otherTopic.push(e))
        yield* a.publish(broadcast(topic, "from a"))
        yield* b.publish(broadcast(topic, "from b", "node-b"))
        yield* within(() => onA.length === 2 && onB.length === 2)
        expect(onA.map((e) => e._tag === "Broadcast" && e.message).sort()).toEqual(["from a", "from b"])
        expect(onB.map((e) => e._tag === "Broadcast" && e.message).sort()).toEqual(["from a", "from b"])
        yield* Effect.sleep(50)
        expect(onA).toHaveLength(2)
        expect(onB).toHaveLength(2)
        expect(otherTopic).toHaveLength(0)
      }).pipe(Effect.scoped)
    )

    it.live("keeps one publisher's order on another node (1,000 envelopes, text and binary)", () =>
      Effect.gen(function* () {
        const a = yield* another(layer)
        const b = yield* another(layer)
        const topic = freshTopic("cross-order")
        const got: Array<string> = []
        yield* b.subscribe(topic, (e) => {
          if (e._tag !== "Broadcast") return
          got.push(typeof e.message === "string" ? e.message : `bin:${[...e.message].join(",")}`)
        })
        const expected: Array<string> = []
        for (let i = 0; i < 1000; i++) {
          if (i % 2 === 0) {
            yield* a.publish(broadcast(topic, String(i)))
            expected.push(String(i))
          } else {
            yield* a.publish(broadcast(topic, new Uint8Array([i & 255, 0, 255])))
            expected.push(`bin:${i & 255},0,255`)
          }
        }
        yield* within(() => got.length === 1000, 10_000)
        expect(got).toEqual(expected)
      }).pipe(Effect.scoped)
    )

    it.live("carries presence envelopes and stops delivering to a node whose subscription ended", () =>
      Effect.gen(function* () {
        const a = yield* another(layer)
        const b = yield* another(layer)
        const topic = freshTopic("cross-presence")
        const member = { id: "c1", node: "node-a", meta: { nick: "ada", since: 3 } }
        const onB: Array<Backplane.Envelope> = []
        const kept: Array<Backplane.Envelope> = []
        const scope = yield* Scope.make()
        yield* b.subscribe(topic, (e) => onB.push(e)).pipe(Scope.provide(scope))
        yield* a.subscribe(topic, (e) => kept.push(e))
        yield* a.publish(presence(topic, "node-a", 1, { _tag: "Joined", topic: "room", member }))
        yield* within(() => onB.length === 1 && kept.length === 1)
        expect(onB[0]).toEqual(presence(topic, "node-a", 1, { _tag: "Joined", topic: "room", member }))
        yield* Scope.close(scope, Exit.void)
        yield* a.publish(presence(topic, "node-a", 2, { _tag: "Left", topic: "room", member }))
        yield* within(() => kept.length === 2)
        yield* Effect.sleep(50)
        expect(onB).toHaveLength(1)
      }).pipe(Effect.scoped)
    )
  })
}
