/**
 * Errors of a server layer (any reactor): it could not listen, an option
 * was invalid, or a reactor thread failed before listening. Each fails the
 * layer when it is built, before any connection.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

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
 * A reactor (a thread of a multi-reactor server) ended before it was
 * listening: its app layer failed, or it exited. `message` carries its
 * cause.
 *
 * @since 0.1.0
 * @category reasons
 */
export class ReactorFailed extends Data.TaggedError("ReactorFailed")<{
  /** The reactor's index, from 0. */
  readonly index: number
  readonly message: string
}> {}

/**
 * The error of building a server layer.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly reason: ListenFailed | InvalidOptions | ReactorFailed
}> {
  override get message(): string {
    return `${this.reason._tag}: ${this.reason.message}`
  }
}
