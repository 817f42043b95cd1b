/**
 * The bytes of the text message being handled, so that sending it on
 * unchanged (an echo, a relay, a broadcast) writes the bytes it arrived in
 * instead of encoding the string again.
 *
 * One slot for the whole process: the drain fills it before a text message's
 * callback and empties it after. It is right whichever connection filled it,
 * because a lookup compares the strings themselves: a text message arrived
 * as valid UTF-8 (the reactor checks), so any string equal to it encodes to
 * exactly those bytes. Nothing is pinned past the callback.
 */

let text: string | undefined
let bytes: Uint8Array | undefined

/** The message whose callback runs now, and the UTF-8 bytes it arrived in. */
export const set = (message: string, utf8: Uint8Array): void => {
  text = message
  bytes = utf8
}

/** The callback ended. */
export const clear = (): void => {
  text = undefined
  bytes = undefined
}

/** The UTF-8 bytes of `message` when it is the text being handled, else undefined (encode it). */
export const bytesOf = (message: string): Uint8Array | undefined => (message === text ? bytes : undefined)
