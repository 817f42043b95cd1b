/**
 * A per-connection inbound rate limit: messages per second and bytes per
 * second, each a token bucket with a burst. It guards what a connection may
 * ask of its behaviour (a chat room, a game tick), not the server's memory:
 * backpressure already bounds that, since a connection's socket stops being
 * read while its mailbox is full.
 *
 * The limit is checked by the actor as each message arrives, before it
 * enters the mailbox, on Effect's `Clock` (so `TestClock` drives it). Over
 * the limit, the policy decides:
 *
 * - `"close"` (default): the connection is closed with 1008 `rate limit
 *   exceeded`, reason `Error` with `ConnectionError` reason `RateLimited`;
 *   nothing more from it reaches the behaviour.
 * - `"drop"`: the message is dropped, and the client is sent `notice` (if
 *   given) once per episode, an episode lasting until a message is let
 *   through again.
 *
 * Either way `switchboard_rate_limited_total` counts it, by `policy`. Off by
 * default; set it per server or per route.
 *
 * @example
 * ```ts
 * import { Behavior } from "@switchboard/core"
 * import { NodeServer } from "@switchboard/node"
 *
 * const Chat = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * const Server = NodeServer.layer({
 *   routes: {
 *     "/chat": {
 *       behavior: Chat,
 *       // 20 messages a second, 40 at once; 64 KiB a second
 *       rateLimit: { messagesPerSecond: 20, burstMessages: 40, bytesPerSecond: 64 * 1024, onExceed: "drop", notice: "slow down" }
 *     }
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import { positiveNumber } from "./internal/settings.ts"
import type { Message } from "./Message.ts"

/**
 * Options of a rate limit. At least one of `messagesPerSecond` and
 * `bytesPerSecond` is required.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Messages a second, sustained. */
  readonly messagesPerSecond?: number
  /** Messages that may arrive at once. Default: one second's worth (at least 1). */
  readonly burstMessages?: number
  /** Payload bytes a second (text counts its UTF-16 code units, a byte per ASCII character). */
  readonly bytesPerSecond?: number
  /** Bytes that may arrive at once. Default: one second's worth; a message larger than it never passes. */
  readonly burstBytes?: number
  /** `"close"` (default, 1008) or `"drop"`. */
  readonly onExceed?: "close" | "drop"
  /** With `"drop"`: sent to the client when dropping starts, once per episode. */
  readonly notice?: Message
}

/**
 * A rate limit resolved to per-millisecond rates; `Infinity` where a
 * dimension is not limited.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly messagesPerMs: number
  readonly burstMessages: number
  readonly bytesPerMs: number
  readonly burstBytes: number
  readonly onExceed: "close" | "drop"
  readonly notice: Message | undefined
}

/**
 * Messages dropped (`policy: "drop"`) and connections closed
 * (`policy: "close"`) by a rate limit.
 *
 * @since 0.1.0
 * @category metrics
 */
export const rateLimitedTotal = Metric.counter("switchboard_rate_limited_total", {
  description: "Inbound messages dropped, or connections closed, by a per-connection rate limit",
  incremental: true
})

/**
 * Resolves a route's rate limit over the server's (`false` turns a server's
 * limit off for a route). Throws a `RangeError` naming the bad field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (
  options: Options | false | undefined,
  base: Resolved | undefined = undefined
): Resolved | undefined => {
  if (options === undefined) return base
  if (options === false) return undefined
  const messages = positiveNumber(options.messagesPerSecond, "rateLimit.messagesPerSecond")
  const bytes = positiveNumber(options.bytesPerSecond, "rateLimit.bytesPerSecond")
  if (messages === undefined && bytes === undefined) {
    throw new RangeError("rateLimit: needs messagesPerSecond or bytesPerSecond")
  }
  const burstMessages = positiveNumber(options.burstMessages, "rateLimit.burstMessages") ?? Math.max(1, messages ?? 0)
  const burstBytes = positiveNumber(options.burstBytes, "rateLimit.burstBytes") ?? Math.max(1, bytes ?? 0)
  const onExceed = options.onExceed ?? "close"
  if (onExceed !== "close" && onExceed !== "drop") {
    throw new RangeError(`rateLimit.onExceed: must be "close" or "drop", got ${String(onExceed)}`)
  }
  return {
    messagesPerMs: messages === undefined ? Number.POSITIVE_INFINITY : messages / 1000,
    burstMessages: messages === undefined ? Number.POSITIVE_INFINITY : burstMessages,
    bytesPerMs: bytes === undefined ? Number.POSITIVE_INFINITY : bytes / 1000,
    burstBytes: bytes === undefined ? Number.POSITIVE_INFINITY : burstBytes,
    onExceed,
    notice: options.notice
  }
}
