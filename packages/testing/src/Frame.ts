/**
 * What a `TestClient` receives from the server, one value per frame.
 *
 * @since 0.1.0
 */
import { Message } from "@switchboard/core"

/**
 * A frame sent by the server to a test client.
 *
 * @since 0.1.0
 * @category models
 */
export type Frame =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Binary"; readonly data: Uint8Array }
  /**
   * One fragment of a streamed message (`conn.sendStream`): text for a
   * string, binary for bytes; `fin` on the last one. `TestClient.next`
   * joins them into one `Text` or `Binary` frame; `nextFrame` reads them
   * one by one.
   */
  | { readonly _tag: "Fragment"; readonly data: string | Uint8Array; readonly fin: boolean }
  | { readonly _tag: "Ping" }
  | { readonly _tag: "Close"; readonly code: number; readonly reason: string }

/**
 * A short description of a frame for error messages.
 *
 * @since 0.1.0
 * @category utils
 */
export const describe = (frame: Frame | undefined): string => {
  if (frame === undefined) return "nothing (the connection is closed)"
  switch (frame._tag) {
    case "Text":
      return `Text(${JSON.stringify(frame.text.length > 60 ? `${frame.text.slice(0, 60)}…` : frame.text)})`
    case "Binary":
      return `Binary(${frame.data.byteLength} bytes)`
    case "Fragment":
      return `Fragment(${typeof frame.data === "string" ? "text" : "binary"}, ${Message.byteLength(frame.data)} bytes${frame.fin ? ", fin" : ""})`
    case "Ping":
      return "Ping"
    case "Close":
      return `Close(${frame.code}${frame.reason ? `, ${JSON.stringify(frame.reason)}` : ""})`
  }
}

/**
 * The payload size of a frame, as a socket would buffer it.
 *
 * @since 0.1.0
 * @category utils
 */
export const byteLength = (frame: Frame): number => {
  switch (frame._tag) {
    case "Text":
      return Message.byteLength(frame.text)
    case "Binary":
      return frame.data.byteLength
    case "Fragment":
      return Message.byteLength(frame.data)
    case "Ping":
      return 2
    case "Close":
      return 4 + Message.byteLength(frame.reason)
  }
}
