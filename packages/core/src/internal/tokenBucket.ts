/**
 * One connection's rate limit: two token buckets (messages and bytes)
 * refilled from the time of the last check, and what the actor does with a
 * message they refuse. Allocated only for connections of a rate-limited
 * route.
 */
import * as Metric from "effect/Metric"
import * as CloseCode from "../CloseCode.ts"
import * as CloseReason from "../CloseReason.ts"
import * as ConnectionError from "../ConnectionError.ts"
import type { Message } from "../Message.ts"
import * as RateLimit from "../RateLimit.ts"
import type { ActorImpl } from "./actor.ts"

export class TokenBucket {
  private messages: number
  private bytes: number
  private at: number
  /** True from the first refused message until one passes again (the episode of a `notice`). */
  refusing = false
  readonly limit: RateLimit.Resolved

  constructor(limit: RateLimit.Resolved, now: number) {
    this.limit = limit
    this.messages = limit.burstMessages
    this.bytes = limit.burstBytes
    this.at = now
  }

  /** Takes one message of `size` bytes at time `now` (ms): false when either bucket has too little. */
  take(now: number, size: number): boolean {
    const l = this.limit
    const elapsed = now - this.at
    if (elapsed > 0) {
      this.at = now
      this.messages = Math.min(l.burstMessages, this.messages + elapsed * l.messagesPerMs)
      this.bytes = Math.min(l.burstBytes, this.bytes + elapsed * l.bytesPerMs)
    }
    if (this.messages < 1 || this.bytes < size) return false
    this.messages -= 1
    this.bytes -= size
    return true
  }
}

const drops = Metric.withAttributes(RateLimit.rateLimitedTotal, { policy: "drop" })
const closes = Metric.withAttributes(RateLimit.rateLimitedTotal, { policy: "close" })

const describe = (limit: RateLimit.Resolved): string => {
  const parts: Array<string> = []
  if (Number.isFinite(limit.messagesPerMs)) {
    parts.push(`${limit.messagesPerMs * 1000} messages/s (burst ${limit.burstMessages})`)
  }
  if (Number.isFinite(limit.bytesPerMs)) parts.push(`${limit.bytesPerMs * 1000} bytes/s (burst ${limit.burstBytes})`)
  return parts.join(", ")
}

/**
 * Applies `actor`'s rate limit to an arriving `message`: true when it may
 * enter the mailbox. Refused, it is dropped (with the route's notice, once
 * per episode) or the connection is closed with 1008, as the policy says.
 */
export const admitUnsafe = (actor: ActorImpl, bucket: TokenBucket, message: Message): boolean => {
  const limit = bucket.limit
  if (limit.onExceed === "close" && !actor.isOpen) return false
  if (bucket.take(actor.host.time(), message.length)) {
    bucket.refusing = false
    return true
  }
  const first = !bucket.refusing
  bucket.refusing = true
  if (limit.onExceed === "drop") {
    drops.updateUnsafe(1, actor.host.context)
    if (first && limit.notice !== undefined && actor.isOpen) {
      actor.transport.send(limit.notice)
      actor.lastOut = actor.host.now
    }
    return false
  }
  closes.updateUnsafe(1, actor.host.context)
  const error = new ConnectionError.ConnectionError({
    connectionId: actor.id,
    reason: new ConnectionError.RateLimited({ limit: describe(limit) })
  })
  actor.closeWith(CloseCode.PolicyViolation, "rate limit exceeded", CloseReason.error(error))
  return false
}
