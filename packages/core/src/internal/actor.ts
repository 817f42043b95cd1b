/**
 * The connection actor: one record per connection holding the behaviour's
 * state, a bounded mailbox and the lifecycle timestamps.
 *
 * The actor hibernates: no fiber exists while its mailbox is empty. The
 * reactor pushes into the mailbox synchronously; the first push into an empty
 * mailbox forks a drain fiber, which takes the whole mailbox as a batch,
 * handles it one message at a time (the transport coalesces the batch's writes)
 * and ends when the mailbox is empty. So an idle connection costs this record
 * and its socket, nothing else (see docs/adr/0001-hibernating-actors.md).
 */
import { Cause, type Context, Effect, type Exit, type Fiber, Metric } from "effect"
import * as Behavior from "../Behavior.ts"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import type * as Connection from "../Connection.ts"
import * as ConnectionError from "../ConnectionError.ts"
import type * as Handshake from "../Handshake.ts"
import type * as Keepalive from "../Keepalive.ts"
import { isMessage, type Message } from "../Message.ts"
import type { PreparedMessage } from "../PreparedMessage.ts"
import * as RateLimit from "../RateLimit.ts"
import type { Transport } from "../Transport.ts"
import { TokenBucket } from "./tokenBucket.ts"

/** What an actor shares with its siblings: the supervisor's side. */
export interface Host {
  /** The sweeper's last reading of the Clock, in ms. */
  now: number
  /** The Clock's time now (a rate limit needs it exact). */
  readonly time: () => number
  /** The server's services, for metrics. */
  readonly context: Context.Context<never>
  readonly fork: <A, E>(effect: Effect.Effect<A, E, never>) => Fiber.Fiber<A, E>
  readonly remove: (actor: ActorImpl) => void
}

/** Settings shared by every connection of a route. */
export interface RouteSettings {
  readonly mailboxCapacity: number
  readonly highWaterMark: number
  readonly maxMessageBytes: number
  readonly timers: Keepalive.Resolved
  readonly rateLimit: RateLimit.Resolved | undefined
}

interface Info {
  readonly _tag: "Info"
  readonly value: unknown
}
const Open = { _tag: "Open" } as const
const Closed = { _tag: "Closed" } as const
type Signal = Message | Info | typeof Open | typeof Closed
/** The shared "not allocated yet" mailbox: never pushed to (`push` swaps it for an array first). */
const noSignals: Array<Signal> = []

const phases = { open: 0, closing: 1, closed: 2 } as const
type Phase = (typeof phases)[keyof typeof phases]

const encoder = new TextEncoder()
const drops = Metric.withAttributes(RateLimit.rateLimitedTotal, { policy: "drop" })
const closes = Metric.withAttributes(RateLimit.rateLimitedTotal, { policy: "close" })
const describe = (limit: RateLimit.Resolved): string =>
  [
    Number.isFinite(limit.messagesPerMs)
      ? `${limit.messagesPerMs * 1000} messages/s (burst ${limit.burstMessages})`
      : "",
    Number.isFinite(limit.bytesPerMs) ? `${limit.bytesPerMs * 1000} bytes/s (burst ${limit.burstBytes})` : ""
  ]
    .filter((part) => part !== "")
    .join(", ")
let nextId = 0

export class ActorImpl implements Connection.Connection<unknown> {
  readonly serial = ++nextId
  state: unknown = undefined
  phase: Phase = phases.open
  crashed = false
  closeReason: CloseReason.CloseReason | undefined = undefined
  /** Last inbound frame of any kind (keepalive), last inbound message and last outbound message (idle), as `host.now`. */
  lastIn: number
  lastMessage: number
  lastOut: number
  /** When the unanswered keepalive ping was sent; -1 when none is pending. */
  pingSentAt = -1
  /** When the server sent its close frame; -1 when it has not. */
  closeSentAt = -1
  /** The mailbox, double-buffered with `spare`; both are allocated on the first signal. */
  private inbox: Array<Signal> = noSignals
  /** Payload bytes (UTF-16 units for text) in the inbox: a second bound besides the count. */
  private inboxBytes = 0
  private spare: Array<Signal> = noSignals
  private running = false
  private paused = false
  private drainWaiter: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  fiber: Fiber.Fiber<void, never> | undefined = undefined
  /** The route's rate limit state; undefined on routes without one. */
  private readonly bucket: TokenBucket | undefined
  // the supervisor runs every fiber with the server's services, so R is provided
  private readonly handlers: Behavior.Handlers<unknown, unknown, unknown, never>
  readonly host: Host
  readonly transport: Transport
  readonly settings: RouteSettings
  readonly request: Handshake.UpgradeRequest
  readonly auth: unknown

  constructor(
    host: Host,
    transport: Transport,
    settings: RouteSettings,
    behavior: Behavior.Behavior<unknown, unknown>,
    request: Handshake.UpgradeRequest,
    auth: unknown
  ) {
    this.host = host
    this.transport = transport
    this.settings = settings
    this.request = request
    this.auth = auth
    this.handlers = Behavior.handlersOf(behavior) as Behavior.Handlers<unknown, unknown, unknown, never>
    this.lastIn = this.lastMessage = this.lastOut = host.now
    this.bucket = settings.rateLimit === undefined ? undefined : new TokenBucket(settings.rateLimit, host.time())
    if (this.handlers.init !== undefined) this.push(Open)
  }

  get maxMessageBytes(): number {
    return this.settings.maxMessageBytes
  }
  get remoteAddress(): string {
    return this.request.remoteAddress
  }
  get connection(): Connection.Connection<unknown> {
    return this
  }
  /** Built on first use (logs, the hub's `broadcastFrom`) and kept. */
  get id(): string {
    return (this.idString ??= `c${this.serial}`)
  }
  private idString: string | undefined = undefined
  get isOpen(): boolean {
    return this.phase === phases.open
  }
  get bufferedAmount(): number {
    return this.transport.bufferedAmount
  }

  // ---------------------------------------------------------------- reactor side

  /** A message from the peer. Pauses the socket when the mailbox is full. */
  receiveUnsafe(message: Message): void {
    this.lastIn = this.lastMessage = this.host.now
    if (this.phase === phases.closed || this.crashed) return
    if (this.bucket !== undefined && !this.admit(this.bucket, message)) return
    this.push(message)
    this.inboxBytes += message.length
    if (
      !this.paused &&
      (this.inbox.length >= this.settings.mailboxCapacity || this.inboxBytes >= this.settings.maxMessageBytes)
    ) {
      this.paused = true
      this.transport.pause()
    }
  }

  /** Applies the rate limit to `message`: false when it is refused (dropped, or the connection closed). */
  private admit(bucket: TokenBucket, message: Message): boolean {
    const limit = bucket.limit
    if (limit.onExceed === "close" && this.phase !== phases.open) return false
    if (bucket.take(this.host.time(), message.length)) {
      bucket.refusing = false
      return true
    }
    const first = !bucket.refusing
    bucket.refusing = true
    if (limit.onExceed === "drop") {
      drops.updateUnsafe(1, this.host.context)
      if (first && limit.notice !== undefined && this.phase === phases.open) {
        this.transport.send(limit.notice)
        this.lastOut = this.host.now
      }
      return false
    }
    closes.updateUnsafe(1, this.host.context)
    const reason = new ConnectionError.RateLimited({ limit: describe(limit) })
    this.closeWith(
      CloseCode.PolicyViolation,
      "rate limit exceeded",
      CloseReason.error(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
    )
    return false
  }

  /** Any inbound frame that is not a message or a pong (the Node reactor reports pings). */
  activityUnsafe(): void {
    this.lastIn = this.host.now
  }

  pongUnsafe(): void {
    this.lastIn = this.host.now
    this.pingSentAt = -1
  }

  drainUnsafe(): void {
    const waiter = this.drainWaiter
    if (waiter !== undefined) {
      this.drainWaiter = undefined
      waiter(Effect.void)
    }
  }

  /** The peer broke the protocol or a limit; the reactor closes the socket next. */
  failedUnsafe(reason: ConnectionError.Reason): void {
    if (this.closeReason === undefined) {
      this.closeReason = CloseReason.error(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
    }
    if (this.phase === phases.open) this.phase = phases.closing
  }

  /** The socket is closed; `code` is the peer's close code (1005 without one, 1006 if it dropped). */
  closedUnsafe(code: number, reason: string): void {
    if (this.phase === phases.closed) return
    this.phase = phases.closed
    if (this.closeReason === undefined) {
      this.closeReason = code === CloseCode.Abnormal ? CloseReason.lost : CloseReason.peer(code, reason)
    }
    this.drainUnsafe()
    // Nothing to run (no onClose, no finalizer, an idle actor): finish here, without a fiber.
    if (!this.running && this.inbox.length === 0 && this.finalizers === undefined && !this.needsOnClose()) {
      this.finished_()
      return
    }
    this.push(Closed)
  }

  // ---------------------------------------------------------------- behaviour side

  send(message: Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.phase !== phases.open) return Effect.void
      this.transport.send(message)
      this.lastOut = this.host.now
      return this.transport.bufferedAmount > this.settings.highWaterMark ? this.awaitDrain : Effect.void
    })
  }

  /** Suspends until the reactor reports a drain (or the socket closes). */
  private get awaitDrain(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.phase === phases.closed || this.transport.bufferedAmount <= this.settings.highWaterMark) {
        resume(Effect.void)
        return
      }
      this.drainWaiter = resume
      this.transport.flush()
    })
  }

  /** The hub's fan-out write: synchronous, never waits; false when the connection is not open. */
  sendPreparedUnsafe(prepared: PreparedMessage): boolean {
    if (this.phase !== phases.open) return false
    this.transport.sendPrepared(prepared)
    this.lastOut = this.host.now
    return true
  }

  addFinalizer(finalizer: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.done) return finalizer
      ;(this.finalizers ??= []).push(finalizer)
      return Effect.void
    })
  }
  private finalizers: Array<Effect.Effect<void>> | undefined = undefined

  get ping(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.phase === phases.open) this.transport.ping()
    })
  }

  close(code: number = CloseCode.Normal, reason = ""): Effect.Effect<void, ConnectionError.ConnectionError> {
    return Effect.suspend(() => {
      if (!CloseCode.isSendable(code)) {
        return this.fail(new ConnectionError.InvalidClose({ code, message: `close code ${code} may not be sent` }))
      }
      if (encoder.encode(reason).byteLength > 123) {
        return this.fail(new ConnectionError.InvalidClose({ code, message: "close reason longer than 123 bytes" }))
      }
      this.closeWith(code, reason, CloseReason.local(code, reason))
      return Effect.void
    })
  }

  tell(info: unknown): Effect.Effect<void, ConnectionError.ConnectionError> {
    return Effect.suspend(() => {
      if (this.phase === phases.closed || this.crashed) return this.fail(new ConnectionError.NotOpen())
      if (!this.tellUnsafe(info)) {
        return this.fail(new ConnectionError.MailboxFull({ capacity: this.settings.mailboxCapacity }))
      }
      return Effect.void
    })
  }

  tellUnsafe(info: unknown): boolean {
    if (this.phase === phases.closed || this.crashed || this.inbox.length >= this.settings.mailboxCapacity) return false
    this.push({ _tag: "Info", value: info })
    return true
  }

  private fail(reason: ConnectionError.Reason): Effect.Effect<never, ConnectionError.ConnectionError> {
    return Effect.fail(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
  }

  // ---------------------------------------------------------------- lifecycle

  /** Sends a close frame once, remembering why; the sweeper enforces `closeTimeout`. */
  closeWith(code: number, reason: string, why: CloseReason.CloseReason): void {
    if (this.phase !== phases.open) return
    this.phase = phases.closing
    this.closeReason ??= why
    this.closeSentAt = this.host.now
    this.transport.close(code, reason)
  }

  /** Destroys the socket now; the reactor reports the close. */
  terminate(why: CloseReason.CloseReason): void {
    if (this.phase === phases.closed) return
    this.closeReason ??= why
    this.transport.terminate()
  }

  /**
   * Called by the sweeper with the Clock's current time: fires what is due
   * and returns when this actor next needs a look (Infinity: never).
   */
  checkTimers(now: number): number {
    const t = this.settings.timers
    if (this.phase === phases.closing) {
      if (t.closeTimeout === 0 || this.closeSentAt < 0) return Number.POSITIVE_INFINITY
      const due = this.closeSentAt + t.closeTimeout
      if (now < due) return due
      this.transport.terminate()
      return Number.POSITIVE_INFINITY
    }
    if (this.phase !== phases.open) return Number.POSITIVE_INFINITY
    let next = Number.POSITIVE_INFINITY
    if (t.idleTimeout > 0) {
      const due = Math.max(this.lastMessage, this.lastOut) + t.idleTimeout
      if (now >= due) {
        this.closeWith(CloseCode.Normal, "idle timeout", CloseReason.timeout("idle"))
        return this.closeSentAt + t.closeTimeout
      }
      next = due
    }
    if (t.pingAfter > 0) {
      if (this.pingSentAt >= 0) {
        const due = this.pingSentAt + t.closeAfterNoPong
        if (now >= due) {
          this.terminate(CloseReason.timeout("keepalive"))
          return Number.POSITIVE_INFINITY
        }
        next = Math.min(next, due)
      } else {
        const due = this.lastIn + t.pingAfter
        if (now >= due) {
          this.pingSentAt = now
          this.transport.ping()
          next = Math.min(next, now + t.closeAfterNoPong)
        } else {
          next = Math.min(next, due)
        }
      }
    }
    return next
  }

  // ---------------------------------------------------------------- mailbox and drain loop

  private push(signal: Signal): void {
    if (this.inbox === noSignals) this.inbox = []
    this.inbox.push(signal)
    if (!this.running) {
      this.running = true
      // The drain starts on the next scheduler tick, not inside this call: every message the
      // reactor parses from one TCP read lands in the same batch, whose replies go out in one write.
      this.fiber = this.host.fork(
        (this.drain ??= Effect.andThen(
          Effect.yieldNow,
          Effect.suspend(() => this.next())
        ))
      )
      this.fiber.addObserver((this.onDrainExit ??= (exit) => this.drainExited(exit)))
    }
  }

  /** Created on the first message, so that an idle connection holds no effect objects. */
  private drain: Effect.Effect<void> | undefined = undefined
  private onDrainExit: ((exit: Exit.Exit<void>) => void) | undefined = undefined

  /**
   * The drain loop handles every failure of a callback itself; a drain fiber
   * that still ends in failure hit something the loop could not catch (a
   * callback that returned a non-effect, a throwing logger). Supervise it
   * the same way: close with 1011, and let a new drain deliver the close.
   */
  private drainExited(exit: Exit.Exit<void>): void {
    if (exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)) return
    this.running = false
    this.fiber = undefined
    this.crashed = true
    this.host.fork(this.logCause("actor died; closing with 1011", exit.cause))
    this.closeWith(CloseCode.InternalError, "internal error", CloseReason.crash(exit.cause))
    if (this.inbox.length > 0 && !this.running) {
      this.running = true
      this.fiber = this.host.fork(this.drain!)
    }
  }

  private next(): Effect.Effect<void> {
    const batch = this.inbox
    if (batch.length === 0) {
      this.running = false
      this.fiber = undefined
      return Effect.void
    }
    this.inbox = this.spare === noSignals ? [] : this.spare
    this.inboxBytes = 0
    if (this.paused) {
      this.paused = false
      this.transport.resume()
    }
    return Effect.flatMap(this.runBatch(batch, 0), () => {
      batch.length = 0
      this.spare = batch
      return this.next()
    })
  }

  /**
   * Handles `batch` from `start`. A failure crashes the actor and the rest of
   * the batch is still walked: messages and infos are skipped (the actor has
   * crashed), but a close signal behind the failure still runs `onClose`.
   */
  private runBatch(batch: Array<Signal>, start: number): Effect.Effect<void> {
    return Effect.catchCause(this.handleFrom(batch, start), (cause) =>
      Effect.andThen(
        this.onFailure(cause),
        Effect.suspend(() => this.runBatch(batch, this.cursor + 1))
      )
    )
  }

  /** The index of the signal being handled, for `runBatch` to resume after a failure. */
  private cursor = 0

  private handleFrom(batch: Array<Signal>, start: number): Effect.Effect<void, unknown> {
    for (let i = start; i < batch.length; i++) {
      const effect = this.handle(batch[i]!)
      if (effect !== undefined) {
        this.cursor = i
        return Effect.flatMap(effect, () => this.handleFrom(batch, i + 1))
      }
    }
    return Effect.void
  }

  private setState: ((state: unknown) => void) | undefined = undefined
  private get stateSetter(): (state: unknown) => void {
    return (this.setState ??= (state) => {
      this.state = state
    })
  }

  /** The effect for one signal, or undefined when there is nothing to run. */
  private handle(signal: Signal): Effect.Effect<void, unknown> | undefined {
    const h = this.handlers
    if (isMessage(signal)) {
      if (this.crashed || h.onMessage === undefined) return undefined
      return Effect.map(h.onMessage(this, signal, this.state), this.stateSetter)
    }
    switch (signal._tag) {
      case "Info":
        if (this.crashed || h.onInfo === undefined) return undefined
        return Effect.map(h.onInfo(this, signal.value, this.state), this.stateSetter)
      case "Open":
        return Effect.map(h.init!(this), (state) => {
          this.state = state
          this.started = true
        })
      case "Closed":
        return this.finish()
    }
  }

  /** Resolves once `onClose` has run and the actor left its supervisor. */
  get finished(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.done) return resume(Effect.void)
      ;(this.finishWaiters ??= []).push(() => resume(Effect.void))
    })
  }
  private done = false
  private finishWaiters: Array<() => void> | undefined = undefined

  /** True when `onClose` is to run: it exists, and `init` (if any) succeeded. */
  private needsOnClose(): boolean {
    const h = this.handlers
    return h.onClose !== undefined && (h.init === undefined || this.started)
  }

  /** The actor is gone: leave the supervisor and wake whoever awaits `finished`. */
  private finished_(): void {
    this.done = true
    this.host.remove(this)
    const waiters = this.finishWaiters
    this.finishWaiters = undefined
    if (waiters !== undefined) for (const wake of waiters) wake()
  }

  private finish(): Effect.Effect<void, unknown> {
    const h = this.handlers
    const done = Effect.suspend(() => {
      const finalizers = this.finalizers
      this.finalizers = undefined
      if (finalizers === undefined) return Effect.void
      // like a Scope: last added, first run; one failing finalizer does not stop the others
      return Effect.forEach(
        finalizers.reverse(),
        (finalizer) => Effect.catchCause(finalizer, (cause) => this.logCause("connection finalizer failed", cause)),
        { discard: true }
      )
    }).pipe(Effect.andThen(Effect.sync(() => this.finished_())))
    // a behaviour whose init failed has no state to close over
    if (!this.needsOnClose()) return done
    return h.onClose!(this, this.closeReason ?? CloseReason.lost, this.state).pipe(
      Effect.catchCause((cause) => this.logCause("onClose failed", cause)),
      Effect.andThen(done)
    )
  }

  private started = false

  private onFailure(cause: Cause.Cause<unknown>): Effect.Effect<void> {
    if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    if (this.phase === phases.closed) {
      // the failure came from onClose's turn or after the socket closed: log, then finish
      this.crashed = true
      return this.logCause("behavior failed", cause)
    }
    this.crashed = true
    this.closeWith(CloseCode.InternalError, "internal error", CloseReason.crash(cause))
    if (this.closeReason?._tag !== "Crash") this.closeReason = CloseReason.crash(cause)
    return this.logCause("behavior failed; closing with 1011", cause)
  }

  private logCause(message: string, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.logError(message, cause).pipe(Effect.annotateLogs({ connectionId: this.id }))
  }
}
