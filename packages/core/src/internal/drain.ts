/**
 * An actor's drain loop: the fiber that exists only while the mailbox has
 * work (docs/adr/0001-hibernating-actors.md). `wake` forks it on the first
 * signal into an empty mailbox; it takes the mailbox as a batch, runs the
 * behaviour's callbacks one signal at a time, takes the next batch, and ends
 * when the mailbox is empty.
 *
 * Supervision lives here too: a callback that fails or dies crashes the
 * actor (closed with 1011, logged with the connection id), the rest of the
 * batch is skipped but a close behind the failure still runs `onClose`; a
 * drain fiber that dies outside the loop is supervised the same way.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import * as ConnectionError from "../ConnectionError.ts"
import { isMessage } from "../Message.ts"
import { type ActorImpl, phases } from "./actor.ts"
import { Open, type Signal } from "./mailbox.ts"
import * as ReceivedText from "./receivedText.ts"
import { stats } from "./serverStats.ts"

/**
 * Actors woken outside any drain (by the reactor, a timer, I/O), started
 * together in one microtask: after the reactor has pushed everything it
 * parsed from one TCP read, so the read lands in one batch whose replies go
 * out in one write, and before the turn's corked writes are flushed.
 */
let woken: Array<ActorImpl> = []
/**
 * Actors woken by a drain (a `tell` from another actor), started on the next
 * turn of the event loop: actors that keep telling each other take turns
 * with I/O and timers instead of starving them in one microtask loop.
 */
let wokenByDrain: Array<ActorImpl> = []
/** True while woken actors are being started (their drains run inside). */
let starting = false

const nextTurn: (f: () => void) => void =
  typeof globalThis.setImmediate === "function" ? (f) => globalThis.setImmediate(f) : (f) => globalThis.setTimeout(f, 0)

const startAll = (actors: Array<ActorImpl>): void => {
  const outer = starting
  starting = true
  try {
    for (const actor of actors) start(actor)
  } finally {
    starting = outer
  }
}
const startWoken = (): void => {
  const actors = woken
  woken = []
  startAll(actors)
}
const startWokenByDrain = (): void => {
  const actors = wokenByDrain
  wokenByDrain = []
  startAll(actors)
}

/**
 * Schedules `actor`'s drain fiber if none runs. It starts after this call,
 * never inside it: one shared microtask (or, woken from a drain, one shared
 * next-turn callback) starts every actor woken meanwhile, so a wake costs no
 * scheduler hop of its own and the drain runs to its end without yielding
 * when the behaviour does not wait.
 */
export const wake = (actor: ActorImpl): void => {
  if (actor.running) return
  actor.running = true
  actor.scheduled = true
  if (starting) {
    if (wokenByDrain.push(actor) === 1) nextTurn(startWokenByDrain)
  } else if (woken.push(actor) === 1) queueMicrotask(startWoken)
}

const start = (actor: ActorImpl): void => {
  actor.scheduled = false
  const fiber = actor.forkAnnotated(Effect.suspend(() => new Drain(actor).step()))
  // a drain that did not wait has ended already (and cleared `running`): only a live one is kept
  if (fiber.pollUnsafe() === undefined) actor.fiber = fiber
  fiber.addObserver((actor.onDrainExit ??= (exit) => drainExited(actor, exit)))
}

/**
 * The drain loop handles every failure of a callback itself; a drain fiber
 * that still ends in failure hit something the loop could not catch (a
 * callback that returned a non-effect, a throwing logger). Supervise it the
 * same way: close with 1011, and let a new drain deliver the close.
 */
const drainExited = (actor: ActorImpl, exit: Exit.Exit<void>): void => {
  if (exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)) return
  actor.running = false
  actor.fiber = undefined
  actor.crashed = true
  actor.host.fork(actor.logCause("actor died; closing with 1011", exit.cause))
  actor.closeWith(CloseCode.InternalError, "internal error", CloseReason.crash(exit.cause))
  if ((actor.mailbox?.size ?? 0) > 0) wake(actor)
}

/**
 * One drain: takes the mailbox as a batch, runs the behaviour's callback for
 * each signal in turn, takes the next batch, and ends when the mailbox is
 * empty. Made when the drain starts and dropped when it ends, so an idle
 * actor holds none; its two continuations are made once per drain, not per
 * signal, and the clock is read once per callback (one callback's end is the
 * next one's start).
 *
 * A failure crashes the actor and the batch goes on after the signal that
 * failed: messages and infos are skipped (the actor has crashed), but a close
 * signal behind the failure still runs `onClose`.
 */
class Drain {
  readonly actor: ActorImpl
  batch: Array<Signal> | undefined = undefined
  /** The signal being handled. */
  at = 0
  /** When its callback started (`performance.now()`). */
  startedAt = 0
  /** The clock read at the end of the last callback, or -1 after other work. */
  lastEnd = -1
  readonly handlers: {
    readonly onSuccess: (value: unknown) => Effect.Effect<void>
    readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
  }

  constructor(actor: ActorImpl) {
    this.actor = actor
    this.handlers = {
      onSuccess: (value) => {
        this.settle(this.batch![this.at]!, value)
        this.at++
        return this.step()
      },
      onFailure: (cause) => {
        this.observe()
        this.lastEnd = -1
        this.at++
        return Effect.andThen(
          onFailure(this.actor, cause),
          Effect.suspend(() => this.step())
        )
      }
    }
  }

  /**
   * A callback ended: its time, waits included, goes to
   * switchboard_behavior_duration_seconds, and the text it handled is no
   * longer the one being handled.
   */
  private observe(): void {
    ReceivedText.clear()
    const now = performance.now()
    stats.behaviorDuration.observe((now - this.startedAt) / 1000)
    this.lastEnd = now
  }

  /** A callback succeeded with `value`: the behaviour's next state (or, for `Open`, its first). */
  private settle(signal: Signal, value: unknown): void {
    this.observe()
    const actor = this.actor
    if (isMessage(signal) || signal._tag !== "Closed") actor.state = value
    if (signal === Open) actor.started = true
  }

  /** Runs the next signal's callback, taking the next batch when this one is done; void once the mailbox is empty. */
  step(): Effect.Effect<void> {
    const actor = this.actor
    while (true) {
      const batch = this.batch
      if (batch !== undefined) {
        for (; this.at < batch.length; this.at++) {
          const signal = batch[this.at]!
          const effect = handle(actor, signal)
          if (effect === undefined) continue
          if (typeof signal === "string") {
            const utf8 = actor.mailbox!.batchUtf8?.[this.at]
            if (utf8 !== undefined) ReceivedText.set(signal, utf8)
          }
          this.startedAt = this.lastEnd >= 0 ? this.lastEnd : performance.now()
          return Effect.matchCauseEffect(effect, this.handlers)
        }
        actor.mailbox!.recycle(batch)
        this.batch = undefined
      }
      const mailbox = actor.mailbox
      if (mailbox === undefined || mailbox.size === 0) {
        actor.running = false
        actor.fiber = undefined
        // hibernating: the next signal makes a new mailbox, so an idle connection holds none
        if (mailbox !== undefined && !mailbox.paused) actor.mailbox = undefined
        return Effect.void
      }
      this.batch = mailbox.takeAll()
      this.at = 0
      this.lastEnd = -1
      if (mailbox.paused) {
        mailbox.paused = false
        // reading stays paused while the behaviour has asked for it (`pauseReading`), or pieces of streamed messages wait
        if (actor.mayRead()) actor.resumeSocket()
      }
    }
  }
}

/** The effect for one signal (its success is the behaviour's next state), or undefined when there is nothing to run. */
const handle = (actor: ActorImpl, signal: Signal): Effect.Effect<unknown, unknown> | undefined => {
  const h = actor.handlers
  if (isMessage(signal)) {
    if (actor.crashed || h.onMessage === undefined) return undefined
    return h.onMessage(actor, signal, actor.state)
  }
  switch (signal._tag) {
    case "Info":
      if (actor.crashed || h.onInfo === undefined) return undefined
      return h.onInfo(actor, signal.value, actor.state)
    case "Ping":
      if (actor.crashed || h.onPing === undefined) return undefined
      return h.onPing(actor, signal.payload, actor.state)
    case "Streamed": {
      const inbound = signal.inbound
      if (actor.crashed || h.onStream === undefined) {
        inbound.discard()
        return undefined
      }
      return Effect.ensuring(
        h.onStream(actor, inbound.message, actor.state),
        Effect.sync(() => inbound.discard())
      )
    }
    case "Drained":
      if (actor.crashed || h.onDrain === undefined || actor.phase !== phases.open) return undefined
      return h.onDrain(actor, actor.state)
    case "Open":
      return h.init!(actor)
    case "Closed":
      return actor.runCloseCallbacks()
  }
}

/**
 * True when a callback failed with this connection's own `ConnectionError`
 * after the connection stopped being open: the end of the connection seen
 * through a stream it was reading (a streamed message cut off, with
 * `Incomplete` or the reason the reactor failed it), not a fault of the
 * behaviour.
 */
const isOwnEnd = (actor: ActorImpl, cause: Cause.Cause<unknown>): boolean => {
  if (actor.phase === phases.open) return false
  const failure = cause.reasons.find(Cause.isFailReason)
  return (
    failure !== undefined &&
    cause.reasons.every((reason) => Cause.isFailReason(reason) || Cause.isInterruptReason(reason)) &&
    failure.error instanceof ConnectionError.ConnectionError &&
    failure.error.connectionId === actor.id
  )
}

const onFailure = (actor: ActorImpl, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
  if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
  actor.crashed = true
  if (isOwnEnd(actor, cause)) {
    // the close reason stays the connection's own (Lost, Peer, Error): the client did this
    // the drain fiber's lines carry the connection's id and route already
    return Effect.logDebug("behavior ended by its connection's end", cause)
  }
  stats.behaviorFailures++
  if (actor.phase === phases.closed) {
    // the failure came from onClose's turn or after the socket closed: log, then end
    return actor.logCause("behavior failed", cause)
  }
  actor.closeWith(CloseCode.InternalError, "internal error", CloseReason.crash(cause))
  if (actor.closeReason?._tag !== "Crash") actor.closeReason = CloseReason.crash(cause)
  return actor.logCause("behavior failed; closing with 1011", cause)
}
