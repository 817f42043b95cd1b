/**
 * The connection actor: one record per connection holding the behaviour's
 * state, its mailbox and the lifecycle timestamps that the sweeper reads.
 *
 * The actor hibernates: no fiber exists while its mailbox is empty. The
 * reactor pushes into the mailbox synchronously; the first push into an empty
 * mailbox forks a drain fiber, which takes the whole mailbox as a batch,
 * handles it one message at a time (the transport coalesces the batch's writes)
 * and ends when the mailbox is empty (`drain.ts`). So an idle connection
 * costs this record and its socket, nothing else (see
 * docs/adr/0001-hibernating-actors.md). Its timers are checked by the
 * supervisor's sweeper (`sweeper.ts`), from the timestamps kept here.
 *
 * How a connection ends: the socket closes (`closedUnsafe`), a `Closed`
 * signal runs `onClose` and the finalizers (`runCloseCallbacks`), and the
 * actor leaves its supervisor (`leaveSupervisor`), which wakes whoever awaits
 * `finished`. An idle actor with nothing to run leaves at once, without a
 * fiber.
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as References from "effect/References"
import type * as Semaphore from "effect/Semaphore"
import type * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type * as Behavior from "../Behavior.ts"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import type * as Connection from "../Connection.ts"
import * as ConnectionError from "../ConnectionError.ts"
import type * as Handshake from "../Handshake.ts"
import * as Message from "../Message.ts"
import type { PreparedMessage } from "../PreparedMessage.ts"
import type { RouteSettings, Transport } from "../Reactor.ts"
import { handlersOf } from "./behavior.ts"
import { processTag } from "./directory.ts"
import { wake } from "./drain.ts"
import { Finalizers } from "./finalizers.ts"
import { Inbound } from "./inboundStream.ts"
import { Closed, Drained, Mailbox, Open, type Signal } from "./mailbox.ts"
import { sendStream } from "./outboundStream.ts"
import * as ReceivedText from "./receivedText.ts"
import { closeCodeFor, stats } from "./serverStats.ts"
import { admitUnsafe, TokenBucket } from "./tokenBucket.ts"

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

/** Where a connection is in its life: open; closing (a close frame went, or ws failed it); closed (the socket is gone). */
export const phases = { open: 0, closing: 1, closed: 2 } as const
type Phase = (typeof phases)[keyof typeof phases]

let nextId = 0

export class ActorImpl implements Connection.Connection<unknown> {
  // ---------------------------------------------------------------- fields, all declared here

  // what the connection is
  readonly serial = ++nextId
  private idString: string | undefined = undefined
  readonly host: Host
  readonly transport: Transport
  readonly settings: RouteSettings
  readonly request: Handshake.UpgradeRequest
  /** When it was accepted, by the Clock (ms since the epoch). */
  readonly connectedAt: number
  /** The path of its route ("" off a server), for metrics and logs. */
  readonly route: string
  readonly auth: unknown
  readonly protocol: string | undefined
  // the supervisor runs every fiber with the server's services, so R is provided
  readonly handlers: Behavior.Handlers<unknown, unknown, unknown, never>

  // the behaviour's state and the connection's life
  state: unknown = undefined
  /** True once `init` succeeded (or there is none): `onClose` runs only then. */
  started = false
  phase: Phase = phases.open
  crashed = false
  closeReason: CloseReason.CloseReason | undefined = undefined

  // lifecycle timestamps, as `host.now`, for the sweeper
  /** Last inbound frame of any kind (keepalive). */
  lastIn: number
  /** Last inbound message (idle). */
  lastMessage: number
  /** Last outbound message (idle). */
  lastOut: number
  /** When the unanswered keepalive ping was sent; -1 when none is pending. */
  pingSentAt = -1
  /** When the server sent its close frame; -1 when it has not. */
  closeSentAt = -1

  // the mailbox and its drain fiber
  /** Made by the first signal into a hibernating actor, dropped when its drain ends. */
  mailbox: Mailbox | undefined = undefined
  /** True while a drain fiber runs (or is about to). */
  running = false
  /** True from a wake until its drain fiber starts (within the same turn). */
  scheduled = false
  fiber: Fiber.Fiber<void, never> | undefined = undefined
  /** The connection's span (accept to close), when a tracer other than Effect's default is installed. */
  private readonly span: Tracer.Span | undefined
  /** The drain fiber's exit observer, made on the first drain: an idle connection holds none. */
  onDrainExit: ((exit: Exit.Exit<void>) => void) | undefined = undefined
  /** What waits for the socket to drain (`send` above the high-water mark, `awaitDrained`): each checks again. */
  private drainWaiters: Array<() => void> | undefined = undefined
  /** The outbound buffer passed the high-water mark, and `onDrain` waits for it to empty. */
  private drainWatched = false
  /** The behaviour asked to stop reading (`pauseReading`). */
  readingPaused = false
  /**
   * Told once, the moment the socket is closed, even while a callback runs
   * (finalizers wait for it): the worker pool stops a connection's jobs,
   * and any `submit` it is blocked in, without waiting for its batch.
   */
  private closeWatchers: Array<() => void> | undefined = undefined
  /** Set while `sendStream` writes a message: other writes wait in `held` (data frames never interleave). */
  streaming = false
  /** Writes held while a message is streamed, in order, with their bytes. */
  private held: Array<Message.Message | PreparedMessage> | undefined = undefined
  private heldBytes = 0
  /** One `sendStream` at a time; made by the first. */
  streamLock: Semaphore.Semaphore | undefined = undefined
  /** On a route that receives streams: the message whose pieces are arriving. */
  private receiving: Inbound | undefined = undefined
  /** Bytes of received pieces that wait for the behaviour, over all its streamed messages. */
  private inboundBytes = 0
  /** Reading stopped because `inboundBytes` passed the high-water mark. */
  private inboundPaused = false
  /** The socket's reading is stopped now, for whatever reason (counted in the metrics). */
  private socketPaused = false
  /** When the close frame went, by the Clock (exact, unlike `closeSentAt`): the close duration's start. */
  private closeStartedAt = -1
  /** The route's rate limit; undefined on routes without one. */
  private readonly bucket: TokenBucket | undefined

  // the end
  private finalizers: Finalizers | undefined = undefined
  /** True once the actor left its supervisor. */
  private ended = false
  private endWaiters: Array<() => void> | undefined = undefined

  constructor(
    host: Host,
    transport: Transport,
    settings: RouteSettings,
    behavior: Behavior.Behavior<unknown, unknown>,
    request: Handshake.UpgradeRequest,
    auth: unknown,
    protocol: string | undefined,
    route = ""
  ) {
    this.route = route
    this.host = host
    this.transport = transport
    this.settings = settings
    this.request = request
    this.auth = auth
    this.protocol = protocol
    this.handlers = handlersOf(behavior) as Behavior.Handlers<unknown, unknown, unknown, never>
    this.lastIn = this.lastMessage = this.lastOut = host.now
    this.connectedAt = host.time()
    this.span = connectionSpan(this)
    this.bucket = settings.rateLimit === undefined ? undefined : new TokenBucket(settings.rateLimit, host.time())
    if (this.handlers.init !== undefined) this.push(Open)
    else this.started = true
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
  /** Unique across processes (`c<serial>.<process tag>`); built on first use and kept. */
  get id(): string {
    return (this.idString ??= `c${this.serial}.${processTag}`)
  }
  get isOpen(): boolean {
    return this.phase === phases.open
  }
  /** True on a route that receives messages as streams (`onStream`). */
  get receivesStreams(): boolean {
    return this.settings.receive === "stream"
  }
  /** Wire bytes so far, for the metrics. */
  get bytesRead(): number {
    return this.transport.bytesRead ?? 0
  }
  get bytesWritten(): number {
    return this.transport.bytesWritten ?? 0
  }
  /** What the socket buffers, and the writes held behind a streamed message. */
  get bufferedAmount(): number {
    return this.transport.bufferedAmount + this.heldBytes
  }

  // ---------------------------------------------------------------- reactor side

  /** A message from the peer. Pauses the socket when the mailbox is full. */
  receiveUnsafe(message: Message.Message, utf8?: Uint8Array): void {
    this.lastIn = this.lastMessage = this.host.now
    if (this.phase === phases.closed || this.crashed) return
    if (this.bucket !== undefined && !admitUnsafe(this, this.bucket, message)) return
    const mailbox = (this.mailbox ??= new Mailbox())
    stats.messagesReceived++
    if (mailbox.pushMessage(message, this.settings.mailboxCapacity, this.settings.maxMessageBytes, utf8)) {
      stats.mailboxPauses++
      if (!this.readingPaused) this.pauseSocket()
    }
    wake(this)
  }

  /**
   * A piece of a message on a route that receives streams. The first piece
   * queues the message (one mailbox signal, as a whole message would be);
   * the pieces go to its stream. Reading stops while more than
   * `highWaterMark` bytes of pieces wait, or the mailbox is full.
   */
  receiveChunkUnsafe(chunk: Message.Message, first: boolean, last: boolean): void {
    this.lastIn = this.lastMessage = this.host.now
    if (first) {
      this.receiving = undefined
      if (this.phase === phases.closed || this.crashed) return
      const inbound = new Inbound(this, typeof chunk !== "string")
      this.receiving = inbound
      if (this.bucket !== undefined && !admitUnsafe(this, this.bucket, chunk)) {
        // refused by the rate limit: its pieces are read and dropped
        inbound.discard()
      } else {
        const mailbox = (this.mailbox ??= new Mailbox())
        stats.messagesReceived++
        if (mailbox.pushSignal({ _tag: "Streamed", inbound }, this.settings.mailboxCapacity)) {
          stats.mailboxPauses++
          this.pauseFor()
        }
        wake(this)
      }
    }
    const inbound = this.receiving
    if (inbound === undefined) return
    if (last) this.receiving = undefined
    // counted before the push: a waiting pull takes (and releases) the piece at once
    if (!inbound.discarded) this.inboundBytes += chunk.length
    inbound.push(chunk, last)
    if (!this.inboundPaused && this.inboundBytes > this.settings.highWaterMark) {
      this.pauseFor()
      this.inboundPaused = true
    }
  }

  /** Pieces were read (or dropped): read again once few enough wait. */
  releaseInboundUnsafe(bytes: number): void {
    this.inboundBytes -= bytes
    if (this.inboundPaused && this.inboundBytes <= this.settings.highWaterMark) {
      this.inboundPaused = false
      if (this.mayRead()) this.resumeSocket()
    }
  }

  /** Stops reading, unless the socket is stopped already (for whatever reason). */
  private pauseFor(): void {
    if (!this.socketPaused) this.pauseSocket()
  }

  /** Stops reading from the socket (counted in `switchboard_reading_paused` until it reads again or closes). */
  pauseSocket(): void {
    if (!this.socketPaused) {
      this.socketPaused = true
      stats.readingPaused++
    }
    this.transport.pause()
  }

  /** Reads from the socket again. */
  resumeSocket(): void {
    if (this.socketPaused) {
      this.socketPaused = false
      stats.readingPaused--
    }
    this.transport.resume()
  }

  /** No reason to keep reading stopped: the behaviour's, a full mailbox's or too many pieces'. */
  mayRead(): boolean {
    return this.phase !== phases.closed && !this.readingPaused && this.mailbox?.paused !== true && !this.inboundPaused
  }

  /** Fails the message whose pieces were arriving: the connection broke before its end. */
  private cutReceiving(reason: ConnectionError.Reason): void {
    const inbound = this.receiving
    if (inbound === undefined) return
    this.receiving = undefined
    inbound.fail(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
  }

  /** Any inbound frame that is not a message, a ping or a pong. */
  activityUnsafe(): void {
    this.lastIn = this.host.now
  }

  /** A ping from the peer: activity, and a `Ping` signal for `onPing` while the mailbox has room. */
  pingUnsafe(payload: Uint8Array): void {
    this.lastIn = this.host.now
    if (this.handlers.onPing === undefined || this.phase !== phases.open || this.crashed) return
    const mailbox = (this.mailbox ??= new Mailbox())
    if (mailbox.size >= this.settings.mailboxCapacity) return
    // its own bytes: the reactor's may be a view on a whole socket read
    mailbox.push({ _tag: "Ping", payload: new Uint8Array(payload) })
    wake(this)
  }

  pongUnsafe(): void {
    this.lastIn = this.host.now
    this.pingSentAt = -1
  }

  /** Calls `watcher` once when the socket closes (at once if it has). */
  watchClosedUnsafe(watcher: () => void): void {
    if (this.phase === phases.closed) watcher()
    else if (this.closeWatchers === undefined) this.closeWatchers = [watcher]
    else this.closeWatchers.push(watcher)
  }

  /** Forgets a watcher that is no longer needed. */
  unwatchClosedUnsafe(watcher: () => void): void {
    const at = this.closeWatchers?.indexOf(watcher) ?? -1
    if (at >= 0) this.closeWatchers!.splice(at, 1)
  }

  drainUnsafe(): void {
    const waiters = this.drainWaiters
    if (waiters !== undefined) {
      this.drainWaiters = undefined
      for (const waiter of waiters) waiter()
    }
    if (this.drainWatched) this.watchDrain()
  }

  /** For `onDrain`: once the buffer has passed the high-water mark, a `Drained` signal when it is empty. */
  private watchDrain(): void {
    if (this.phase !== phases.open) {
      this.drainWatched = false
      return
    }
    if (this.transport.bufferedAmount > 0) {
      this.drainWatched = true
      this.transport.flush()
      return
    }
    this.drainWatched = false
    this.push(Drained)
  }

  /** After a write: whether `onDrain` must watch the buffer. */
  private afterWrite(): void {
    if (!this.drainWatched && this.transport.bufferedAmount > this.settings.highWaterMark) this.watchDrain()
  }

  /**
   * The peer broke the protocol or a limit; the reactor sends the close frame
   * itself, so `closeTimeout` runs from now, as after a close the actor sent.
   */
  failedUnsafe(reason: ConnectionError.Reason): void {
    if (this.closeReason === undefined) {
      this.closeReason = CloseReason.error(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
    }
    this.cutReceiving(reason)
    if (this.phase !== phases.open) return
    this.phase = phases.closing
    this.closeSentAt = this.host.now
    this.closeStartedAt = this.host.time()
  }

  /** The socket is closed; `code` is the peer's close code (1005 without one, 1006 if it dropped). */
  closedUnsafe(code: number, reason: string): void {
    if (this.phase === phases.closed) return
    this.phase = phases.closed
    if (this.closeStartedAt >= 0) stats.closeDuration.observe((this.host.time() - this.closeStartedAt) / 1000)
    if (this.socketPaused) {
      this.socketPaused = false
      stats.readingPaused--
    }
    // an error is made only when a streamed message was cut off: its stack trace is not free
    if (this.receiving !== undefined) this.cutReceiving(new ConnectionError.Incomplete({ code }))
    if (this.closeReason === undefined) {
      this.closeReason = code === CloseCode.Abnormal ? CloseReason.lost : CloseReason.peer(code, reason)
    }
    this.drainUnsafe()
    const watchers = this.closeWatchers
    if (watchers !== undefined) {
      this.closeWatchers = undefined
      for (const watcher of watchers) watcher()
    }
    // Nothing to run (no onClose, no finalizer, an idle actor): leave here, without a fiber.
    if (!this.running && (this.mailbox?.size ?? 0) === 0 && this.finalizers === undefined && !this.needsOnClose()) {
      this.leaveSupervisor()
      return
    }
    this.push(Closed)
  }

  // ---------------------------------------------------------------- behaviour side

  send(message: Message.Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.phase !== phases.open) return Effect.void
      stats.messagesSent++
      if (this.streaming) this.hold(message, Message.byteLength(message))
      else this.write(message)
      this.lastOut = this.host.now
      if (this.bufferedAmount <= this.settings.highWaterMark) return Effect.void
      if (this.handlers.onDrain !== undefined) this.afterWrite()
      stats.sendSuspensions++
      return this.untilBuffered(this.settings.highWaterMark)
    })
  }

  /** A message to the transport; a text that is being handled goes as the bytes it arrived in, where the transport takes them. */
  private write(message: Message.Message): void {
    const transport = this.transport
    if (typeof message === "string" && transport.sendUtf8 !== undefined) {
      const utf8 = ReceivedText.bytesOf(message)
      if (utf8 !== undefined) {
        transport.sendUtf8(utf8)
        return
      }
    }
    transport.send(message)
  }

  sendStream<E, R>(
    stream: Stream.Stream<Message.Message, E, R>,
    options?: Connection.SendStreamOptions
  ): Effect.Effect<void, E | ConnectionError.ConnectionError, R> {
    return sendStream(this, stream, options)
  }

  /** One fragment of a streamed message; false when the connection is no longer open. */
  writeFragmentUnsafe(data: Message.Message, fin: boolean): boolean {
    if (this.phase !== phases.open) return false
    if (fin) stats.messagesSent++
    this.transport.sendFragment(data, fin)
    this.lastOut = this.host.now
    if (this.handlers.onDrain !== undefined) this.afterWrite()
    return true
  }

  private hold(write: Message.Message | PreparedMessage, bytes: number): void {
    ;(this.held ??= []).push(write)
    this.heldBytes += bytes
  }

  /** The streamed message ended: the held writes go out in order (dropped if the connection is no longer open). */
  endStreamUnsafe(): void {
    this.streaming = false
    const held = this.held
    if (held === undefined) return
    this.held = undefined
    this.heldBytes = 0
    if (this.phase === phases.open) {
      for (const write of held) {
        if (Message.isMessage(write)) this.transport.send(write)
        else this.transport.sendPrepared(write)
      }
    }
    // whoever waits for room counted the held bytes: look again
    this.drainUnsafe()
  }

  /**
   * Suspends until at most `bytes` are buffered (or the socket closes),
   * checking at each drain; `socketOnly` leaves out the held writes (which
   * wait for the stream that is waiting here).
   */
  untilBuffered(bytes: number, socketOnly = false): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      let done = false
      const attempt = () => {
        if (done) return
        const buffered = socketOnly ? this.transport.bufferedAmount : this.bufferedAmount
        if (this.phase === phases.closed || buffered <= bytes) {
          done = true
          resume(Effect.void)
          return
        }
        ;(this.drainWaiters ??= []).push(attempt)
        this.transport.flush()
      }
      attempt()
      return Effect.sync(() => {
        done = true
      })
    })
  }

  get awaitDrained(): Effect.Effect<void> {
    return this.untilBuffered(0)
  }

  get pauseReading(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.readingPaused || this.phase === phases.closed) return
      if (this.mailbox?.paused !== true && !this.inboundPaused) this.pauseSocket()
      this.readingPaused = true
    })
  }

  get resumeReading(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (!this.readingPaused) return
      this.readingPaused = false
      // keepalive and the idle timeout start again: the peer could not be heard
      this.lastIn = this.lastMessage = this.host.now
      this.pingSentAt = -1
      if (this.mayRead()) this.resumeSocket()
    })
  }

  /** The hub's fan-out write: synchronous, never waits; false when the connection is not open. */
  sendPreparedUnsafe(prepared: PreparedMessage): boolean {
    if (this.phase !== phases.open) return false
    stats.messagesSent++
    stats.hubDeliveries++
    if (this.streaming) this.hold(prepared, prepared.bytes.byteLength)
    else this.transport.sendPrepared(prepared)
    this.lastOut = this.host.now
    if (this.handlers.onDrain !== undefined) this.afterWrite()
    return true
  }

  addFinalizer(finalizer: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.ended) return finalizer
      ;(this.finalizers ??= new Finalizers()).add(finalizer)
      return Effect.void
    })
  }

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
      if (!CloseCode.isSendableReason(reason)) {
        const message = `close reason longer than ${CloseCode.maxReasonBytes} bytes`
        return this.fail(new ConnectionError.InvalidClose({ code, message }))
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
    if (this.phase === phases.closed || this.crashed) return false
    if ((this.mailbox?.size ?? 0) >= this.settings.mailboxCapacity) return false
    this.push({ _tag: "Info", value: info })
    return true
  }

  /**
   * `tellUnsafe` past the mailbox's capacity, for senders whose messages are
   * bounded by other means: a job result (a connection has at most
   * `maxJobsPerConnection` jobs) must not be lost to a full mailbox.
   */
  deliverUnsafe(info: unknown): boolean {
    if (this.phase === phases.closed || this.crashed) return false
    this.push({ _tag: "Info", value: info })
    return true
  }

  private fail(reason: ConnectionError.Reason): Effect.Effect<never, ConnectionError.ConnectionError> {
    return Effect.fail(new ConnectionError.ConnectionError({ connectionId: this.id, reason }))
  }

  // ---------------------------------------------------------------- closing

  /** Sends a close frame once, remembering why; the sweeper enforces `closeTimeout`. */
  closeWith(code: number, reason: string, why: CloseReason.CloseReason): void {
    if (this.phase !== phases.open) return
    this.phase = phases.closing
    this.closeReason ??= why
    this.closeSentAt = this.host.now
    this.closeStartedAt = this.host.time()
    this.span?.event("switchboard.close_sent", nanos(this.closeStartedAt), { code, reason })
    this.transport.close(code, reason)
  }

  /** Destroys the socket now; the reactor reports the close. */
  terminate(why: CloseReason.CloseReason): void {
    if (this.phase === phases.closed) return
    this.closeReason ??= why
    this.transport.terminate()
  }

  // ---------------------------------------------------------------- the mailbox (its drain loop is drain.ts)

  private push(signal: Signal): void {
    ;(this.mailbox ??= new Mailbox()).push(signal)
    wake(this)
  }

  // ---------------------------------------------------------------- the end

  /** Resolves once the drain fiber has ended with nothing queued behind it: every signal so far handled. */
  get idle(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const fiber = this.fiber
      if (fiber !== undefined) return Effect.andThen(Fiber.await(fiber), this.idle)
      // woken, and its drain starts later in this turn
      if (this.scheduled) return Effect.andThen(Effect.yieldNow, this.idle)
      return Effect.void
    })
  }

  /** Resolves once `onClose` has run and the actor left its supervisor. */
  get finished(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.ended) return resume(Effect.void)
      ;(this.endWaiters ??= []).push(() => resume(Effect.void))
    })
  }

  /** True when `onClose` is to run: it exists, and `init` (if any) succeeded. */
  private needsOnClose(): boolean {
    return this.handlers.onClose !== undefined && this.started
  }

  /** The `Closed` signal: `onClose` (logged if it fails), the finalizers (last added first), then leave. */
  runCloseCallbacks(): Effect.Effect<void, unknown> {
    const finalize = Effect.andThen(
      Effect.suspend(() => this.finalizers?.runAll((message, cause) => this.logCause(message, cause)) ?? Effect.void),
      Effect.sync(() => this.leaveSupervisor())
    )
    // a behaviour whose init failed has no state to close over
    if (!this.needsOnClose()) return finalize
    return this.handlers.onClose!(this, this.closeReason ?? CloseReason.lost, this.state).pipe(
      Effect.catchCause((cause) => this.logCause("onClose failed", cause)),
      Effect.andThen(finalize)
    )
  }

  /** The actor is gone: leave the supervisor and wake whoever awaits `finished`. */
  private leaveSupervisor(): void {
    this.ended = true
    this.endSpan()
    this.host.remove(this)
    const waiters = this.endWaiters
    this.endWaiters = undefined
    if (waiters !== undefined) for (const wake of waiters) wake()
  }

  /** Ends the connection's span with how it closed (a crash as the span's failure). */
  private endSpan(): void {
    const span = this.span
    if (span === undefined) return
    const reason = this.closeReason ?? CloseReason.lost
    span.attribute("switchboard.close.reason", reason._tag)
    span.attribute("switchboard.close.code", closeCodeFor(reason))
    span.end(nanos(this.host.time()), reason._tag === "Crash" ? Exit.failCause(reason.cause) : Exit.void)
  }

  logCause(message: string, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.logError(message, cause).pipe(Effect.annotateLogs(this.logAnnotations()))
  }

  /** What every log line of this connection carries: its id and its route. */
  private logAnnotations(): Record<string, string> {
    return this.route === "" ? { connectionId: this.id } : { connectionId: this.id, route: this.route }
  }

  /**
   * Forks `effect` (the drain loop, the behaviour's callbacks) so that every
   * log line in it, the behaviour's own too, is annotated with the
   * connection's id and route. The annotated services are made for each
   * drain and dropped with it, not kept for the connection's life: an idle
   * connection holds none (about 200 bytes less a connection), for about
   * 100 ns a drain.
   */
  forkAnnotated<A, E>(effect: Effect.Effect<A, E, never>): Fiber.Fiber<A, E> {
    const base = this.host.context
    const annotations = { ...Context.get(base, References.CurrentLogAnnotations), ...this.logAnnotations() }
    let context = Context.add(base, References.CurrentLogAnnotations, annotations)
    // the behaviour's own spans are children of the connection's
    if (this.span !== undefined) context = Context.add(context, Tracer.ParentSpan, this.span)
    return Effect.runForkWith(context)(effect)
  }
}

/** Clock milliseconds as a span's nanoseconds. */
const nanos = (millis: number): bigint => BigInt(Math.round(millis * 1_000_000))

/** Effect's default tracer: with it, spans go nowhere, and connections make none. */
const defaultTracer: Tracer.Tracer = Context.get(Context.empty(), Tracer.Tracer)

/** A span "switchboard.connection" from accept to close, under the server's tracer; none with the default one. */
const connectionSpan = (actor: ActorImpl): Tracer.Span | undefined => {
  const context = actor.host.context
  const tracer = Context.get(context, Tracer.Tracer)
  if (tracer === defaultTracer) return undefined
  const span = tracer.span({
    name: "switchboard.connection",
    parent: Context.getOption(context, Tracer.ParentSpan),
    annotations: Context.empty(),
    links: [],
    startTime: nanos(actor.connectedAt),
    kind: "server",
    root: false,
    sampled: true
  })
  span.attribute("switchboard.connection.id", actor.id)
  span.attribute("switchboard.route", actor.route)
  span.attribute("net.peer.ip", actor.remoteAddress)
  if (actor.protocol !== undefined) span.attribute("switchboard.protocol", actor.protocol)
  return span
}
