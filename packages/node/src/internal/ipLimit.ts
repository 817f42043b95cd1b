/**
 * The per-IP connection limit: how many TCP connections past the HTTP
 * request stage each peer holds. IPv4 addresses count one by one; IPv6
 * addresses count by their /64 prefix, since one host usually owns a whole
 * /64 and could otherwise pick a new address per connection.
 */
import type { Socket } from "node:net"

/** The key an address is counted under: the IPv4 address, or the first four groups of an IPv6 one. */
export const keyOf = (address: string): string => {
  if (!address.includes(":")) return address
  // an IPv4-mapped IPv6 address (::ffff:1.2.3.4) is its IPv4 address
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  const zone = address.indexOf("%")
  const bare = zone < 0 ? address : address.slice(0, zone)
  const [head = "", tail] = bare.split("::")
  const groups = head === "" ? [] : head.split(":")
  if (tail !== undefined) {
    const rest = tail === "" ? [] : tail.split(":")
    while (groups.length + rest.length < 8) groups.push("0")
    groups.push(...rest)
  }
  return groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ""))
    .join(":")
}

export class IpLimit {
  private readonly counts = new Map<string, number>()
  readonly max: number
  constructor(max: number) {
    this.max = max
  }

  /**
   * Counts `socket` against its peer's limit until it closes; false (and
   * nothing counted) when the peer is at its limit.
   */
  acquire(socket: Socket): boolean {
    const key = keyOf(socket.remoteAddress ?? "")
    const count = this.counts.get(key) ?? 0
    if (count >= this.max) return false
    this.counts.set(key, count + 1)
    // the TCP socket's close, whatever path the upgrade took (rejected, upgraded, dropped)
    socket.once("close", () => this.release(key))
    return true
  }

  /** Peers currently counted. */
  get size(): number {
    return this.counts.size
  }

  private release(key: string): void {
    const count = this.counts.get(key) ?? 0
    if (count <= 1) this.counts.delete(key)
    else this.counts.set(key, count - 1)
  }
}
