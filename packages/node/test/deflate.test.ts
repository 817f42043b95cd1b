import * as Zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Compression, PreparedMessage } from "@switchboard/core"
import * as Deflate from "../src/internal/deflate.ts"

const negotiated = (windowBits?: number, threshold = 0): Deflate.Negotiated => ({
  params: {
    server_no_context_takeover: true,
    ...(windowBits === undefined ? {} : { server_max_window_bits: windowBits })
  },
  _threshold: threshold,
  _options: { zlibDeflateOptions: { level: 6, memLevel: 8 } }
})

/** What a permessage-deflate receiver does: the payload after the header, with 00 00 ff ff appended. */
const inflate = (frame: Buffer): { readonly first: number; readonly payload: Buffer } => {
  const length = frame[1]! & 0x7f
  const offset = length < 126 ? 2 : length === 126 ? 4 : 10
  const payload = Zlib.inflateRawSync(Buffer.concat([frame.subarray(offset), Buffer.from([0, 0, 0xff, 0xff])]), {
    finishFlush: Zlib.constants.Z_SYNC_FLUSH
  })
  return { first: frame[0]!, payload }
}

describe("deflate (the hub's compress-once path)", () => {
  it("compresses a broadcast once per set of parameters and shares the bytes", () => {
    const text = JSON.stringify(Array.from({ length: 2_000 }, (_, i) => ({ i, text: "shared" })))
    const prepared = PreparedMessage.make(text)
    const first = Deflate.sharedFrame(prepared, negotiated())
    expect(first).toBeDefined()
    // the same buffer for the next subscriber with the same parameters: compressed once
    expect(Deflate.sharedFrame(prepared, negotiated())).toBe(first)
    // another window is another compression
    const narrow = Deflate.sharedFrame(prepared, negotiated(10))
    expect(narrow).not.toBe(first)
    for (const frame of [first!, narrow!]) {
      const { first: byte, payload } = inflate(frame)
      // FIN, RSV1, text
      expect(byte).toBe(0xc1)
      expect(payload.toString()).toBe(text)
    }
    expect(first!.length).toBeLessThan(text.length / 10)
  })

  it("frames binary with its opcode and 16- and 64-bit lengths", () => {
    for (const size of [200, 70_000, 3 * 1024 * 1024]) {
      const bytes = new Uint8Array(size)
      // incompressible enough that the compressed payload keeps the length's size class
      for (let i = 0; i < size; i++) bytes[i] = ((i * 7919) % 251) ^ (i >>> 8)
      const frame = Deflate.sharedFrame(PreparedMessage.make(bytes), negotiated())!
      const { first, payload } = inflate(frame)
      expect(first).toBe(0xc2)
      expect(Buffer.compare(payload, Buffer.from(bytes))).toBe(0)
    }
  })

  it("leaves a message under the threshold uncompressed, as ws does", () => {
    expect(Deflate.sharedFrame(PreparedMessage.make("short"), negotiated(undefined, 1024))).toBeUndefined()
  })

  it("gives ws the route's parameters, and false when compression is off", () => {
    expect(Deflate.wsOptions(undefined)).toBe(false)
    const options = Deflate.wsOptions(Compression.resolve({ compression: { serverNoContextTakeover: true, level: 1 } }))
    expect(options).toMatchObject({ serverNoContextTakeover: true, zlibDeflateOptions: { level: 1, memLevel: 8 } })
    // false is left to the client: ws would refuse a client that asks for no context takeover
    expect(Deflate.wsOptions(Compression.defaults)).not.toHaveProperty("serverNoContextTakeover")
  })
})
