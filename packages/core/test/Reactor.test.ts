import { describe, expect, it } from "@effect/vitest"
import { Behavior, Keepalive, type PreparedMessage, type Reactor, ServerOptions, Supervisor } from "@switchboard/core"
import { Effect } from "effect"

/** What the actor wrote, and through which method. */
type Write =
  | { readonly via: "send"; readonly message: string | Uint8Array }
  | { readonly via: "sendUtf8"; readonly utf8: Uint8Array }

/** A transport that records writes; its `sendUtf8` makes it a reactor that takes text as bytes. */
class RecordingTransport implements Reactor.Transport {
  readonly writes: Array<Write> = []
  actor: Reactor.Actor | undefined = undefined
  bufferedAmount = 0
  send(message: string | Uint8Array): void {
    this.writes.push({ via: "send", message })
  }
  sendUtf8(utf8: Uint8Array): void {
    this.writes.push({ via: "sendUtf8", utf8 })
  }
  sendFragment(): void {}
  sendPrepared(_prepared: PreparedMessage.PreparedMessage): void {}
  ping(): void {}
  close(code: number): void {
    this.actor?.closedUnsafe(code, "")
  }
  terminate(): void {
    this.actor?.closedUnsafe(1006, "")
  }
  pause(): void {}
  resume(): void {}
  flush(): void {}
}

const accept = (behavior: Behavior.Behavior<never, never, never>) =>
  Effect.gen(function* () {
    const route = ServerOptions.route(behavior, { keepalive: false, closeTimeout: false }, { path: "/" })
    const supervisor = yield* Supervisor.make({ resolution: Keepalive.resolutionFor([route.settings.timers]) })
    const transport = new RecordingTransport()
    const actor = supervisor.accept(route, transport, {
      request: { path: "/", query: new URLSearchParams(), headers: {}, remoteAddress: "127.0.0.1" },
      auth: undefined,
      protocol: undefined
    })
    transport.actor = actor
    return { actor, transport }
  })

const utf8 = (text: string) => new TextEncoder().encode(text)

describe("Reactor (the actor's side of the boundary)", () => {
  it.effect("writes a text it is sent on unchanged as the bytes it arrived in, and encodes any other", () =>
    Effect.gen(function* () {
      const Relay = Behavior.make({
        onMessage: (conn, message) =>
          Effect.gen(function* () {
            yield* conn.send(message)
            // equal content in another string object: the same bytes
            if (typeof message === "string") yield* conn.send([...message].join(""))
            yield* conn.send(`${String(message)}!`)
          })
      })
      const { actor, transport } = yield* accept(Relay)
      const bytes = utf8("héllo ✓")
      actor.receiveUnsafe("héllo ✓", bytes)
      // a text whose bytes the reactor did not give, and a binary message
      actor.receiveUnsafe("plain")
      actor.receiveUnsafe(new Uint8Array([1, 2]))
      yield* actor.idle
      expect(transport.writes).toEqual([
        { via: "sendUtf8", utf8: bytes },
        { via: "sendUtf8", utf8: bytes },
        { via: "send", message: "héllo ✓!" },
        { via: "send", message: "plain" },
        { via: "send", message: "plain" },
        { via: "send", message: "plain!" },
        { via: "send", message: new Uint8Array([1, 2]) },
        { via: "send", message: "1,2!" }
      ])
      expect(transport.writes[0]?.via === "sendUtf8" && transport.writes[0].utf8).toBe(bytes)
    })
  )

  it.effect("does not write a handled text's bytes for it once its callback has ended", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const Late = Behavior.make({
        init: () => Effect.succeed(""),
        onMessage: (conn, message, previous: string) =>
          Effect.as(
            Effect.sync(() => void seen.push(String(message))),
            String(message)
          ).pipe(Effect.tap(() => (previous === "" ? Effect.void : conn.send(previous))))
      })
      const { actor, transport } = yield* accept(Late)
      actor.receiveUnsafe("first", utf8("first"))
      actor.receiveUnsafe("second", utf8("second"))
      yield* actor.idle
      expect(seen).toEqual(["first", "second"])
      // "first" went out while "second" was handled: encoded, not from another message's bytes
      expect(transport.writes).toEqual([{ via: "send", message: "first" }])
    })
  )

  it.effect("a connection whose messages are handled hibernates: it keeps no mailbox until the next one", () =>
    Effect.gen(function* () {
      const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
      const { actor, transport } = yield* accept(Echo)
      const mailboxOf = () => (actor as unknown as { readonly mailbox: unknown }).mailbox
      expect(mailboxOf()).toBeUndefined()
      actor.receiveUnsafe("one")
      expect(mailboxOf()).toBeDefined()
      yield* actor.idle
      expect(mailboxOf()).toBeUndefined()
      // and it wakes again as before
      actor.receiveUnsafe("two")
      yield* actor.idle
      expect(transport.writes).toEqual([
        { via: "send", message: "one" },
        { via: "send", message: "two" }
      ])
      expect(mailboxOf()).toBeUndefined()
    })
  )
})
