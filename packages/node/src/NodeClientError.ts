/**
 * The errors of `NodeClient`: the connection could not be opened, it ended
 * while a reconnect policy was in force, or an option was invalid. The
 * error's `reason` says which.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The opening handshake failed: the server refused the TCP connection or
 * answered the upgrade with an HTTP status (`status`), TLS failed, or
 * `handshakeTimeout` passed.
 *
 * @since 0.1.0
 * @category reasons
 */
export class ConnectFailed extends Data.TaggedError("ConnectFailed")<{
  readonly message: string
  /** The HTTP status of a refused upgrade (401, 404, 503, …); `undefined` for other failures. */
  readonly status: number | undefined
}> {}

/**
 * An open connection ended (with the peer's close `code`, 1006 for a drop).
 * The reconnect schedule sees it as its input, and `done` fails with it
 * when the schedule gives up after it.
 *
 * @since 0.1.0
 * @category reasons
 */
export class Disconnected extends Data.TaggedError("Disconnected")<{
  readonly code: number
  readonly reason: string
}> {}

/**
 * An option was invalid; `message` names it.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidOptions extends Data.TaggedError("InvalidOptions")<{
  readonly message: string
}> {}

/**
 * Every reason a `NodeClientError` can carry.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason = ConnectFailed | Disconnected | InvalidOptions

/**
 * The error of a `NodeClient`, for the URL it connects to.
 *
 * @since 0.1.0
 * @category errors
 */
export class NodeClientError extends Data.TaggedError("NodeClientError")<{
  readonly url: string
  readonly reason: Reason
}> {
  override get message(): string {
    const detail = this.reason._tag === "Disconnected" ? `closed with ${this.reason.code}` : this.reason.message
    return `${this.url}: ${this.reason._tag}: ${detail}`
  }
}
