/**
 * Ports on the loopback interface, for tests and bench scripts that start a
 * real server: `freePort` picks a port nothing listens on, `reachable` tries
 * one connection, and `waitForPort` polls until the server accepts. Nothing
 * here leaves 127.0.0.1 unless a host is passed.
 */
import * as Net from "node:net"
import { pollUntil } from "./poll.ts"

/** The host the tests and the bench listen on. */
export const LOOPBACK = "127.0.0.1"

/**
 * A port that was free a moment ago: the kernel picks one for a listener
 * that is closed again at once. Another process could take it before the
 * caller does; on a test machine that race is rare enough to accept.
 */
export const freePort = (host: string = LOOPBACK): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, host, () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("freePort: no port picked"))))
    })
  })

/** Whether something accepts a TCP connection on `host:port` (within `timeoutMs`); the connection is closed at once. */
export const reachable = (port: number, host: string = LOOPBACK, timeoutMs = 500): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ port, host })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

export interface WaitForPortOptions {
  readonly timeoutMs: number
  /** The pause between two attempts. Default 100 ms. */
  readonly intervalMs?: number
  readonly host?: string
  /** Checked before every attempt: `true` stops the wait (the server's process exited, say). */
  readonly giveUp?: () => boolean
}

/**
 * Tries to connect to `port` until it accepts (resolves `true`), the time is
 * up, or `giveUp` returns `true` (both resolve `false`; the caller, which
 * knows why, says so).
 */
export const waitForPort = async (port: number, options: WaitForPortOptions): Promise<boolean> => {
  let gaveUp = false
  const opened = await pollUntil(
    () => {
      gaveUp = options.giveUp?.() ?? false
      return gaveUp || reachable(port, options.host)
    },
    options.timeoutMs,
    options.intervalMs ?? 100
  )
  return opened && !gaveUp
}
