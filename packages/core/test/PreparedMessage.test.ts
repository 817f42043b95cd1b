import { describe, expect, it } from "@effect/vitest"
import { PreparedMessage } from "@switchboard/core"

const header = (bytes: Uint8Array, n: number) => [...bytes.subarray(0, n)]

describe("PreparedMessage", () => {
  it("frames short text with a 7-bit length, FIN and the text opcode", () => {
    const prepared = PreparedMessage.make("héllo")
    expect(header(prepared.bytes, 2)).toEqual([0x81, 6])
    expect(new TextDecoder().decode(prepared.bytes.subarray(2))).toBe("héllo")
  })

  it("frames 126 to 65535 bytes with a 16-bit length", () => {
    const prepared = PreparedMessage.make(new Uint8Array(300).fill(7))
    expect(header(prepared.bytes, 4)).toEqual([0x82, 126, 0x01, 0x2c])
    expect(prepared.bytes.byteLength).toBe(304)
    expect(prepared.bytes[303]).toBe(7)
  })

  it("frames 65536 bytes and more with a 64-bit length", () => {
    const size = 70_000
    const prepared = PreparedMessage.make(new Uint8Array(size).fill(9))
    expect(header(prepared.bytes, 10)).toEqual([0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70])
    expect(prepared.bytes.byteLength).toBe(size + 10)
  })

  it("keeps the message it framed, for reactors that write messages rather than bytes", () => {
    const message = new Uint8Array([1, 2, 3])
    expect(PreparedMessage.make(message).message).toBe(message)
  })
})
