/**
 * The WebSocket protocol as bytes, for the tests and scripts that talk to a
 * server over raw TCP to do what a WebSocket client would not (hang
 * half-way, send garbage, ignore a close frame): the client's opening
 * handshake, a well-formed client frame, and a parser for the frames the
 * server sends back. The echo app's conformance suite has a fuller codec of
 * its own (apps/echo/test/rawClient.ts).
 */

/** The client's opening handshake for `path` (RFC 6455 §4.1), with `extra` headers; its key is the RFC's sample. */
export const upgradeRequest = (path: string, extra: Readonly<Record<string, string>> = {}): string =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
  Object.entries(extra)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("") +
  "\r\n"

/** A client frame as RFC 6455 wants it (FIN, masked), for the well-formed messages the tests send. */
export const clientFrame = (opcode: number, payload: Buffer | string): Buffer => {
  const data = typeof payload === "string" ? Buffer.from(payload) : payload
  if (data.length > 0xffff) throw new RangeError("clientFrame: payloads up to 64 KiB")
  // a zero mask leaves the payload as it is
  const header =
    data.length < 126
      ? Buffer.from([0x80 | opcode, 0x80 | data.length, 0, 0, 0, 0])
      : Buffer.from([0x80 | opcode, 0x80 | 126, data.length >> 8, data.length & 0xff, 0, 0, 0, 0])
  return Buffer.concat([header, data])
}

/** A frame sent by the server (unmasked), as far as the bytes received go. */
export interface ServerFrame {
  readonly opcode: number
  readonly payload: Buffer
}

/** Parses the server's frames; a trailing incomplete frame is left out. */
export const parseServerFrames = (bytes: Buffer): Array<ServerFrame> => {
  const frames: Array<ServerFrame> = []
  let at = 0
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f
    let length = bytes[at + 1]! & 0x7f
    let header = 2
    if (length === 126) {
      if (at + 4 > bytes.length) break
      length = bytes.readUInt16BE(at + 2)
      header = 4
    } else if (length === 127) {
      if (at + 10 > bytes.length) break
      length = Number(bytes.readBigUInt64BE(at + 2))
      header = 10
    }
    if (at + header + length > bytes.length) break
    frames.push({ opcode, payload: bytes.subarray(at + header, at + header + length) })
    at += header + length
  }
  return frames
}

/** The close code of the server's close frame, if it sent one (1005 for a close frame without a code). */
export const closeCodeOf = (frames: ReadonlyArray<ServerFrame>): number | undefined => {
  const close = frames.find((frame) => frame.opcode === 0x8)
  if (close === undefined) return undefined
  return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005
}
