/**
 * A message encoded and framed once, to be written as the same bytes to many
 * sockets: the hub's fan-out path. The bytes are a complete, unmasked RFC 6455
 * server frame (FIN set, text or binary opcode), so a reactor writes them to
 * the socket as they are; an in-memory reactor reads `message` instead.
 *
 * @since 0.1.0
 */
import * as ReceivedText from "./internal/receivedText.ts"
import type { Message } from "./Message.ts"

/**
 * A message with its wire frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface PreparedMessage {
  readonly message: Message
  /** The whole frame: header and payload. */
  readonly bytes: Uint8Array
}

const encoder = new TextEncoder()

/**
 * Encodes `message` (UTF-8 for text) and frames it, in one buffer.
 *
 * @example
 * ```ts
 * import { PreparedMessage } from "@switchboard/core"
 *
 * const prepared = PreparedMessage.make("hi")
 * prepared.bytes // Uint8Array [0x81, 0x02, 0x68, 0x69]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (message: Message): PreparedMessage => {
  const text = typeof message === "string"
  const payload = text ? (ReceivedText.bytesOf(message) ?? encoder.encode(message)) : message
  const length = payload.byteLength
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const bytes = new Uint8Array(headerLength + length)
  bytes[0] = 0x80 | (text ? 0x1 : 0x2)
  if (length < 126) {
    bytes[1] = length
  } else if (length < 65536) {
    bytes[1] = 126
    bytes[2] = length >>> 8
    bytes[3] = length & 0xff
  } else {
    bytes[1] = 127
    // lengths fit in 53 bits; the top 3 bytes stay zero
    const high = Math.floor(length / 0x1_0000_0000)
    const view = new DataView(bytes.buffer, bytes.byteOffset, 10)
    view.setUint32(2, high)
    view.setUint32(6, length >>> 0)
  }
  bytes.set(payload, headerLength)
  return { message, bytes }
}
