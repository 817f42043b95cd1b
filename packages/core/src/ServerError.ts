/**
 * Errors of a server layer (any reactor): it could not listen, or an option
 * was invalid. Both fail the layer when it is built, before any connection.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * The server could not bind its port (in use, no permission, bad host).
 *
 * @since 0.1.0
 * @category reasons
 */
export class ListenFailed extends Data.TaggedError("ListenFailed")<{
  readonly port: number
  readonly host: string
  readonly message: string
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
 * The error of building a server layer.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly reason: ListenFailed | InvalidOptions
}> {
  override get message(): string {
    return `${this.reason._tag}: ${this.reason.message}`
  }
}
