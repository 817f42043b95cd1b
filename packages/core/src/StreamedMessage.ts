/**
 * A message received as a stream: on a route whose behaviour has
 * `onStream`, each message from the peer reaches it as soon as its first
 * bytes arrive, as a `Stream` of chunks that yields the payload as the
 * fragments come in — so a long upload never sits whole in memory.
 *
 * - Text chunks are strings, decoded from UTF-8 as they arrive (a
 *   character split between fragments or TCP reads is joined; invalid UTF-8
 *   closes the connection with 1007 and fails the stream). Binary chunks are
 *   bytes. Empty chunks are not emitted: an empty message is an empty stream.
 * - Backpressure: the reactor stops reading from the socket while more than
 *   the route's `highWaterMark` of received chunks wait for the behaviour,
 *   so a slow consumer slows the sender (TCP), and memory stays bounded.
 * - `maxMessageBytes` bounds the whole message (1009 when it is passed);
 *   a streaming route's default is 64 MiB rather than 1 MiB.
 * - The stream fails with a `ConnectionError` if the connection breaks
 *   mid-message: the reason the reactor failed it (`MessageTooLarge`,
 *   `InvalidPayload`, `ProtocolViolation`) or `Incomplete` (the peer closed
 *   or dropped before the last fragment).
 * - The stream belongs to the `onStream` call: read it there. When the call
 *   returns, whatever of the message was not read is discarded (the rest of
 *   its fragments are read from the socket and dropped) and the next message
 *   follows.
 *
 * @example
 * ```ts
 * import { createHash } from "node:crypto"
 * import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
 * import { Behavior } from "@switchboard/core"
 *
 * // hashes uploads of any size; each reply is the SHA-256 of one message
 * const Hasher = Behavior.make({
 *   onStream: (conn, message) =>
 *     Effect.gen(function* () {
 *       const hash = createHash("sha256")
 *       if (message._tag === "Binary") yield* Stream.runForEach(message.chunks, (chunk) => Effect.sync(() => hash.update(chunk)))
 *       else yield* Stream.runForEach(message.chunks, (chunk) => Effect.sync(() => hash.update(chunk, "utf8")))
 *       yield* conn.send(hash.digest("hex"))
 *     })
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Stream from "effect/Stream"
import type { ConnectionError } from "./ConnectionError.ts"

/**
 * A text message as a stream of decoded strings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Text {
  readonly _tag: "Text"
  readonly chunks: Stream.Stream<string, ConnectionError>
}

/**
 * A binary message as a stream of byte chunks.
 *
 * @since 0.1.0
 * @category models
 */
export interface Binary {
  readonly _tag: "Binary"
  readonly chunks: Stream.Stream<Uint8Array, ConnectionError>
}

/**
 * A message received as a stream, text or binary.
 *
 * @since 0.1.0
 * @category models
 */
export type StreamedMessage = Text | Binary

/**
 * The default `maxMessageBytes` of a route that receives streams: 64 MiB.
 * Memory does not grow with it (chunks are bounded by `highWaterMark`);
 * raise it for bigger uploads (at most 2^53 − 1).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxMessageBytes = 64 * 1024 * 1024
