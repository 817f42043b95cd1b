/**
 * Full-text search over a room's history, run as a job on the worker pool.
 * `main.ts` sends a snapshot of the room's history with the query
 * (`SearchHistory`, bounded by `History`'s limits); a worker thread, or the
 * event loop when `WORKERS=0`, runs `search` on it (`Handlers`, imported by
 * `main.ts` and by the worker entry, `worker.ts`).
 *
 * Words are what `Intl.Segmenter` calls word-like, in any script: Latin and
 * Greek split at spaces and punctuation, Chinese and Japanese by ICU's
 * dictionaries ("我住在东京" is 我 · 住在 · 东京), so a word in a text without
 * spaces is still found. Before that, text and query are folded alike:
 * NFKC (a composed "é" and "e" + U+0301 are one letter, "ﬁ" is "fi"), then
 * upper case and back to lower case, which goes further than lower case
 * alone ("Straße", "STRASSE" and "strasse" are one word), and final sigma
 * is sigma. Accents stay: "café" is not "cafe".
 *
 * A query is at most `maxQueryChars` characters; its first `maxTerms`
 * distinct words are its terms. A term matches a word it begins ("search"
 * finds "searching"). A message matches when it has at least one term; it
 * scores the number of distinct terms it has; matches are ranked by score,
 * then newest first, and the first `maxResults` are returned with the total.
 *
 * The cost is the history's size: every message that contains a term
 * somewhere is folded and segmented, about 4 million characters for a room
 * filling the default 8 MiB history (README: "Why search is a job").
 *
 * @since 0.1.0
 */
import { Job } from "@switchboard/core/jobs"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as History from "./History.ts"

/**
 * The bounds: query length, terms taken from a query, results returned.
 *
 * @since 0.1.0
 * @category constants
 */
export const limits = { maxQueryChars: 200, maxTerms: 8, maxResults: 20 } as const

/**
 * A query as clients may send it: 1 to `maxQueryChars` characters.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Query = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(limits.maxQueryChars))

const EntrySchema = Schema.Struct({ from: Schema.String, nick: Schema.String, text: Schema.String, at: Schema.Number })

/**
 * A matching message and its score (the query's terms it has).
 *
 * @since 0.1.0
 * @category models
 */
export interface Hit extends History.Entry {
  readonly score: number
}

/**
 * What a search finds: the best `maxResults` matches, best first, and how
 * many messages matched in all.
 *
 * @since 0.1.0
 * @category models
 */
export interface Results {
  readonly total: number
  readonly hits: ReadonlyArray<Hit>
}

const segmenter = new Intl.Segmenter("und", { granularity: "word" })

/** NFKC, then upper and lower case (a closer case folding than lower case alone), with final sigma as sigma. */
const fold = (text: string): string => text.normalize("NFKC").toUpperCase().toLowerCase().replaceAll("ς", "σ")

const wordsOf = (folded: string): Array<string> => {
  const words: Array<string> = []
  for (const segment of segmenter.segment(folded)) if (segment.isWordLike) words.push(segment.segment)
  return words
}

/**
 * The terms of a query: its first `maxTerms` distinct words, folded. Empty
 * when the query has no word (`"?!"`), which `main.ts` answers without a job.
 *
 * @example
 * ```ts
 * terms("Hello, HELLO wörld") // ["hello", "wörld"]
 * ```
 *
 * @since 0.1.0
 * @category searching
 */
export const terms = (query: string): ReadonlyArray<string> =>
  Array.from(new Set(wordsOf(fold(query.slice(0, limits.maxQueryChars))))).slice(0, limits.maxTerms)

/**
 * Searches `history` (oldest first, as `History` keeps it) for `query`.
 *
 * @example
 * ```ts
 * const history = [
 *   { from: "n/1", nick: "ada", text: "Search is a job", at: 1 },
 *   { from: "n/2", nick: "bob", text: "a job on a thread", at: 2 }
 * ]
 * search(history, "job search")
 * // { total: 2, hits: [{ …text: "Search is a job", score: 2 }, { …text: "a job on a thread", score: 1 }] }
 * ```
 *
 * @since 0.1.0
 * @category searching
 */
export const search = (
  history: ReadonlyArray<History.Entry>,
  query: string,
  maxResults: number = limits.maxResults
): Results => {
  const wanted = terms(query)
  const matches: Array<{ readonly entry: History.Entry; readonly index: number; readonly score: number }> = []
  if (wanted.length > 0) {
    history.forEach((entry, index) => {
      const folded = fold(entry.text)
      // a term that begins a word occurs in the text: segment only the texts where one does
      if (!wanted.some((term) => folded.includes(term))) return
      const words = wordsOf(folded)
      let score = 0
      for (const term of wanted) if (words.some((word) => word.startsWith(term))) score++
      if (score > 0) matches.push({ entry, index, score })
    })
  }
  // by score, then newest first (by time, then by place in the history: later entries are newer)
  matches.sort((a, b) => b.score - a.score || b.entry.at - a.entry.at || b.index - a.index)
  const hits = matches.slice(0, Math.max(0, maxResults)).map(({ entry, score }) => ({ ...entry, score }))
  return { total: matches.length, hits }
}

/**
 * The job: a query and a snapshot of the room's history in, what `search`
 * finds out. It cannot fail except by a `JobError` (a timeout, a crashed
 * worker, a full queue).
 *
 * @since 0.1.0
 * @category jobs
 */
export const SearchHistory = Job.make("SearchHistory", {
  payload: Schema.Struct({ query: Query, history: Schema.Array(EntrySchema) }),
  success: Schema.Struct({
    total: Schema.Int,
    hits: Schema.Array(Schema.Struct({ ...EntrySchema.fields, score: Schema.Int }))
  })
})

/**
 * The chat's job handlers: the server runs them inline when `WORKERS=0`,
 * each worker thread runs them otherwise.
 *
 * @since 0.1.0
 * @category jobs
 */
export const Handlers = Job.handlers([SearchHistory], {
  SearchHistory: ({ query, history }) => Effect.sync(() => search(history, query))
})
