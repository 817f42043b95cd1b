/**
 * Lifecycle timers of a connection: keepalive pings, the idle timeout and the
 * close-handshake timeout. All of them run on Effect's `Clock`, so a test
 * drives them with `TestClock.adjust` and never waits.
 *
 * No timer is allocated per connection or per message. One sweeper fiber per
 * server wakes every `resolution` and compares each connection's last-activity
 * timestamp with the current time; the reactor's per-message cost is one
 * field write of the sweeper's last reading of the Clock. A timer therefore
 * fires within one `resolution` of its duration after the event that armed
 * it — late by up to one resolution (the sweep period), or early by up to one
 * (the event was stamped with the previous sweep's time). By default a
 * resolution is an eighth of the shortest timer, between 10 ms and 1 s. The
 * test kit's exact mode fires every timer at exactly its duration.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import { durationMillis } from "./internal/settings.ts"

/**
 * Timer settings; every timer can be turned off with `false`.
 *
 * @example
 * ```ts
 * import { Keepalive } from "@switchboard/core"
 *
 * const timers: Keepalive.Options = {
 *   keepalive: { pingAfter: "30 seconds", closeAfterNoPong: "10 seconds" },
 *   idleTimeout: "10 minutes",
 *   closeTimeout: "5 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Ping after `pingAfter` without any inbound frame; if no pong arrives
   * within `closeAfterNoPong` of that ping, the connection is closed (reason
   * `Timeout { timer: "keepalive" }`) and its socket destroyed. Default: ping
   * after 60 seconds, give up 100 seconds later.
   */
  readonly keepalive?: { readonly pingAfter: Duration.Input; readonly closeAfterNoPong: Duration.Input } | false
  /**
   * Close with 1000 "idle timeout" after no text or binary message in either
   * direction for this long (reason `Timeout { timer: "idle" }`); pings and
   * pongs do not count. Default: off.
   */
  readonly idleTimeout?: Duration.Input | false
  /**
   * After the server sends a close frame, destroy the socket if the peer has
   * not answered within this time. Default: 5 seconds.
   */
  readonly closeTimeout?: Duration.Input | false
}

/**
 * Timer settings resolved to milliseconds; `0` means off.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly pingAfter: number
  readonly closeAfterNoPong: number
  readonly idleTimeout: number
  readonly closeTimeout: number
}

/**
 * The defaults: ping after 60 s of inactivity, close 100 s after an
 * unanswered ping, no idle timeout, 5 s for the close handshake.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: Resolved = {
  pingAfter: 60_000,
  closeAfterNoPong: 100_000,
  idleTimeout: 0,
  closeTimeout: 5_000
}

/**
 * Resolves options over a base (the server's settings, or `defaults`).
 * Throws a `RangeError` naming the bad field; servers call it at startup so
 * that a bad setting fails the layer instead of a connection.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (options: Options | undefined, base: Resolved = defaults): Resolved => {
  if (options === undefined) return base
  const keepalive = options.keepalive
  return {
    pingAfter: keepalive === false ? 0 : durationMillis(keepalive?.pingAfter, base.pingAfter, "keepalive.pingAfter"),
    closeAfterNoPong:
      keepalive === false
        ? 0
        : durationMillis(keepalive?.closeAfterNoPong, base.closeAfterNoPong, "keepalive.closeAfterNoPong"),
    idleTimeout: durationMillis(options.idleTimeout, base.idleTimeout, "idleTimeout"),
    closeTimeout: durationMillis(options.closeTimeout, base.closeTimeout, "closeTimeout")
  }
}

/**
 * The sweeper's period for a set of timer settings: an eighth of the
 * shortest enabled timer, clamped to 10 ms – 1 s.
 *
 * @since 0.1.0
 * @category utils
 */
export const resolutionFor = (settings: Iterable<Resolved>): number => {
  let shortest = Number.POSITIVE_INFINITY
  for (const s of settings) {
    for (const ms of [s.pingAfter, s.closeAfterNoPong, s.idleTimeout, s.closeTimeout]) {
      if (ms > 0 && ms < shortest) shortest = ms
    }
  }
  if (shortest === Number.POSITIVE_INFINITY) return 1_000
  return Math.min(1_000, Math.max(10, Math.floor(shortest / 8)))
}
