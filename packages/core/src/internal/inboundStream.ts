/**
 * A message received as a stream (`onStream`): the pieces the reactor has
 * read and the behaviour has not, behind a `Stream` that the behaviour pulls.
 *
 * The reactor pushes pieces synchronously (`push`); each pull takes every
 * piece waiting, so the bytes held here are what arrived since the last
 * pull. The actor counts them across its messages and stops reading from
 * the socket while they pass the route's `highWaterMark`; `release` tells
 * it when a pull (or `discard`) gave them up. A message that the behaviour
 * stops reading is discarded: its remaining pieces are dropped as they come.
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { ConnectionError } from "../ConnectionError.ts"
import type { Message } from "../Message.ts"
import type { StreamedMessage } from "../StreamedMessage.ts"

/** The actor's side: where the held bytes are counted. */
export interface InboundOwner {
  releaseInboundUnsafe(bytes: number): void
}

export class Inbound {
  readonly message: StreamedMessage
  private readonly owner: InboundOwner
  private chunks: Array<Message> = []
  /** Bytes (UTF-16 code units for text) of the pieces held. */
  private bytes = 0
  /** The last piece arrived. */
  private ended = false
  private failure: ConnectionError | undefined = undefined
  /** The behaviour is done with the message: pieces are dropped and pulls end. */
  discarded = false
  private waiters: Array<() => void> | undefined = undefined

  constructor(owner: InboundOwner, binary: boolean) {
    this.owner = owner
    const chunks = Stream.fromPull(Effect.succeed(this.pull))
    this.message = binary
      ? { _tag: "Binary", chunks: chunks as Stream.Stream<Uint8Array, ConnectionError> }
      : { _tag: "Text", chunks: chunks as Stream.Stream<string, ConnectionError> }
  }

  /**
   * A piece from the reactor. Unless discarded, the actor has counted its
   * `length` already: a pull waiting takes it, and releases it, at once.
   */
  push(chunk: Message, last: boolean): void {
    if (this.discarded) return
    const bytes = chunk.length
    if (bytes > 0) {
      this.chunks.push(chunk)
      this.bytes += bytes
    }
    if (last) this.ended = true
    if (bytes > 0 || last) this.wake()
  }

  /** The connection broke before the last piece: pulls fail with `error` once the pieces held are read. */
  fail(error: ConnectionError): void {
    if (this.ended || this.discarded) return
    this.failure = error
    this.wake()
  }

  /** The behaviour's call ended: drop what is held, and whatever of the message still comes. */
  discard(): void {
    if (this.discarded) return
    this.discarded = true
    this.chunks = []
    this.release()
    this.wake()
  }

  private release(): void {
    const bytes = this.bytes
    this.bytes = 0
    if (bytes > 0) this.owner.releaseInboundUnsafe(bytes)
  }

  private wake(): void {
    const waiters = this.waiters
    if (waiters === undefined) return
    this.waiters = undefined
    for (const waiter of waiters) waiter()
  }

  private readonly pull: Effect.Effect<Arr.NonEmptyReadonlyArray<Message>, ConnectionError | Cause.Done> =
    Effect.callback((resume) => {
      let done = false
      const attempt = () => {
        if (done) return
        if (this.chunks.length > 0 && !this.discarded) {
          done = true
          const taken = this.chunks as unknown as Arr.NonEmptyArray<Message>
          this.chunks = []
          this.release()
          resume(Effect.succeed(taken))
        } else if (this.discarded || (this.ended && this.failure === undefined)) {
          done = true
          resume(Cause.done())
        } else if (this.failure !== undefined) {
          done = true
          resume(Effect.fail(this.failure))
        } else {
          ;(this.waiters ??= []).push(attempt)
        }
      }
      attempt()
      return Effect.sync(() => {
        done = true
      })
    })
}
