import { describe, expect, it } from "@effect/vitest"
import { keyOf } from "../../src/internal/ipLimit.ts"

describe("ipLimit.keyOf", () => {
  it("counts IPv4 addresses one by one, mapped or not", () => {
    expect(keyOf("203.0.113.7")).toBe("203.0.113.7")
    expect(keyOf("::ffff:203.0.113.7")).toBe("203.0.113.7")
    expect(keyOf("203.0.113.8")).not.toBe(keyOf("203.0.113.7"))
  })

  it("counts IPv6 addresses by their /64, however they are written", () => {
    expect(keyOf("2001:db8:1:2::1")).toBe("2001:db8:1:2")
    expect(keyOf("2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2")
    expect(keyOf("2001:DB8:1:2:ffff::")).toBe("2001:db8:1:2")
    expect(keyOf("2001:db8::1")).toBe("2001:db8:0:0")
    expect(keyOf("fe80::1%eth0")).toBe("fe80:0:0:0")
    expect(keyOf("::1")).toBe("0:0:0:0")
    expect(keyOf("2001:db8:1:3::1")).not.toBe(keyOf("2001:db8:1:2::1"))
  })
})
