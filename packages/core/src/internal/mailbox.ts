/**
 * An actor's mailbox: the signals waiting for its drain fiber, in arrival
 * order. Bounded twice: by count (`mailboxCapacity`) and by payload bytes
 * (`maxMessageBytes`); when either is reached the actor tells the reactor to
 * stop reading (TCP pushes back on the client), and it reads again once the
 * drain takes the batch. Double-buffered: the drain takes the whole array and
 * hands it back empty when the batch is done, so a busy connection allocates
 * no arrays. Allocated on a connection's first signal, so an idle connection
 * without `init` holds none.
 */
import type { Message } from "../Message.ts"
import type { Inbound } from "./inboundStream.ts"

/** What other code `tell`s the actor, for `onInfo`. */
export interface Info {
  readonly _tag: "Info"
  readonly value: unknown
}
/** The connection opened (only for behaviours with `init`). */
export const Open = { _tag: "Open" } as const
/** The socket closed: run `onClose` and the finalizers. */
export const Closed = { _tag: "Closed" } as const
/** A ping from the peer, for `onPing`. */
export interface Ping {
  readonly _tag: "Ping"
  readonly payload: Uint8Array
}
/** The outbound buffer emptied after passing the high-water mark, for `onDrain`. */
export const Drained = { _tag: "Drained" } as const

/** A message received as a stream (`onStream`): its first piece arrived. */
export interface Streamed {
  readonly _tag: "Streamed"
  readonly inbound: Inbound
}

export type Signal = Message | Info | Ping | Streamed | typeof Open | typeof Closed | typeof Drained

export class Mailbox {
  private inbox: Array<Signal> = []
  private spare: Array<Signal> = []
  /** Payload bytes in the inbox (UTF-16 code units for text). */
  private bytes = 0
  /** True while the reactor has been told to stop reading. */
  paused = false

  get size(): number {
    return this.inbox.length
  }

  push(signal: Signal): void {
    this.inbox.push(signal)
  }

  /** Adds a peer's message; true when the mailbox has just become full (by count or bytes) and reading must stop. */
  pushMessage(message: Message, capacity: number, maxBytes: number): boolean {
    this.inbox.push(message)
    this.bytes += message.length
    if (this.paused || (this.inbox.length < capacity && this.bytes < maxBytes)) return false
    this.paused = true
    return true
  }

  /** Adds a streamed message (its bytes are counted by its stream); true when the mailbox has just become full. */
  pushSignal(signal: Streamed, capacity: number): boolean {
    this.inbox.push(signal)
    if (this.paused || this.inbox.length < capacity) return false
    this.paused = true
    return true
  }

  /** Takes every signal as one batch; the mailbox is empty (and may be read into again) after it. */
  takeAll(): Array<Signal> {
    const batch = this.inbox
    this.inbox = this.spare
    this.spare = batch
    this.bytes = 0
    return batch
  }

  /** The batch is handled: its array is reused by the next `takeAll`. */
  recycle(batch: Array<Signal>): void {
    batch.length = 0
  }
}
