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

export class MemoryTransport implements Reactor.Transport {
  actor: Reactor.Actor | undefined = undefined
  readonly frames: Array<Frame.Frame> = []
  private buffered = 0
  private frameWaiters: Array<() => void> = []
  private closeWaiters: Array<() => void> = []
  /** What the client sent while the server had paused reading, in order (a close frame too). */
  private readonly held: Array<Message.Message | Closed> = []
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
      if (Message.isMessage(next)) this.actor!.receiveUnsafe(next)
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
    else this.actor!.receiveUnsafe(message)
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
