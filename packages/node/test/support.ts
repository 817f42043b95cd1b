/**
 * Helpers for the Node reactor's integration tests: a server on a free port
 * of 127.0.0.1, real `ws` clients, and raw TCP for what a WebSocket client
 * would not do.
 */
import * as Net from "node:net"
import { NodeServer } from "@switchboard/node"
import { Context, Effect, Layer, type Scope } from "effect"
import WebSocket from "ws"
import { pollUntil } from "../../../test-support/poll.ts"
import { upgradeRequest } from "../../../test-support/wire.ts"

export const serve = <R, A = unknown>(
  options: Omit<NodeServer.Options<R, A>, "port" | "host">
): Effect.Effect<NodeServer.NodeServer["Service"], unknown, Scope.Scope | R> =>
  Effect.map(Layer.build(NodeServer.layer({ ...options, port: 0, host: "127.0.0.1" })), (ctx) =>
    Context.get(ctx, NodeServer.NodeServer)
  )

export interface Client {
  readonly ws: WebSocket
  /** Messages received so far (text as string, binary as Buffer). */
  readonly received: Array<string | Buffer>
  readonly next: () => Promise<string | Buffer>
  readonly closed: Promise<{ code: number; reason: string }>
}

export const connect = (port: number, path = "/", options?: WebSocket.ClientOptions): Effect.Effect<Client> =>
  Effect.promise(
    () =>
      new Promise<Client>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, options)
        const received: Array<string | Buffer> = []
        let read = 0
        let waiter: (() => void) | undefined
        ws.on("message", (data: Buffer, isBinary: boolean) => {
          received.push(isBinary ? data : data.toString())
          waiter?.()
        })
        const closed = new Promise<{ code: number; reason: string }>((done) =>
          ws.on("close", (code, reason) => {
            done({ code, reason: reason.toString() })
            waiter?.()
          })
        )
        const next = () =>
          new Promise<string | Buffer>((done, fail) => {
            const attempt = () => {
              if (read < received.length) return done(received[read++]!)
              if (ws.readyState === WebSocket.CLOSED) return fail(new Error("closed before a message arrived"))
              waiter = () => {
                waiter = undefined
                attempt()
              }
            }
            attempt()
          })
        ws.once("open", () => resolve({ ws, received, next, closed }))
        ws.once("error", reject)
      })
  )

/** Sends a raw HTTP request and returns the response's status and headers (lower-cased names), then closes. */
export const rawHead = (
  port: number,
  request: string
): Effect.Effect<{ readonly status: number; readonly headers: Readonly<Record<string, string>> }> =>
  Effect.promise(
    () =>
      new Promise((resolve, reject) => {
        const socket = Net.connect(port, "127.0.0.1", () => socket.write(request))
        let head = ""
        socket.on("data", (chunk) => {
          head += chunk.toString("latin1")
          const end = head.indexOf("\r\n\r\n")
          const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
          if (end < 0 || match === null) return
          const headers: Record<string, string> = {}
          for (const line of head.slice(0, end).split("\r\n").slice(1)) {
            const colon = line.indexOf(":")
            if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
          }
          resolve({ status: Number(match[1]), headers })
          socket.destroy()
        })
        socket.on("error", reject)
        socket.on("close", () => reject(new Error(`closed without a response head: ${JSON.stringify(head)}`)))
      })
  )

/** Sends a raw HTTP request and returns the response's status code (then closes). */
export const rawStatus = (port: number, request: string): Effect.Effect<number> =>
  Effect.map(rawHead(port, request), (head) => head.status)

/**
 * A raw TCP connection: completes the upgrade and then reads nothing it is
 * not asked to, and never answers a ping or a close frame.
 */
export const rawUpgrade = (
  port: number,
  path: string
): Effect.Effect<{ socket: Net.Socket; data: Array<Buffer>; closed: Promise<void> }> =>
  Effect.promise(
    () =>
      new Promise((resolve, reject) => {
        const socket = Net.connect(port, "127.0.0.1", () => socket.write(upgradeRequest(path)))
        const data: Array<Buffer> = []
        const closed = new Promise<void>((done) => socket.on("close", () => done()))
        let head = Buffer.alloc(0)
        let upgraded = false
        socket.on("data", (chunk: Buffer) => {
          if (upgraded) return void data.push(chunk)
          head = Buffer.concat([head, chunk])
          const end = head.indexOf("\r\n\r\n")
          if (end < 0) return
          if (!head.toString("latin1").startsWith("HTTP/1.1 101")) return reject(new Error(head.toString()))
          upgraded = true
          if (head.length > end + 4) data.push(head.subarray(end + 4))
          resolve({ socket, data, closed })
        })
        socket.on("error", () => {})
      })
  )

/** Polls `condition` every 5 ms; fails (a defect) if it does not hold within `timeoutMs`. */
export const waitUntil = (condition: () => boolean, timeoutMs = 5_000): Effect.Effect<void> =>
  Effect.promise(async () => {
    if (!(await pollUntil(condition, timeoutMs, 5))) throw new Error("condition not met in time")
  })

export const promise = <A>(p: () => Promise<A>): Effect.Effect<A> => Effect.promise(p)
