import { describe, expect, it } from "@effect/vitest"
import { Compression } from "@switchboard/core"

describe("Compression.resolve", () => {
  it("is off unless asked; true stands for the defaults", () => {
    expect(Compression.resolve(undefined)).toBeUndefined()
    expect(Compression.resolve({})).toBeUndefined()
    expect(Compression.resolve({ compression: true })).toEqual(Compression.defaults)
  })

  it("takes the route's setting over the server's, false included", () => {
    expect(Compression.resolve({ compression: false }, { compression: true })).toBeUndefined()
    expect(Compression.resolve({}, { compression: { threshold: 10 } })?.threshold).toBe(10)
    expect(Compression.resolve({ compression: { level: 1 } }, { compression: { threshold: 10 } })).toEqual({
      ...Compression.defaults,
      level: 1
    })
  })

  it("fills what parameters leave out with the defaults", () => {
    expect(Compression.resolve({ compression: { serverNoContextTakeover: true } })).toEqual({
      ...Compression.defaults,
      serverNoContextTakeover: true
    })
  })

  it("names a bad parameter and its bounds", () => {
    const bad: Array<[Compression.Parameters, string]> = [
      [{ level: 10 }, "compression.level: must be an integer from 0 to 9, got 10"],
      [{ memLevel: 0 }, "compression.memLevel: must be an integer from 1 to 9, got 0"],
      [{ serverMaxWindowBits: 8 }, "compression.serverMaxWindowBits: must be an integer from 9 to 15, got 8"],
      [{ clientMaxWindowBits: 16 }, "compression.clientMaxWindowBits: must be an integer from 9 to 15, got 16"],
      [{ threshold: -1 }, "compression.threshold: must be an integer from 0"],
      [{ concurrency: 0.5 }, "compression.concurrency: must be an integer from 1 to 1024, got 0.5"]
    ]
    for (const [parameters, message] of bad) {
      expect(() => Compression.resolve({ compression: parameters })).toThrow(message)
    }
  })
})
