import { describe, expect, it } from "@effect/vitest"
import { Behavior, Subprotocol } from "@switchboard/core"
import { TestClient } from "@switchboard/testing"
import { Effect } from "effect"

const request = { path: "/", query: new URLSearchParams(), headers: {}, remoteAddress: "127.0.0.1" }
const negotiate = (options: Subprotocol.Options, header: string | ReadonlyArray<string> | undefined) =>
  Subprotocol.negotiate(Subprotocol.resolve(options), header, request)
const protocolOf = (outcome: Subprotocol.Outcome) => (outcome._tag === "Chosen" ? outcome.protocol : outcome.status)

describe("Subprotocol", () => {
  it("parses an offer: comma-separated tokens, several header lines joined, malformed ones refused", () => {
    expect(Subprotocol.parseOffer(undefined)).toEqual([])
    expect(Subprotocol.parseOffer("chat")).toEqual(["chat"])
    expect(Subprotocol.parseOffer(" v2 ,v1")).toEqual(["v2", "v1"])
    expect(Subprotocol.parseOffer(["v2", "v1, v0"])).toEqual(["v2", "v1", "v0"])
    for (const bad of ["", "v1,", "v1, v1", "v 1", "v1;q=1", "chat/1", "é"]) {
      expect(Subprotocol.parseOffer(bad)).toBeUndefined()
    }
  })

  it("never chooses a protocol the route does not speak", () => {
    expect(protocolOf(negotiate({}, "chat"))).toBeUndefined()
    expect(protocolOf(negotiate({ protocols: ["v1"] }, "v2"))).toBeUndefined()
    expect(protocolOf(negotiate({ protocols: ["v1"] }, undefined))).toBeUndefined()
  })

  it("prefers the server's order over the client's", () => {
    expect(protocolOf(negotiate({ protocols: ["v3", "v2", "v1"] }, "v1, v2"))).toBe("v2")
    expect(protocolOf(negotiate({ protocols: ["v1", "v2"] }, "v2, v1"))).toBe("v1")
  })

  it("refuses with 400 when required and nothing matches, and for a malformed offer", () => {
    const refused = negotiate({ protocols: ["v2"], requireProtocol: true }, "v1")
    expect(refused).toMatchObject({ _tag: "Refused", status: 400, cause: "unacceptable" })
    expect(refused._tag === "Refused" && refused.message).toContain("speaks v2")
    expect(negotiate({ protocols: ["v2"], requireProtocol: true }, undefined)).toMatchObject({ status: 400 })
    expect(negotiate({ protocols: ["v2"] }, "v2,,")).toMatchObject({ status: 400, cause: "malformed" })
  })

  it("runs selectProtocol on the client's offer; a throw or an answer not offered is a 500", () => {
    const newest: Subprotocol.Select = (offered) => [...offered].sort().at(-1)
    expect(protocolOf(negotiate({ selectProtocol: newest }, "v1, v3, v2"))).toBe("v3")
    expect(protocolOf(negotiate({ selectProtocol: newest }, undefined))).toBeUndefined()
    expect(negotiate({ selectProtocol: () => "v9" }, "v1")).toMatchObject({ status: 500, cause: "select_failed" })
    const boom: Subprotocol.Select = () => {
      throw new Error("boom")
    }
    expect(negotiate({ selectProtocol: boom }, "v1")).toMatchObject({ status: 500, cause: "select_failed" })
    expect(negotiate({ selectProtocol: () => undefined, requireProtocol: true }, "v1")).toMatchObject({ status: 400 })
  })

  it("resolves a route's settings over the server's, field by field, and checks them", () => {
    const server = { protocols: ["v1"], requireProtocol: true }
    expect(Subprotocol.resolve({}, server)).toEqual({ protocols: ["v1"], select: undefined, required: true })
    expect(Subprotocol.resolve({ requireProtocol: false }, server).required).toBe(false)
    // a route's own selectProtocol replaces the server's protocols, and the reverse
    const select: Subprotocol.Select = () => undefined
    expect(Subprotocol.resolve({ selectProtocol: select }, server)).toEqual({ protocols: [], select, required: true })
    expect(Subprotocol.resolve({ protocols: ["v2"] }, { selectProtocol: select }).select).toBeUndefined()
    expect(Subprotocol.resolve(undefined)).toBe(Subprotocol.none)
    expect(() => Subprotocol.resolve({ protocols: ["a,b"] })).toThrow(/not a valid subprotocol name/)
    expect(() => Subprotocol.resolve({ protocols: ["a", "a"] })).toThrow(/listed twice/)
    expect(() => Subprotocol.resolve({ protocols: ["a"], selectProtocol: select })).toThrow(/not both/)
    expect(() => Subprotocol.resolve({ requireProtocol: true })).toThrow(/speaks no subprotocol/)
  })

  it.effect("is what conn.protocol says in a TestClient", () =>
    Effect.gen(function* () {
      const Which = Behavior.make({ onMessage: (conn) => conn.send(conn.protocol ?? "(none)") })
      const v2 = yield* TestClient.connect(Which, { protocol: "v2" })
      yield* v2.send("?")
      expect(yield* v2.expectText).toBe("v2")
      const none = yield* TestClient.connect(Which)
      yield* none.send("?")
      expect(yield* none.expectText).toBe("(none)")
    }).pipe(Effect.scoped)
  )
})
