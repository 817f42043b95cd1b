/**
 * What every history does, whatever keeps it: run by History.test.ts on the
 * in-memory one and by RedisHistory.integration.test.ts on the Redis one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import * as History from "../src/History.ts"

export interface Subject {
  /** A fresh, empty history with these limits. */
  readonly layer: (options: History.Options) => Layer.Layer<History.History, unknown>
  readonly entryBytes: (entry: History.Entry) => number
  readonly roomBytes: (room: string) => number
}

export const entry = (text: string, nick = "ada"): History.Entry => ({ from: "node/c1", nick, text, at: 0 })
const texts = (entries: ReadonlyArray<History.Entry>) => entries.map((e) => e.text)

export const run = (name: string, subject: Subject) =>
  describe(`${name}: the history contract`, () => {
    const withHistory = (options: Partial<History.Options>) =>
      Effect.provide(subject.layer({ ...History.defaults, ...options }))

    it.live("keeps a room's messages oldest first, and rooms apart", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("a", entry("one"))
        yield* history.add("b", entry("other"))
        yield* history.add("a", entry("two"))
        expect(texts(yield* history.get("a"))).toEqual(["one", "two"])
        expect(texts(yield* history.get("b"))).toEqual(["other"])
        expect((yield* history.get("a"))[0]).toEqual(entry("one"))
      }).pipe(withHistory({}))
    )

    it.live("stores nothing for a room nobody said anything in", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        for (let i = 0; i < 200; i++) expect(yield* history.get(`room-${i}`)).toEqual([])
        expect(yield* history.size).toEqual({ rooms: 0, messages: 0, bytes: 0 })
      }).pipe(withHistory({}))
    )

    it.live("keeps at most perRoom messages in a room, dropping the oldest", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        for (const text of ["1", "2", "3", "4", "5"]) yield* history.add("a", entry(text))
        expect(texts(yield* history.get("a"))).toEqual(["3", "4", "5"])
        const size = yield* history.size
        expect(size.messages).toBe(3)
        expect(size.bytes).toBe(subject.roomBytes("a") + 3 * subject.entryBytes(entry("3")))
      }).pipe(withHistory({ perRoom: 3 }))
    )

    it.live("evicts the least recently used room when there are more than maxRooms", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("a", entry("a"))
        yield* history.add("b", entry("b"))
        yield* history.add("c", entry("c"))
        yield* history.add("d", entry("d"))
        expect(texts(yield* history.get("a"))).toEqual([])
        expect((yield* history.size).rooms).toBe(3)
        expect(texts(yield* history.get("b"))).toEqual(["b"])
      }).pipe(withHistory({ maxRooms: 3 }))
    )

    it.live("counts a join (get) and a message (add) as uses of a room", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("a", entry("a"))
        yield* history.add("b", entry("b"))
        yield* history.add("c", entry("c"))
        yield* history.get("a") // a joins: b is now the least recently used
        yield* history.add("d", entry("d"))
        expect(texts(yield* history.get("b"))).toEqual([])
        yield* history.add("c", entry("c2")) // c speaks: a is now the least recently used
        yield* history.add("e", entry("e"))
        expect(texts(yield* history.get("a"))).toEqual([])
        expect(texts(yield* history.get("c"))).toEqual(["c", "c2"])
        expect(texts(yield* history.get("d"))).toEqual(["d"])
        expect(texts(yield* history.get("e"))).toEqual(["e"])
      }).pipe(withHistory({ maxRooms: 3 }))
    )

    it.live("evicts least recently used rooms until the byte budget holds", () => {
      const big = "x".repeat(1000)
      const room = subject.roomBytes("r0") + subject.entryBytes(entry(big)) // every room costs the same
      return Effect.gen(function* () {
        const history = yield* History.History
        for (let i = 0; i < 10; i++) yield* history.add(`r${i}`, entry(big))
        const size = yield* history.size
        expect(size.rooms).toBe(3)
        expect(size.bytes).toBe(3 * room)
        for (let i = 0; i < 7; i++) expect(yield* history.get(`r${i}`)).toEqual([])
        for (let i = 7; i < 10; i++) expect(texts(yield* history.get(`r${i}`))).toEqual([big])
      }).pipe(withHistory({ maxBytes: 3.5 * room }))
    })

    it.live("trims the room in use, oldest first, when it alone exceeds the budget", () => {
      const text = "y".repeat(500)
      const budget = subject.roomBytes("a") + 2.5 * subject.entryBytes(entry(text))
      return Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("b", entry(text))
        for (const n of ["1", "2", "3"]) yield* history.add("a", entry(n + text.slice(1)))
        expect(texts(yield* history.get("b"))).toEqual([])
        expect((yield* history.get("a")).map((e) => e.text[0])).toEqual(["2", "3"])
        expect((yield* history.size).bytes).toBeLessThanOrEqual(budget)
      }).pipe(withHistory({ maxBytes: budget }))
    })

    it.live("does not keep a message larger than the whole budget, nor evict for it", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("a", entry("small"))
        yield* history.add("b", entry("z".repeat(2000)))
        expect(texts(yield* history.get("a"))).toEqual(["small"])
        expect(yield* history.get("b")).toEqual([])
        expect((yield* history.size).rooms).toBe(1)
      }).pipe(withHistory({ maxBytes: 2000 }))
    )

    it.live("keeps nothing when a limit is zero", () =>
      Effect.gen(function* () {
        const history = yield* History.History
        yield* history.add("a", entry("a"))
        expect(yield* history.size).toEqual({ rooms: 0, messages: 0, bytes: 0 })
      }).pipe(withHistory({ perRoom: 0 }))
    )
  })
