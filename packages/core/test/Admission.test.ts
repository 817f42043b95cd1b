import { describe, expect, it } from "@effect/vitest"
import { Admission } from "@switchboard/core"

describe("Admission.ipKey", () => {
  it("counts IPv4 addresses one by one, mapped or not", () => {
    expect(Admission.ipKey("203.0.113.7")).toBe("203.0.113.7")
    expect(Admission.ipKey("::ffff:203.0.113.7")).toBe("203.0.113.7")
    expect(Admission.ipKey("203.0.113.8")).not.toBe(Admission.ipKey("203.0.113.7"))
  })

  it("counts IPv6 addresses by their /64, however they are written", () => {
    expect(Admission.ipKey("2001:db8:1:2::1")).toBe("2001:db8:1:2")
    expect(Admission.ipKey("2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2")
    expect(Admission.ipKey("2001:DB8:1:2:ffff::")).toBe("2001:db8:1:2")
    expect(Admission.ipKey("2001:db8::1")).toBe("2001:db8:0:0")
    expect(Admission.ipKey("fe80::1%eth0")).toBe("fe80:0:0:0")
    expect(Admission.ipKey("::1")).toBe("0:0:0:0")
    expect(Admission.ipKey("2001:db8:1:3::1")).not.toBe(Admission.ipKey("2001:db8:1:2::1"))
  })
})
