import { describe, expect, it } from "@effect/vitest"
import { Backplane } from "@switchboard/core"
import { BackplaneConformance } from "@switchboard/testing"
import { Context, Effect, Layer } from "effect"

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
      const error = yield* Effect.flip(a.publish({ _tag: "Joined", topic: "t", origin: "n", member }))
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
})
