/**
 * What travels over a connection: a text message is a `string`, a binary
 * message is a `Uint8Array`. The two are told apart by their JavaScript type,
 * so an echo behaviour that sends back what it received keeps the opcode
 * without looking at it, and a behaviour that cares narrows with `typeof`.
 *
 * No wrapper object is allocated per message: the reactor hands the decoded
 * payload straight to the mailbox.
 *
 * @since 0.1.0
 */

/**
 * A WebSocket message: `string` for a text frame, `Uint8Array` for a binary
 * frame (on Node the reactor delivers a `Buffer`, a `Uint8Array` subclass).
 *
 * @example
 * ```ts
 * import { Message } from "@switchboard/core"
 *
 * const describe = (message: Message.Message) =>
 *   Message.isText(message) ? `text: ${message}` : `binary: ${message.byteLength} bytes`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Message = string | Uint8Array

/**
 * True for a text message.
 *
 * @since 0.1.0
 * @category guards
 */
export const isText = (message: Message): message is string => typeof message === "string"

/**
 * True for a binary message.
 *
 * @since 0.1.0
 * @category guards
 */
export const isBinary = (message: Message): message is Uint8Array => typeof message !== "string"

/**
 * True for any value that is a message (used to tell payloads apart from
 * internal mailbox signals).
 *
 * @since 0.1.0
 * @category guards
 */
export const isMessage = (value: unknown): value is Message => typeof value === "string" || value instanceof Uint8Array

/**
 * The number of bytes a message occupies on the wire (payload only): the
 * UTF-8 length of a text message (counted, not encoded), the byte length of
 * a binary one. The one UTF-8 length helper of Switchboard.
 *
 * @since 0.1.0
 * @category utils
 */
export const byteLength = (message: Message): number => {
  if (typeof message !== "string") return message.byteLength
  let bytes = message.length
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) bytes += 1
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < message.length) {
      const next = message.charCodeAt(i + 1)
      // a surrogate pair: 4 bytes for 2 code units
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2
        i++
      } else bytes += 2
    } else bytes += 2
  }
  return bytes
}
