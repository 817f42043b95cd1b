/**
 * The lifecycle timers of a supervisor's connections, on one loop: no timer
 * exists per connection or per message. Each actor keeps timestamps (last
 * inbound frame, last message either way, ping sent, close frame sent); the
 * sweeper wakes every `resolution`, reads the `Clock` once, stores that time
 * for the actors to stamp events with, and checks every actor's deadlines:
 * keepalive (ping after `pingAfter`, destroy `closeAfterNoPong` after an
 * unanswered ping), `idleTimeout` and `closeTimeout`.
 *
 * With `exact` (tests), the sweeper also wakes at the earliest deadline, so
 * that under `TestClock` a timer fires at exactly its duration.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import { type ActorImpl, type Host, phases } from "./actor.ts"

/**
 * Fires what is due for `actor` at `now` and returns when it next needs a
 * look (Infinity: never).
 */
export const checkTimers = (actor: ActorImpl, now: number): number => {
  const t = actor.settings.timers
  if (actor.phase === phases.closing) {
    if (t.closeTimeout === 0 || actor.closeSentAt < 0) return Number.POSITIVE_INFINITY
    const due = actor.closeSentAt + t.closeTimeout
    if (now < due) return due
    actor.transport.terminate()
    return Number.POSITIVE_INFINITY
  }
  if (actor.phase !== phases.open) return Number.POSITIVE_INFINITY
  // the behaviour stopped reading: the peer cannot be heard, so neither keepalive nor idleness is judged
  if (actor.readingPaused) return Number.POSITIVE_INFINITY
  let next = Number.POSITIVE_INFINITY
  if (t.idleTimeout > 0) {
    const due = Math.max(actor.lastMessage, actor.lastOut) + t.idleTimeout
    if (now >= due) {
      actor.closeWith(CloseCode.Normal, "idle timeout", CloseReason.timeout("idle"))
      return actor.closeSentAt + t.closeTimeout
    }
    next = due
  }
  if (t.pingAfter > 0) {
    if (actor.pingSentAt >= 0) {
      const due = actor.pingSentAt + t.closeAfterNoPong
      if (now >= due) {
        actor.terminate(CloseReason.timeout("keepalive"))
        return Number.POSITIVE_INFINITY
      }
      next = Math.min(next, due)
    } else {
      const due = actor.lastIn + t.pingAfter
      if (now >= due) {
        actor.pingSentAt = now
        actor.transport.ping()
        next = Math.min(next, now + t.closeAfterNoPong)
      } else {
        next = Math.min(next, due)
      }
    }
  }
  return next
}

/**
 * The sweeper loop over `actors`, forever: one sweep per `resolution` ms
 * (or sooner, at the next deadline, when `exact`). `onSweep` runs after each
 * sweep with the same time: a reactor's own timers (handshakes) ride on it.
 */
export const sweeper = (options: {
  readonly actors: Iterable<ActorImpl>
  readonly host: Host
  readonly clock: Clock.Clock
  readonly resolution: number
  readonly exact: boolean
  readonly onSweep: ((now: number) => void) | undefined
}): Effect.Effect<never> => {
  const { actors, host, clock, resolution, exact, onSweep } = options
  const sweep = Effect.suspend(() => {
    const now = clock.currentTimeMillisUnsafe()
    host.now = now
    let next = Number.POSITIVE_INFINITY
    for (const actor of actors) next = Math.min(next, checkTimers(actor, now))
    onSweep?.(now)
    return Effect.sleep(exact ? Math.max(1, Math.min(resolution, next - now)) : resolution)
  })
  return Effect.andThen(Effect.sleep(resolution), Effect.forever(sweep))
}
