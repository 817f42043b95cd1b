/**
 * `conn.sendStream`: one message written as fragments while its chunks
 * arrive, so the whole message never sits in memory.
 *
 * The writer holds the latest chunk back until the next one arrives (or the
 * stream ends), so that the last fragment can carry `fin` without an empty
 * frame, and a stream that fails before its second chunk has sent nothing.
 * Meanwhile the actor holds the connection's other writes (`streaming`) and
 * releases them in order at the end (`endStreamUnsafe`). The stream is raced
 * against the socket's close, so a source that waits (a cursor, a slow file)
 * does not keep a closed connection's actor busy.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import type * as Connection from "../Connection.ts"
import * as ConnectionError from "../ConnectionError.ts"
import type { Message } from "../Message.ts"
import { type ActorImpl, phases } from "./actor.ts"

const encoder = new TextEncoder()
const emptyBytes = new Uint8Array(0)

/** Why a stream that had started its message is cut off. */
const cutOff = CloseReason.local(CloseCode.InternalError, "message stream failed")

export const sendStream = <E, R>(
  actor: ActorImpl,
  stream: Stream.Stream<Message, E, R>,
  options: Connection.SendStreamOptions | undefined
): Effect.Effect<void, E | ConnectionError.ConnectionError, R> =>
  Effect.suspend(() => {
    if (actor.phase !== phases.open) return Effect.void
    const lock = (actor.streamLock ??= Semaphore.makeUnsafe(1))
    return lock.withPermit(
      Effect.suspend(() => (actor.phase === phases.open ? write(actor, stream, options) : Effect.void))
    )
  })

const write = <E, R>(
  actor: ActorImpl,
  stream: Stream.Stream<Message, E, R>,
  options: Connection.SendStreamOptions | undefined
): Effect.Effect<void, E | ConnectionError.ConnectionError, R> => {
  const writer = new FragmentWriter(actor, options?.binary)
  actor.streaming = true
  const consume = Stream.runForEachWhile(stream, (chunk) => writer.push(chunk)).pipe(
    Effect.andThen(Effect.suspend(() => writer.end()))
  )
  return Effect.raceFirst(consume, untilClosed(actor)).pipe(
    Effect.onExit((exit) =>
      Effect.sync(() => {
        // a message whose fragments began cannot be finished: the peer must not take it as whole
        if (Exit.isFailure(exit) && writer.started && !writer.ended) {
          actor.closeWith(CloseCode.InternalError, "message stream failed", cutOff)
        }
        actor.endStreamUnsafe()
      })
    )
  )
}

/** Succeeds when the socket closes. */
const untilClosed = (actor: ActorImpl): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const watcher = () => resume(Effect.void)
    actor.watchClosedUnsafe(watcher)
    return Effect.sync(() => actor.unwatchClosedUnsafe(watcher))
  })

/** What of `TextDecoder` the writer uses. */
interface Decoder {
  decode(input?: Uint8Array, options?: { readonly stream?: boolean }): string
}

class FragmentWriter {
  readonly actor: ActorImpl
  /** Fixed by the option, else by the first chunk. */
  binary: boolean | undefined
  /** The chunk held back until the next one shows whether it is the last. */
  pending: Message | undefined = undefined
  /** A text message's decoder for byte chunks (characters split across chunks). */
  decoder: Decoder | undefined = undefined
  /** A high surrogate that ended the last string chunk, joined to the next one. */
  surrogate = ""
  started = false
  ended = false

  constructor(actor: ActorImpl, binary: boolean | undefined) {
    this.actor = actor
    this.binary = binary
  }

  /** Takes one chunk: false stops the stream (the connection is no longer open). */
  push(chunk: Message): Effect.Effect<boolean, ConnectionError.ConnectionError> {
    if (this.actor.phase !== phases.open) return Effect.succeed(false)
    this.binary ??= typeof chunk !== "string"
    const data = this.convert(chunk)
    if (data === undefined) return this.invalid()
    if (data.length === 0) return Effect.succeed(true)
    const previous = this.pending
    this.pending = data
    if (previous === undefined) return Effect.succeed(true)
    this.started = true
    if (!this.actor.writeFragmentUnsafe(previous, false)) return Effect.succeed(false)
    const highWaterMark = this.actor.settings.highWaterMark
    if (this.actor.transport.bufferedAmount <= highWaterMark) return Effect.succeed(true)
    return Effect.as(this.actor.untilBuffered(highWaterMark, true), true)
  }

  /** The stream ended: the held chunk goes out as the last fragment (an empty message for an empty stream). */
  end(): Effect.Effect<void, ConnectionError.ConnectionError> {
    if (this.actor.phase !== phases.open) return Effect.void
    let last = this.pending ?? (this.binary === true ? emptyBytes : "")
    if (this.binary === true) {
      if (this.surrogate !== "") last = concat(last as Uint8Array, encoder.encode(this.surrogate))
    } else {
      let tail = this.surrogate
      if (this.decoder !== undefined) {
        try {
          tail += this.decoder.decode()
        } catch {
          return this.invalid()
        }
      }
      if (tail !== "") last = (last as string) + tail
    }
    this.ended = true
    if (!this.actor.writeFragmentUnsafe(last, true)) return Effect.void
    // as `send` does: a message that came as one piece (whose only fragment is this one) waits too
    const highWaterMark = this.actor.settings.highWaterMark
    if (this.actor.transport.bufferedAmount <= highWaterMark) return Effect.void
    return this.actor.untilBuffered(highWaterMark, true)
  }

  /** A chunk as the message's kind: `undefined` for bytes that are not UTF-8 in a text message. */
  private convert(chunk: Message): Message | undefined {
    if (typeof chunk === "string") {
      const text = this.joinSurrogates(chunk)
      return this.binary === true ? encoder.encode(text) : text
    }
    if (this.binary === true) return chunk
    this.decoder ??= new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
    try {
      return this.joinSurrogates(this.decoder.decode(chunk, { stream: true }))
    } catch {
      return undefined
    }
  }

  /** Keeps a trailing high surrogate for the next chunk: a character split between chunks stays whole. */
  private joinSurrogates(text: string): string {
    const joined = this.surrogate === "" ? text : this.surrogate + text
    const last = joined.charCodeAt(joined.length - 1)
    if (last >= 0xd800 && last <= 0xdbff) {
      this.surrogate = joined.slice(-1)
      return joined.slice(0, -1)
    }
    this.surrogate = ""
    return joined
  }

  private invalid(): Effect.Effect<never, ConnectionError.ConnectionError> {
    // ends the message as a failure: the exit handler closes with 1011 if fragments went out
    return Effect.fail(
      new ConnectionError.ConnectionError({
        connectionId: this.actor.id,
        reason: new ConnectionError.InvalidStream({ message: "a text message's bytes are not valid UTF-8" })
      })
    )
  }
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a, 0)
  out.set(b, a.byteLength)
  return out
}
