/**
 * permessage-deflate (RFC 7692): messages compressed on the wire, opted
 * into per server or per route. Off by default: compression trades CPU and
 * memory per connection (a zlib stream each way) for bandwidth, which pays
 * for large, repetitive text (JSON) on slow links and costs more than it
 * saves for small or already-compressed messages.
 *
 * A client must offer the extension too (browsers always do); the
 * parameters are negotiated in the handshake, and a connection that did not
 * negotiate it works as before. With `serverNoContextTakeover`, messages
 * shorter than `threshold` bytes are sent uncompressed; with context
 * takeover every message is compressed (a short one compresses well against
 * those before it), as ws does. `maxMessageBytes` bounds a message after decompression:
 * a small frame that inflates past it closes the connection with 1009 as
 * soon as the limit is passed, so a decompression bomb costs no more memory
 * than the limit.
 *
 * With `serverNoContextTakeover`, the server compresses every message on
 * its own, so a hub broadcast is compressed once and the same bytes go to
 * every such subscriber; it also frees each connection's compressor between
 * messages. With context takeover (the default), a connection's messages
 * are compressed against what it sent before, which compresses better but
 * costs a compressor per connection, and a broadcast is compressed for each
 * subscriber.
 *
 * @example
 * ```ts
 * import { Behavior } from "@switchboard/core"
 * import { NodeServer } from "@switchboard/node"
 *
 * const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
 *
 * const Server = NodeServer.layer({
 *   port: 8080,
 *   routes: {
 *     "/echo": Echo,
 *     // compressed, each message on its own: broadcasts compressed once
 *     "/feed": { behavior: Echo, compression: { serverNoContextTakeover: true, threshold: 256 } }
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */

/**
 * The parameters of permessage-deflate, each optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parameters {
  /** With `serverNoContextTakeover`: messages shorter than this many bytes go uncompressed (default 1024). */
  readonly threshold?: number
  /** zlib compression level, 0 (none) to 9 (best) (default 6 — zlib's own: `Z_DEFAULT_COMPRESSION`). */
  readonly level?: number
  /** zlib memory level, 1 to 9: memory for speed and ratio (default 8). */
  readonly memLevel?: number
  /** Compress each outbound message on its own (default false): less memory, broadcasts compressed once. */
  readonly serverNoContextTakeover?: boolean
  /** Ask the client to compress each message on its own (default false): less memory for its decompressor here. */
  readonly clientNoContextTakeover?: boolean
  /**
   * The server's compression window, 9 to 15 bits. Unset (the default), the
   * server uses 15 (32 KiB) or the smaller window a client asks for; set, it
   * uses this one and a client that asks for a smaller one gets no
   * compression (ws's rule).
   */
  readonly serverMaxWindowBits?: number
  /**
   * The window the client may use, 9 to 15 bits, which sizes this server's
   * decompressor. Unset (the default), whatever the client says (15 if it
   * says nothing); set, a client that cannot limit its window gets no
   * compression.
   */
  readonly clientMaxWindowBits?: number
  /** zlib operations that may run at once in this process (default 10; they run on libuv's thread pool). */
  readonly concurrency?: number
}

/**
 * `false` (the default), `true` for the default parameters, or parameters.
 *
 * @since 0.1.0
 * @category models
 */
export type Option = boolean | Parameters

/**
 * The `compression` option of a server or a route.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** permessage-deflate: off by default; a route's setting replaces the server's. */
  readonly compression?: Option
}

/**
 * Resolved parameters: every one set, checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly threshold: number
  readonly level: number
  readonly memLevel: number
  readonly serverNoContextTakeover: boolean
  readonly clientNoContextTakeover: boolean
  readonly serverMaxWindowBits: number | undefined
  readonly clientMaxWindowBits: number | undefined
  readonly concurrency: number
}

/**
 * The defaults that `compression: true` stands for.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: Resolved = {
  threshold: 1024,
  level: 6,
  memLevel: 8,
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: undefined,
  clientMaxWindowBits: undefined,
  concurrency: 10
}

const integerIn = (value: number, name: string, min: number, max: number): number => {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`compression.${name}: must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

/**
 * The compression of a route: its own `compression` if set, else the
 * server's; `undefined` when off. Throws a `RangeError` naming a bad
 * parameter.
 *
 * @example
 * ```ts
 * import { Compression } from "@switchboard/core"
 *
 * Compression.resolve({ compression: { threshold: 256 } })?.threshold // 256
 * Compression.resolve({ compression: false }, { compression: true }) // undefined
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (options: Options | undefined, base?: Options): Resolved | undefined => {
  const option = options?.compression ?? base?.compression ?? false
  if (option === false) return undefined
  if (option === true) return defaults
  const p = option
  return {
    threshold: integerIn(p.threshold ?? defaults.threshold, "threshold", 0, Number.MAX_SAFE_INTEGER),
    level: integerIn(p.level ?? defaults.level, "level", 0, 9),
    memLevel: integerIn(p.memLevel ?? defaults.memLevel, "memLevel", 1, 9),
    serverNoContextTakeover: p.serverNoContextTakeover ?? defaults.serverNoContextTakeover,
    clientNoContextTakeover: p.clientNoContextTakeover ?? defaults.clientNoContextTakeover,
    serverMaxWindowBits:
      p.serverMaxWindowBits === undefined ? undefined : integerIn(p.serverMaxWindowBits, "serverMaxWindowBits", 9, 15),
    clientMaxWindowBits:
      p.clientMaxWindowBits === undefined ? undefined : integerIn(p.clientMaxWindowBits, "clientMaxWindowBits", 9, 15),
    concurrency: integerIn(p.concurrency ?? defaults.concurrency, "concurrency", 1, 1024)
  }
}
