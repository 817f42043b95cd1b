/**
 * A test kit for behaviours: `TestClient.connect` runs a behaviour's real
 * actor, mailbox and lifecycle timers against an in-memory reactor — no
 * socket, no port, no waiting. With `it.effect` (which provides `TestClock`),
 * a keepalive scenario of 60 s + 100 s runs in milliseconds.
 *
 * The client behaves like a well-mannered peer: it answers the server's close
 * frame, and it reads frames only when the test asks (`next`, `expectText`,
 * …), so the server's `send` backpressure is real — unread frames count in
 * `conn.bufferedAmount`.
 *
 * Services the behaviour needs (a hub, a job pool) come from the test's
 * context: provide their layers to the test as you would to a server.
 *
 * @example
 * ```ts
 * import { expect, it } from "@effect/vitest"
 * import * as Effect from "effect/Effect"
 * import { TestClock } from "effect/testing"
 * import { Behavior } from "@switchboard/core"
 * import { TestClient } from "@switchboard/testing"
 *
 * const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * it.effect("closes a client that never answers a ping", () =>
 *   Effect.gen(function*() {
 *     const client = yield* TestClient.connect(Echo, {
 *       keepalive: { pingAfter: "60 seconds", closeAfterNoPong: "100 seconds" }
 *     })
 *     yield* TestClock.adjust("60 seconds")
 *     yield* client.expectPing
 *     yield* TestClock.adjust("100 seconds")
 *     expect((yield* client.closed).code).toBe(1006)
 *   }))
 * ```
 *
 * @since 0.1.0
 */
import {
  type Behavior,
  type Connection,
  Keepalive,
  type Message,
  type PreparedMessage,
  type Reactor,
  ServerOptions,
  Supervisor
} from "@switchboard/core"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Frame from "./Frame.ts"
import { describe } from "./Frame.ts"
import { type Closed, MemoryTransport } from "./internal/memoryTransport.ts"
import { UnexpectedFrame } from "./TestClientError.ts"

/**
 * Options of `connect`: the route's connection settings, the upgrade request
 * the behaviour sees, and how the client behaves.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A = unknown> extends Connection.Options {
  /** The upgrade request's path, query and headers. Default: path "/", no query, no headers. */
  readonly request?: Partial<Connection.Request>
  readonly remoteAddress?: string
  /**
   * What an `authenticate` hook would have attached (`conn.auth`): required
   * when the behaviour declares its type (`Connection.Connection<I, A>`).
   */
  readonly auth?: A
  /** The subprotocol the handshake would have chosen (`conn.protocol`). Default: none. */
  readonly protocol?: string
  /** Whether the client answers the server's close frame. Default true; false simulates a peer that ignores it. */
  readonly answerClose?: boolean
}

/**
 * An in-memory client connected to a behaviour.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestClient<I = never> {
  /** The server side of the connection, as the behaviour sees it (use it to `tell`). */
  readonly connection: Connection.Connection<I>
  /** Sends a text or binary message. While the server has paused reading, it is held back (as TCP would). */
  send(message: Message.Message): Effect.Effect<void>
  /**
   * Sends one fragment of a message; `fin` on the last. The kind comes from
   * the first fragment (text if a string). A route that receives streams
   * (`onStream`) gets each fragment as a piece of the message's stream as
   * it is sent; any other route gets the message whole after the last.
   */
  sendFragment(data: Message.Message, fin: boolean): Effect.Effect<void>
  /** Sends a ping: it counts as activity for keepalive and reaches `onPing` (a real reactor also answers with a pong, which the kit does not model). */
  readonly ping: Effect.Effect<void>
  /** `ping` with a payload (at most 125 bytes on a real socket). */
  pingWith(payload: Uint8Array): Effect.Effect<void>
  /** Sends a pong, as an answer to the server's keepalive ping. */
  readonly pong: Effect.Effect<void>
  /** Starts the close handshake; the server answers with the same code. */
  close(code?: number, reason?: string): Effect.Effect<void>
  /** Drops the TCP connection without a close frame (the server sees 1006). */
  readonly drop: Effect.Effect<void>
  /**
   * The next frame from the server; waits for one. Fails if the connection
   * closes with nothing left to read. A streamed message (`sendStream`) is
   * read whole, as one `Text` or `Binary` frame, its fragments taken as they
   * arrive (so its backpressure is real); a ping that came between its
   * fragments is read after it, and a close frame in the middle discards the
   * unfinished message (as a browser does) and is returned.
   */
  readonly next: Effect.Effect<Frame.Frame, UnexpectedFrame>
  /** The next frame as it was written: a streamed message's fragments one by one. */
  readonly nextFrame: Effect.Effect<Frame.Frame, UnexpectedFrame>
  /** Reads the next frame, which must be a text message. */
  readonly expectText: Effect.Effect<string, UnexpectedFrame>
  /** Reads the next frame, which must be a binary message. */
  readonly expectBinary: Effect.Effect<Uint8Array, UnexpectedFrame>
  /** Reads the next frame, which must be a ping. */
  readonly expectPing: Effect.Effect<void, UnexpectedFrame>
  /** Reads the next frame, which must be a close frame (with `code`, if given). */
  expectClose(code?: number): Effect.Effect<{ readonly code: number; readonly reason: string }, UnexpectedFrame>
  /** The framed-once messages (hub fan-out) written to this client, in order: the same object reaches every subscriber. */
  readonly framed: ReadonlyArray<PreparedMessage.PreparedMessage>
  /** Frames received and not yet read. */
  readonly pending: ReadonlyArray<Frame.Frame>
  /** True while the server has stopped reading from this client (its mailbox is full). */
  readonly paused: boolean
  /** How many times the server paused reading. */
  readonly pauses: number
  /** Waits until the TCP connection is gone: the close code of the handshake, or 1006 if it was dropped. */
  readonly closed: Effect.Effect<Closed>
  /** Waits until the behaviour's `onClose` has run. */
  readonly finished: Effect.Effect<void>
  /**
   * Waits until the actor has nothing left to do: every message and signal
   * so far handled, `init` included (a subscription it makes is in place).
   * A callback that waits for something the test has not done yet keeps it
   * waiting.
   */
  readonly idle: Effect.Effect<void>
}

/**
 * Connects an in-memory client to `behavior` and starts its actor, in the
 * current scope (the connection is shut down with 1001 when it closes).
 * Timers are exact: with `TestClock`, a timer fires at exactly its duration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = <I, R, A = unknown>(
  behavior: Behavior.Behavior<I, R, A>,
  ...[options = {}]: unknown extends A ? [options?: Options<A>] : [options: Options<A> & { readonly auth: A }]
): Effect.Effect<TestClient<I>, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const route = ServerOptions.route(behavior, options, { path: options.request?.path ?? "/" })
    const supervisor = yield* Supervisor.make<R>({
      resolution: Keepalive.resolutionFor([route.settings.timers]),
      exactTimers: true
    })
    const transport = new MemoryTransport()
    transport.answerClose = options.answerClose ?? true
    const actor = supervisor.accept(route, transport, {
      request: {
        path: options.request?.path ?? "/",
        query: options.request?.query ?? new URLSearchParams(),
        headers: options.request?.headers ?? {},
        remoteAddress: options.remoteAddress ?? "127.0.0.1"
      },
      auth: options.auth,
      protocol: options.protocol
    })
    transport.actor = actor
    return makeClient<I>(transport, actor)
  })

const makeClient = <I>(transport: MemoryTransport, actor: Reactor.Actor): TestClient<I> => {
  /** Frames read while joining a streamed message (a ping between its fragments), returned next. */
  const later: Array<Frame.Frame> = []
  const nextFrame: Effect.Effect<Frame.Frame, UnexpectedFrame> = Effect.callback((resume) => {
    const attempt = (): void => {
      const frame = later.shift() ?? transport.take()
      if (frame !== undefined) resume(Effect.succeed(frame))
      else if (transport.closed !== undefined) {
        resume(Effect.fail(new UnexpectedFrame({ expected: "a frame", actual: describe(undefined) })))
      } else transport.onFrame(attempt)
    }
    attempt()
  })
  const next: Effect.Effect<Frame.Frame, UnexpectedFrame> = Effect.flatMap(nextFrame, (first) => {
    if (first._tag !== "Fragment" || first.fin)
      return Effect.succeed(first._tag === "Fragment" ? whole([first]) : first)
    const parts = [first]
    const more: Effect.Effect<Frame.Frame, UnexpectedFrame> = Effect.flatMap(
      Effect.callback<Frame.Frame, UnexpectedFrame>((resume) => {
        const attempt = (): void => {
          const frame = transport.take()
          if (frame !== undefined) resume(Effect.succeed(frame))
          else if (transport.closed !== undefined) {
            resume(Effect.fail(new UnexpectedFrame({ expected: "the rest of a message", actual: describe(undefined) })))
          } else transport.onFrame(attempt)
        }
        attempt()
      }),
      (frame): Effect.Effect<Frame.Frame, UnexpectedFrame> => {
        if (frame._tag === "Close") return Effect.succeed(frame)
        if (frame._tag !== "Fragment") {
          later.push(frame)
          return more
        }
        parts.push(frame)
        return frame.fin ? Effect.succeed(whole(parts)) : more
      }
    )
    return more
  })
  const expect = <A>(expected: string, pick: (frame: Frame.Frame) => A | undefined) =>
    Effect.flatMap(next, (frame) => {
      const value = pick(frame)
      return value === undefined
        ? Effect.fail(new UnexpectedFrame({ expected, actual: describe(frame) }))
        : Effect.succeed(value)
    })
  return {
    connection: actor.connection as Connection.Connection<I>,
    send: (message) => Effect.sync(() => transport.clientSend(message)),
    sendFragment: (data, fin) => Effect.sync(() => transport.clientSendFragment(data, fin)),
    ping: Effect.sync(() => transport.clientPing()),
    pingWith: (payload) => Effect.sync(() => transport.clientPing(payload)),
    pong: Effect.sync(() => transport.clientPong()),
    close: (code = 1000, reason = "") => Effect.sync(() => transport.clientCloses(code, reason)),
    drop: Effect.sync(() => transport.clientDrop()),
    next,
    nextFrame,
    expectText: expect("a text message", (f) => (f._tag === "Text" ? f.text : undefined)),
    expectBinary: expect("a binary message", (f) => (f._tag === "Binary" ? f.data : undefined)),
    expectPing: expect("a ping", (f) => (f._tag === "Ping" ? true : undefined)).pipe(Effect.asVoid),
    expectClose: (code) =>
      expect(code === undefined ? "a close frame" : `a close frame with code ${code}`, (f) =>
        f._tag === "Close" && (code === undefined || f.code === code) ? { code: f.code, reason: f.reason } : undefined
      ),
    get pending() {
      return transport.frames
    },
    get framed() {
      return transport.prepared
    },
    get paused() {
      return transport.paused
    },
    get pauses() {
      return transport.pauses
    },
    closed: Effect.callback<Closed>((resume) => {
      const attempt = (): void => {
        if (transport.closed !== undefined) resume(Effect.succeed(transport.closed))
        else transport.onClose(attempt)
      }
      attempt()
    }),
    finished: actor.finished,
    idle: actor.idle
  }
}

/** A streamed message's fragments as the one frame a client delivers. */
const whole = (parts: ReadonlyArray<Extract<Frame.Frame, { _tag: "Fragment" }>>): Frame.Frame => {
  if (typeof parts[0]!.data === "string")
    return { _tag: "Text", text: parts.map((part) => part.data as string).join("") }
  const data = new Uint8Array(parts.reduce((total, part) => total + (part.data as Uint8Array).byteLength, 0))
  let at = 0
  for (const part of parts) {
    data.set(part.data as Uint8Array, at)
    at += (part.data as Uint8Array).byteLength
  }
  return { _tag: "Binary", data }
}
