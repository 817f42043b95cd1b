import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as History from "../src/History.ts"
import * as Contract from "./historyContract.ts"

Contract.run("History (in memory)", {
  layer: History.layer,
  entryBytes: History.entryBytes,
  roomBytes: History.roomBytes
})

describe("History", () => {
  it.effect("charges 2 bytes per UTF-16 code unit of sender id, nick and text, plus overheads", () =>
    Effect.gen(function* () {
      const history = yield* History.History
      const e: History.Entry = { from: "n/c1", nick: "zoë", text: "héllo 👋", at: 0 }
      yield* history.add("room", e)
      expect(History.entryBytes(e)).toBe(2 * (4 + 3 + 8) + History.entryOverhead)
      expect((yield* history.size).bytes).toBe(2 * 4 + History.roomOverhead + History.entryBytes(e))
    }).pipe(Effect.provide(History.layer(History.defaults)))
  )
})
