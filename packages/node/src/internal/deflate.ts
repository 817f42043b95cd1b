/**
 * permessage-deflate on ws: the route's `Compression` as ws's options, and
 * the hub's compress-once path: a broadcast compressed once per set of
 * parameters and shared by every subscriber whose connection negotiated
 * `server_no_context_takeover` (each message compressed on its own, so the
 * same bytes are valid for all of them; a connection with context takeover
 * has a compressor whose history only its own messages may enter).
 */
import * as Zlib from "node:zlib"
import type { Compression, PreparedMessage } from "@switchboard/core"
import type { PerMessageDeflateOptions } from "ws"

/** ws's options for a route's compression; `false` when it is off. */
export const wsOptions = (compression: Compression.Resolved | undefined): PerMessageDeflateOptions | false =>
  compression === undefined
    ? false
    : {
        threshold: compression.threshold,
        concurrencyLimit: compression.concurrency,
        // false is left out: to ws, false refuses a client that asks for no context takeover (a 400)
        ...(compression.serverNoContextTakeover ? { serverNoContextTakeover: true } : {}),
        ...(compression.clientNoContextTakeover ? { clientNoContextTakeover: true } : {}),
        ...(compression.serverMaxWindowBits === undefined
          ? {}
          : { serverMaxWindowBits: compression.serverMaxWindowBits }),
        ...(compression.clientMaxWindowBits === undefined
          ? {}
          : { clientMaxWindowBits: compression.clientMaxWindowBits }),
        zlibDeflateOptions: { level: compression.level, memLevel: compression.memLevel }
      }

/** What ws negotiated for a connection (its `PerMessageDeflate` extension), as far as the shared path needs it. */
export interface Negotiated {
  readonly params: {
    readonly server_no_context_takeover?: boolean
    readonly server_max_window_bits?: number
  }
  readonly _threshold: number
  readonly _options: { readonly zlibDeflateOptions?: { readonly level?: number; readonly memLevel?: number } }
}

/** Frames already compressed for a broadcast, by parameters; gone with the broadcast. */
const shared = new WeakMap<PreparedMessage.PreparedMessage, Map<string, Buffer>>()

const headerLength = (frame: Uint8Array): number => {
  const length = frame[1]! & 0x7f
  return length < 126 ? 2 : length === 126 ? 4 : 10
}

const frame = (opcode: number, payload: Buffer): Buffer => {
  const length = payload.length
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const bytes = Buffer.allocUnsafe(header + length)
  // FIN, RSV1 (compressed), the message's opcode
  bytes[0] = 0xc0 | opcode
  if (length < 126) {
    bytes[1] = length
  } else if (length < 65536) {
    bytes[1] = 126
    bytes.writeUInt16BE(length, 2)
  } else {
    bytes[1] = 127
    bytes.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2)
    bytes.writeUInt32BE(length >>> 0, 6)
  }
  payload.copy(bytes, header)
  return bytes
}

/**
 * The broadcast's compressed frame for a connection that negotiated no
 * context takeover, or `undefined` when the message goes uncompressed
 * (shorter than the threshold), as ws would send it.
 */
export const sharedFrame = (prepared: PreparedMessage.PreparedMessage, negotiated: Negotiated): Buffer | undefined => {
  const offset = headerLength(prepared.bytes)
  const payloadLength = prepared.bytes.byteLength - offset
  if (payloadLength < negotiated._threshold) return undefined
  const windowBits = negotiated.params.server_max_window_bits ?? 15
  const level = negotiated._options.zlibDeflateOptions?.level ?? Zlib.constants.Z_DEFAULT_COMPRESSION
  const memLevel = negotiated._options.zlibDeflateOptions?.memLevel ?? 8
  const key = `${windowBits}:${level}:${memLevel}`
  let frames = shared.get(prepared)
  const known = frames?.get(key)
  if (known !== undefined) return known
  const payload = prepared.bytes.subarray(offset)
  // as ws compresses: a sync flush, without its trailing 00 00 ff ff (RFC 7692 7.2.1)
  const deflated = Zlib.deflateRawSync(payload, {
    windowBits,
    level,
    memLevel,
    finishFlush: Zlib.constants.Z_SYNC_FLUSH
  })
  const compressed = frame(prepared.bytes[0]! & 0x0f, deflated.subarray(0, deflated.length - 4))
  if (frames === undefined) shared.set(prepared, (frames = new Map()))
  frames.set(key, compressed)
  return compressed
}
