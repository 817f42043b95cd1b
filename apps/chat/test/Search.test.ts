import { describe, expect, it } from "@effect/vitest"
import { WorkerPool } from "@switchboard/core/jobs"
import { Effect } from "effect"
import type * as History from "../src/History.ts"
import * as Search from "../src/Search.ts"

/** Entries oldest first, one millisecond apart, as History keeps them. */
const historyOf = (...texts: ReadonlyArray<string>): ReadonlyArray<History.Entry> =>
  texts.map((text, i) => ({ from: `node/c${i}`, nick: "ada", text, at: 1_000 + i }))
const found = (history: ReadonlyArray<History.Entry>, query: string) =>
  Search.search(history, query).hits.map((hit) => hit.text)

describe("Search.terms", () => {
  it("folds case, drops punctuation and repeats, and keeps at most maxTerms words", () => {
    expect(Search.terms("Hello, HELLO wörld!")).toEqual(["hello", "wörld"])
    expect(Search.terms("?! … --")).toEqual([])
    expect(Search.terms("a b c d e f g h i j")).toEqual(["a", "b", "c", "d", "e", "f", "g", "h"])
  })

  it("reads only the first maxQueryChars characters of a query", () => {
    expect(Search.terms(`${"x".repeat(Search.limits.maxQueryChars - 1)} tail`)).toEqual([
      "x".repeat(Search.limits.maxQueryChars - 1)
    ])
  })
})

describe("Search.search", () => {
  it("ranks by the number of terms matched, then newest first", () => {
    const history = historyOf("red apple", "green apple pie", "red", "blue sky", "apple pie, red and green")
    const results = Search.search(history, "red apple pie")
    expect(results.total).toBe(4)
    expect(results.hits.map((hit) => [hit.text, hit.score])).toEqual([
      ["apple pie, red and green", 3],
      ["green apple pie", 2],
      ["red apple", 2],
      ["red", 1]
    ])
  })

  it("orders equal scores by time, and equal times by place in the history", () => {
    const history: ReadonlyArray<History.Entry> = [
      { from: "n/1", nick: "ada", text: "late cat", at: 5 },
      { from: "n/2", nick: "bob", text: "early cat", at: 1 },
      { from: "n/3", nick: "cy", text: "same time cat", at: 5 }
    ]
    expect(found(history, "cat")).toEqual(["same time cat", "late cat", "early cat"])
  })

  it("returns the sender, nick and time of each match with its score", () => {
    const [first] = Search.search(historyOf("hello there"), "HELLO").hits
    expect(first).toEqual({ from: "node/c0", nick: "ada", text: "hello there", at: 1_000, score: 1 })
  })

  it("ignores case, also where lower case alone would not (ß, final sigma)", () => {
    const history = historyOf("Die Straße ist lang", "ΟΔΟΣ", "nothing here")
    expect(found(history, "STRASSE")).toEqual(["Die Straße ist lang"])
    expect(found(history, "straße")).toEqual(["Die Straße ist lang"])
    expect(found(history, "οδος")).toEqual(["ΟΔΟΣ"])
    expect(found(history, "οδοσ")).toEqual(["ΟΔΟΣ"])
  })

  it("matches composed and decomposed accents alike, and keeps accents apart from their absence", () => {
    const history = historyOf("un café noir", "cafe\u0301 au lait", "cafeteria")
    expect(found(history, "café")).toEqual(["cafe\u0301 au lait", "un café noir"])
    expect(found(history, "cafe\u0301")).toEqual(["cafe\u0301 au lait", "un café noir"])
    expect(found(history, "cafe")).toEqual(["cafeteria"])
  })

  it("finds words in scripts written without spaces", () => {
    const history = historyOf("我住在东京。", "東京タワーに行った", "I live in Tokyo")
    expect(found(history, "东京")).toEqual(["我住在东京。"])
    expect(found(history, "東京")).toEqual(["東京タワーに行った"])
  })

  it("matches a term at the start of a word, not inside it", () => {
    const history = historyOf("searching the logs", "research notes", "a search")
    expect(found(history, "search")).toEqual(["a search", "searching the logs"])
  })

  it("finds nothing for a query without words, and nothing in an empty history", () => {
    expect(Search.search(historyOf("hello"), "?!")).toEqual({ total: 0, hits: [] })
    expect(Search.search([], "hello")).toEqual({ total: 0, hits: [] })
  })

  it("returns at most maxResults matches, the newest, and counts them all", () => {
    const history = historyOf(...Array.from({ length: 100 }, (_, i) => `match ${i}`))
    const results = Search.search(history, "match")
    expect(results.total).toBe(100)
    expect(results.hits).toHaveLength(Search.limits.maxResults)
    expect(results.hits[0]?.text).toBe("match 99")
    expect(results.hits.at(-1)?.text).toBe(`match ${100 - Search.limits.maxResults}`)
    expect(Search.search(history, "match", 3).hits.map((hit) => hit.text)).toEqual(["match 99", "match 98", "match 97"])
  })
})

describe("Search.SearchHistory", () => {
  it.effect("runs search as a job, and refuses a query longer than maxQueryChars", () =>
    Effect.gen(function* () {
      const history = historyOf("red apple", "red")
      expect(yield* WorkerPool.run(Search.SearchHistory, { query: "red apple", history })).toEqual(
        Search.search(history, "red apple")
      )
      const tooLong = yield* Effect.flip(
        WorkerPool.run(Search.SearchHistory, { query: "x".repeat(Search.limits.maxQueryChars + 1), history })
      )
      expect(tooLong.reason._tag).toBe("InvalidPayload")
    }).pipe(Effect.provide(WorkerPool.layerInline(Search.Handlers)))
  )
})
