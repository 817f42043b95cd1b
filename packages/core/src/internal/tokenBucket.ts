/**
 * The state of one connection's rate limit: two token buckets (messages and
 * bytes) refilled from the time of the last check. Allocated only for
 * connections of a rate-limited route.
 */
import type * as RateLimit from "../RateLimit.ts"

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
