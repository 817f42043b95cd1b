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
import { Cause, Effect, type Exit } from "effect"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import * as ConnectionError from "../ConnectionError.ts"
import { isMessage } from "../Message.ts"
import { type ActorImpl, phases } from "./actor.ts"
import type { Signal } from "./mailbox.ts"
import { stats } from "./serverStats.ts"

/** Forks `actor`'s drain fiber if none runs. */
export const wake = (actor: ActorImpl): void => {
  if (actor.running) return
  actor.running = true
  // The drain starts on the next scheduler tick, not inside this call: every message the
  // reactor parses from one TCP read lands in the same batch, whose replies go out in one write.
  actor.fiber = actor.forkAnnotated(
    (actor.drain ??= Effect.andThen(
      Effect.yieldNow,
      Effect.suspend(() => next(actor))
    ))
  )
  actor.fiber.addObserver((actor.onDrainExit ??= (exit) => drainExited(actor, exit)))
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

/** Takes the mailbox as one batch and handles it; again until the mailbox is empty. */
const next = (actor: ActorImpl): Effect.Effect<void> => {
  const mailbox = actor.mailbox
  if (mailbox === undefined || mailbox.size === 0) {
    actor.running = false
    actor.fiber = undefined
    return Effect.void
  }
  const batch = mailbox.takeAll()
  if (mailbox.paused) {
    mailbox.paused = false
    // reading stays paused while the behaviour has asked for it (`pauseReading`), or pieces of streamed messages wait
    if (actor.mayRead()) actor.resumeSocket()
  }
  return Effect.flatMap(handleFrom(actor, batch, 0), () => {
    mailbox.recycle(batch)
    return next(actor)
  })
}

/**
 * Handles `batch` from `start`, one signal at a time. A failure crashes the
 * actor and the batch goes on after the signal that failed: messages and
 * infos are skipped (the actor has crashed), but a close signal behind the
 * failure still runs `onClose`.
 */
const handleFrom = (actor: ActorImpl, batch: Array<Signal>, start: number): Effect.Effect<void> => {
  for (let i = start; i < batch.length; i++) {
    const effect = handle(actor, batch[i]!)
    if (effect === undefined) continue
    // the callback's time, waits included, for switchboard_behavior_duration_seconds
    const started = performance.now()
    return Effect.matchCauseEffect(effect, {
      onSuccess: () => {
        stats.behaviorDuration.observe((performance.now() - started) / 1000)
        return handleFrom(actor, batch, i + 1)
      },
      onFailure: (cause) => {
        stats.behaviorDuration.observe((performance.now() - started) / 1000)
        return Effect.andThen(
          onFailure(actor, cause),
          Effect.suspend(() => handleFrom(actor, batch, i + 1))
        )
      }
    })
  }
  return Effect.void
}

/** The effect for one signal, or undefined when there is nothing to run. */
const handle = (actor: ActorImpl, signal: Signal): Effect.Effect<void, unknown> | undefined => {
  const h = actor.handlers
  if (isMessage(signal)) {
    if (actor.crashed || h.onMessage === undefined) return undefined
    return Effect.map(h.onMessage(actor, signal, actor.state), stateSetter(actor))
  }
  switch (signal._tag) {
    case "Info":
      if (actor.crashed || h.onInfo === undefined) return undefined
      return Effect.map(h.onInfo(actor, signal.value, actor.state), stateSetter(actor))
    case "Ping":
      if (actor.crashed || h.onPing === undefined) return undefined
      return Effect.map(h.onPing(actor, signal.payload, actor.state), stateSetter(actor))
    case "Streamed": {
      const inbound = signal.inbound
      if (actor.crashed || h.onStream === undefined) {
        inbound.discard()
        return undefined
      }
      return Effect.ensuring(
        Effect.map(h.onStream(actor, inbound.message, actor.state), stateSetter(actor)),
        Effect.sync(() => inbound.discard())
      )
    }
    case "Drained":
      if (actor.crashed || h.onDrain === undefined || actor.phase !== phases.open) return undefined
      return Effect.map(h.onDrain(actor, actor.state), stateSetter(actor))
    case "Open":
      return Effect.map(h.init!(actor), (state) => {
        actor.state = state
        actor.started = true
      })
    case "Closed":
      return actor.runCloseCallbacks()
  }
}

/** Made once per actor, on its first message. */
const stateSetter = (actor: ActorImpl): ((state: unknown) => void) =>
  (actor.setState ??= (state) => {
    actor.state = state
  })

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
