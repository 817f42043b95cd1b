/**
 * The typed errors of a connection. There is one error, `ConnectionError`,
 * whose `reason` says what went wrong; every reason maps to the close code the
 * connection is (or would be) closed with. The full list is in
 * `docs/reference/errors.md`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as CloseCode from "./CloseCode.ts"

/**
 * A message was larger than `maxMessageBytes`. Closes with 1009.
 *
 * @since 0.1.0
 * @category reasons
 */
export class MessageTooLarge extends Data.TaggedError("MessageTooLarge")<{
  readonly limit: number
}> {}

/**
 * A text message (or a close reason) was not valid UTF-8. Closes with 1007.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidPayload extends Data.TaggedError("InvalidPayload")<{
  readonly message: string
}> {}

/**
 * The peer broke RFC 6455: a reserved bit, an unknown opcode, an unmasked
 * client frame, a bad close code, a fragmented control frame. Closes with 1002.
 *
 * @since 0.1.0
 * @category reasons
 */
export class ProtocolViolation extends Data.TaggedError("ProtocolViolation")<{
  readonly message: string
}> {}

/**
 * The socket failed below the WebSocket layer (reset, EPIPE). The connection
 * is gone; the client sees 1006.
 *
 * @since 0.1.0
 * @category reasons
 */
export class SocketFailure extends Data.TaggedError("SocketFailure")<{
  readonly message: string
}> {}

/**
 * `tell` found the actor's mailbox full. Nothing was enqueued; the caller
 * decides whether to retry, drop or close.
 *
 * @since 0.1.0
 * @category reasons
 */
export class MailboxFull extends Data.TaggedError("MailboxFull")<{
  readonly capacity: number
}> {}

/**
 * `tell` was called on a connection that has closed, or whose behaviour
 * crashed (it no longer takes infos). `close` on a closed connection does
 * nothing instead.
 *
 * @since 0.1.0
 * @category reasons
 */
export class NotOpen extends Data.TaggedError("NotOpen")<{}> {}

/**
 * A close code that may not be sent in a close frame (see
 * `CloseCode.isSendable`), or a close reason longer than 123 bytes.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidClose extends Data.TaggedError("InvalidClose")<{
  readonly code: number
  readonly message: string
}> {}

/**
 * The peer sent faster than its route's `rateLimit` allows, whose policy is
 * `"close"`. Closes with 1008.
 *
 * @since 0.1.0
 * @category reasons
 */
export class RateLimited extends Data.TaggedError("RateLimited")<{
  /** What was exceeded, e.g. `"20 messages/s (burst 40)"`. */
  readonly limit: string
}> {}

/**
 * `sendStream` was given a chunk that cannot be part of its message: bytes
 * that are not valid UTF-8 in a text message. The message is cut off: the
 * connection closes with 1011 once its first fragment has gone out.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidStream extends Data.TaggedError("InvalidStream")<{
  readonly message: string
}> {}

/**
 * The connection ended before the last fragment of a message received as a
 * stream (`onStream`) arrived: the peer closed (`code`) or dropped (1006)
 * mid-message. The message's stream fails with it.
 *
 * @since 0.1.0
 * @category reasons
 */
export class Incomplete extends Data.TaggedError("Incomplete")<{
  readonly code: number
}> {}

/**
 * Every reason a `ConnectionError` can carry.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | MessageTooLarge
  | InvalidPayload
  | ProtocolViolation
  | SocketFailure
  | MailboxFull
  | NotOpen
  | InvalidClose
  | RateLimited
  | InvalidStream
  | Incomplete

/**
 * The error of a connection operation or of the connection itself.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import type { Connection } from "@switchboard/core"
 *
 * // a tick that finds the mailbox full is dropped; NotOpen still fails
 * const tick = (conn: Connection.Connection<"tick">) =>
 *   conn.tell("tick").pipe(
 *     Effect.catchReason("ConnectionError", "MailboxFull", () => Effect.logWarning("busy, dropped"))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly connectionId: string
  readonly reason: Reason
}> {
  override get message(): string {
    return `connection ${this.connectionId}: ${this.reason._tag}${
      "message" in this.reason && this.reason.message ? `: ${this.reason.message}` : ""
    }`
  }
}

/**
 * The close code that a reason closes the connection with.
 *
 * @since 0.1.0
 * @category utils
 */
export const closeCodeOf = (reason: Reason): number => {
  switch (reason._tag) {
    case "MessageTooLarge":
      return CloseCode.MessageTooBig
    case "InvalidPayload":
      return CloseCode.InvalidPayload
    case "ProtocolViolation":
    case "InvalidClose":
      return CloseCode.ProtocolError
    case "SocketFailure":
    case "NotOpen":
    case "Incomplete":
      return CloseCode.Abnormal
    case "MailboxFull":
      return CloseCode.TryAgainLater
    case "RateLimited":
      return CloseCode.PolicyViolation
    case "InvalidStream":
      return CloseCode.InternalError
  }
}
