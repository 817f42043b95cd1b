import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as History from "../src/History.ts"

const entry = (text: string, nick = "ada"): History.Entry => ({ from: "node/c1", nick, text, at: 0 })
const texts = (entries: ReadonlyArray<History.Entry>) => entries.map((e) => e.text)
const withHistory = (options: Partial<History.Options>) =>
  Effect.provide(History.layer({ ...History.defaults, ...options }))

describe("History", () => {
  it.effect("keeps a room's messages oldest first, and rooms apart", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      yield* history.add("a", entry("one"))
      yield* history.add("b", entry("other"))
      yield* history.add("a", entry("two"))
      expect(texts(yield* history.get("a"))).toEqual(["one", "two"])
      expect(texts(yield* history.get("b"))).toEqual(["other"])
    }).pipe(withHistory({}))
  )

  it.effect("stores nothing for a room nobody said anything in", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      for (let i = 0; i < 1000; i++) expect(yield* history.get(`room-${i}`)).toEqual([])
      expect(yield* history.size).toEqual({ rooms: 0, messages: 0, bytes: 0 })
    }).pipe(withHistory({}))
  )

  it.effect("keeps at most perRoom messages in a room, dropping the oldest", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      for (const text of ["1", "2", "3", "4", "5"]) yield* history.add("a", entry(text))
      expect(texts(yield* history.get("a"))).toEqual(["3", "4", "5"])
      const size = yield* history.size
      expect(size.messages).toBe(3)
      expect(size.bytes).toBe(History.roomBytes("a") + 3 * History.entryBytes(entry("3")))
    }).pipe(withHistory({ perRoom: 3 }))
  )

  it.effect("evicts the least recently used room when there are more than maxRooms", () =>
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

  it.effect("counts a join (get) and a message (add) as uses of a room", () =>
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

  it.effect("evicts least recently used rooms until the byte budget holds", () => {
    const big = "x".repeat(1000)
    const room = History.roomBytes("r0") + History.entryBytes(entry(big)) // every room costs the same
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

  it.effect("trims the room in use, oldest first, when it alone exceeds the budget", () => {
    const text = "y".repeat(500)
    const budget = History.roomBytes("a") + 2.5 * History.entryBytes(entry(text))
    return Effect.gen(function* () {
      const history = yield* History.History
      yield* history.add("b", entry(text))
      for (const n of ["1", "2", "3"]) yield* history.add("a", entry(n + text.slice(1)))
      expect(texts(yield* history.get("b"))).toEqual([])
      expect((yield* history.get("a")).map((e) => e.text[0])).toEqual(["2", "3"])
      expect((yield* history.size).bytes).toBeLessThanOrEqual(budget)
    }).pipe(withHistory({ maxBytes: budget }))
  })

  it.effect("does not keep a message larger than the whole budget, nor evict for it", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      yield* history.add("a", entry("small"))
      yield* history.add("b", entry("z".repeat(2000)))
      expect(texts(yield* history.get("a"))).toEqual(["small"])
      expect(yield* history.get("b")).toEqual([])
      expect((yield* history.size).rooms).toBe(1)
    }).pipe(withHistory({ maxBytes: 2000 }))
  )

  it.effect("charges 2 bytes per UTF-16 code unit of sender id, nick and text, plus overheads", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      const e: History.Entry = { from: "n/c1", nick: "zoë", text: "héllo 👋", at: 0 }
      yield* history.add("room", e)
      expect(History.entryBytes(e)).toBe(2 * (4 + 3 + 8) + History.entryOverhead)
      expect((yield* history.size).bytes).toBe(2 * 4 + History.roomOverhead + History.entryBytes(e))
    }).pipe(withHistory({}))
  )

  it.effect("keeps nothing when a limit is zero", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      yield* history.add("a", entry("a"))
      expect(yield* history.size).toEqual({ rooms: 0, messages: 0, bytes: 0 })
    }).pipe(withHistory({ perRoom: 0 }))
  )
})
