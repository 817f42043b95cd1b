/**
 * The in-memory reactor: a `Transport` whose "socket" is a list of frames a
 * test client reads, with the socket semantics the actor relies on — bytes
 * stay buffered until the client reads them (so `send` backpressure is
 * real), reading pauses and resumes (the client's sends wait while paused),
 * a close frame is answered unless the client is told not to, and
 * `terminate` drops the connection at once.
 */
import { Message, type PreparedMessage, type Reactor } from "@switchboard/core"
import * as Frame from "../Frame.ts"

export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A fragment the client sent (`sendFragment`). */
interface ClientFragment {
  readonly _tag: "ClientFragment"
  readonly data: Message.Message
  readonly fin: boolean
}

export class MemoryTransport implements Reactor.Transport {
  actor: Reactor.Actor | undefined = undefined
  readonly frames: Array<Frame.Frame> = []
  private buffered = 0
  private frameWaiters: Array<() => void> = []
  private closeWaiters: Array<() => void> = []
  /** What the client sent while the server had paused reading, in order (a close frame too). */
  private readonly held: Array<Message.Message | Closed | ClientFragment> = []
  /** The fragments of the client's unfinished message, for a route that receives messages whole. */
  private fragments: Array<Message.Message> | undefined = undefined
  /** True while the client's fragmented message is unfinished (a route that receives streams). */
  private fragmenting = false
  paused = false
  /** How the TCP connection ended, once it has. */
  closed: Closed | undefined = undefined
  /** The close frame the client sent, if any. */
  private clientClose: Closed | undefined = undefined
  /** Whether the client answers a close frame from the server (a well-behaved peer does). */
  answerClose = true
  pauses = 0

  // ---------------------------------------------------------------- server → client
  send(message: Message.Message): void {
    this.deliver(typeof message === "string" ? { _tag: "Text", text: message } : { _tag: "Binary", data: message })
  }
  sendFragment(data: Message.Message, fin: boolean): void {
    this.deliver({ _tag: "Fragment", data, fin })
  }
  ping(): void {
    this.deliver({ _tag: "Ping" })
  }
  close(code: number, reason: string): void {
    if (this.closed !== undefined) return
    this.deliver({ _tag: "Close", code, reason })
    if (this.answerClose) this.end(code, reason)
  }
  terminate(): void {
    this.end(1006, "")
  }
  get bufferedAmount(): number {
    return this.buffered
  }
  pause(): void {
    this.paused = true
    this.pauses++
  }
  resume(): void {
    this.paused = false
    while (!this.paused && this.held.length > 0 && this.closed === undefined) {
      const next = this.held.shift()!
      if (Message.isMessage(next)) this.read(next)
      else if ("_tag" in next) this.readFragment(next)
      else this.readClose(next)
    }
  }
  sendPrepared(prepared: PreparedMessage.PreparedMessage): void {
    this.prepared.push(prepared)
    this.send(prepared.message)
  }
  /** Every prepared message written to this client, to check that fan-out framed once. */
  readonly prepared: Array<PreparedMessage.PreparedMessage> = []
  flush(): void {}

  private deliver(frame: Frame.Frame): void {
    if (this.closed !== undefined) return
    this.frames.push(frame)
    this.buffered += Frame.byteLength(frame)
    this.wake("frame")
  }

  private end(code: number, reason: string): void {
    if (this.closed !== undefined) return
    this.closed = { code, reason }
    this.held.length = 0
    this.actor!.closedUnsafe(code, reason)
    this.wake("frame")
    this.wake("close")
  }

  private wake(kind: "frame" | "close"): void {
    const waiters = kind === "frame" ? this.frameWaiters : this.closeWaiters
    if (waiters.length === 0) return
    if (kind === "frame") this.frameWaiters = []
    else this.closeWaiters = []
    for (const wake of waiters) wake()
  }

  onFrame(wake: () => void): void {
    this.frameWaiters.push(wake)
  }
  onClose(wake: () => void): void {
    this.closeWaiters.push(wake)
  }

  // ---------------------------------------------------------------- client → server
  /** Takes the oldest unread frame; the socket drains when nothing is left. */
  take(): Frame.Frame | undefined {
    const frame = this.frames.shift()
    if (frame === undefined) return undefined
    this.buffered -= Frame.byteLength(frame)
    if (this.frames.length === 0) this.actor?.drainUnsafe()
    return frame
  }
  clientSend(message: Message.Message): void {
    if (this.closed !== undefined || this.clientClose !== undefined) return
    if (this.paused || this.held.length > 0) this.held.push(message)
    else this.read(message)
  }
  /** The client sends one fragment of a message (`fin` on the last); the kind comes from the first. */
  clientSendFragment(data: Message.Message, fin: boolean): void {
    if (this.closed !== undefined || this.clientClose !== undefined) return
    const fragment: ClientFragment = { _tag: "ClientFragment", data, fin }
    if (this.paused || this.held.length > 0) this.held.push(fragment)
    else this.readFragment(fragment)
  }
  private read(message: Message.Message): void {
    if (this.actor!.receivesStreams) this.actor!.receiveChunkUnsafe(message, true, true)
    else this.actor!.receiveUnsafe(message)
  }
  /** As the server reads a fragment: a piece of a stream, or kept until the message is whole. */
  private readFragment(fragment: ClientFragment): void {
    if (this.actor!.receivesStreams) {
      this.actor!.receiveChunkUnsafe(fragment.data, !this.fragmenting, fragment.fin)
      this.fragmenting = !fragment.fin
      return
    }
    const fragments = (this.fragments ??= [])
    fragments.push(fragment.data)
    if (!fragment.fin) return
    this.fragments = undefined
    this.actor!.receiveUnsafe(joinFragments(fragments))
  }
  /** The client sends a close frame; the server reads it after what was sent before. */
  clientCloses(code: number, reason: string): void {
    if (this.closed !== undefined || this.clientClose !== undefined) return
    this.clientClose = { code, reason }
    if (this.paused || this.held.length > 0) this.held.push(this.clientClose)
    else this.readClose(this.clientClose)
  }
  clientPing(payload: Uint8Array = new Uint8Array(0)): void {
    if (this.closed === undefined) this.actor!.pingUnsafe(payload)
  }
  clientPong(): void {
    if (this.closed === undefined) this.actor!.pongUnsafe()
  }
  /** As ws does: answer a peer's close frame at once with the same code, then report the close. */
  private readClose(close: Closed): void {
    this.deliver({ _tag: "Close", code: close.code, reason: close.reason })
    this.end(close.code, close.reason)
  }
  clientDrop(): void {
    this.end(1006, "")
  }
}

/** A message from its fragments: text if the first is a string (bytes are taken as UTF-8), binary otherwise. */
const joinFragments = (fragments: ReadonlyArray<Message.Message>): Message.Message => {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
  if (typeof fragments[0] === "string") {
    return fragments.map((f) => (typeof f === "string" ? f : decoder.decode(f))).join("")
  }
  const encoder = new TextEncoder()
  const parts = fragments.map((f) => (typeof f === "string" ? encoder.encode(f) : f))
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const part of parts) {
    whole.set(part, at)
    at += part.byteLength
  }
  return whole
}
