/**
 * An actor's mailbox: the signals waiting for its drain fiber, in arrival
 * order. Bounded twice: by count (`mailboxCapacity`) and by payload bytes
 * (`maxMessageBytes`); when either is reached the actor tells the reactor to
 * stop reading (TCP pushes back on the client), and it reads again once the
 * drain takes the batch. Double-buffered: the drain takes the whole array and
 * hands it back empty when the batch is done, so a connection allocates no
 * arrays from batch to batch. Made by the first signal into a hibernating
 * actor and dropped when its drain ends, so an idle connection holds none.
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
  /** The UTF-8 bytes of the inbox's text messages, at their indexes, where the reactor gave them; made on the first. */
  private inboxUtf8: Array<Uint8Array | undefined> | undefined = undefined
  private spareUtf8: Array<Uint8Array | undefined> | undefined = undefined
  /** The UTF-8 bytes of the last batch's text messages, at their indexes (see `ReceivedText`). */
  batchUtf8: Array<Uint8Array | undefined> | undefined = undefined
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

  /**
   * Adds a peer's message (with the UTF-8 bytes a text message arrived in,
   * when known); true when the mailbox has just become full (by count or
   * bytes) and reading must stop.
   */
  pushMessage(message: Message, capacity: number, maxBytes: number, utf8?: Uint8Array): boolean {
    const at = this.inbox.push(message) - 1
    if (utf8 !== undefined) (this.inboxUtf8 ??= [])[at] = utf8
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
    const utf8 = this.inboxUtf8
    this.inboxUtf8 = this.spareUtf8
    this.spareUtf8 = this.batchUtf8 = utf8
    this.bytes = 0
    return batch
  }

  /** The batch is handled: its arrays are reused by the next `takeAll`. */
  recycle(batch: Array<Signal>): void {
    batch.length = 0
    if (this.batchUtf8 !== undefined) {
      this.batchUtf8.length = 0
      this.batchUtf8 = undefined
    }
  }
}
