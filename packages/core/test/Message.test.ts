import { describe, expect, it } from "@effect/vitest"
import { CloseCode, Message } from "@switchboard/core"

const encoder = new TextEncoder()

describe("Message.byteLength", () => {
  it("counts UTF-8 bytes as TextEncoder encodes them, lone surrogates included", () => {
    const samples = ["", "ascii", "é", "€", "😀", "a😀b€é", "\ud800", "\udc00x", "x\ud83d", "\u07ff\u0800\uffff"]
    // and a fixed-seed mix of every range
    let seed = 7
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed
    }
    for (let n = 0; n < 200; n++) {
      let s = ""
      for (let i = 0; i < 20; i++) s += String.fromCharCode(random() % 0x10000)
      samples.push(s)
    }
    for (const s of samples) expect(Message.byteLength(s)).toBe(encoder.encode(s).byteLength)
    expect(Message.byteLength(new Uint8Array(5))).toBe(5)
  })

  it("bounds close reasons at 123 bytes of UTF-8", () => {
    expect(CloseCode.isSendableReason("x".repeat(123))).toBe(true)
    expect(CloseCode.isSendableReason("x".repeat(124))).toBe(false)
    expect(CloseCode.isSendableReason("€".repeat(41))).toBe(true)
    expect(CloseCode.isSendableReason("€".repeat(42))).toBe(false)
  })
})
