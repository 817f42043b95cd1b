/**
 * The error of a `TestClient` expectation: the server sent something other
 * than what the test expected.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The next frame was not the expected one (or the connection closed first).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnexpectedFrame extends Data.TaggedError("UnexpectedFrame")<{
  readonly expected: string
  readonly actual: string
}> {
  override get message(): string {
    return `expected ${this.expected}, got ${this.actual}`
  }
}
