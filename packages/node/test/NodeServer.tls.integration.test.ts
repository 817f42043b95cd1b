/**
 * wss:// over real sockets on 127.0.0.1, with a certificate made at test
 * time: `NodeServer.layer({ tls })` and `layerAttached` on the user's own
 * `https.Server`.
 */
import * as Https from "node:https"
import * as Net from "node:net"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Context, Effect, Layer, Metric } from "effect"
import WebSocket from "ws"
import { type Certificates, makeCertificatesInMemory } from "../../../test-support/tls.ts"
import { promise, serve } from "./support.ts"

let certificates: Certificates
beforeAll(() => {
  certificates = makeCertificatesInMemory()
})

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
const quiet = { keepalive: false } as const

/** A wss:// client that trusts the test CA: opens, sends `message`, resolves with the echo. */
const echoOver = (url: string, message: string, options: WebSocket.ClientOptions = {}) =>
  promise(
    () =>
      new Promise<{ readonly echo: string; readonly ws: WebSocket }>((resolve, reject) => {
        const ws = new WebSocket(url, { ca: certificates.ca, ...options })
        ws.once("open", () => ws.send(message))
        ws.once("message", (data) => resolve({ echo: data.toString(), ws }))
        ws.once("error", reject)
      })
  )

const tlsErrors = Effect.map(Metric.value(NodeServer.tlsErrorsTotal), (s) => s.count)

describe("NodeServer over TLS (real sockets on 127.0.0.1)", () => {
  it.live("serves wss:// and https:// for onRequest with the tls option", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        tls: { key: certificates.key, cert: certificates.cert },
        onRequest: (_req, res) => res.end("plain over https"),
        routes: { "/echo": Echo }
      })
      const { echo, ws } = yield* echoOver(`wss://localhost:${server.port}/echo`, "over tls")
      expect(echo).toBe("over tls")
      ws.close()
      const body = yield* promise(
        () =>
          new Promise<string>((resolve, reject) => {
            Https.get({ host: "127.0.0.1", port: server.port, ca: certificates.ca, servername: "localhost" }, (res) => {
              let text = ""
              res.on("data", (chunk) => (text += chunk))
              res.on("end", () => resolve(text))
            }).on("error", reject)
          })
      )
      expect(body).toBe("plain over https")
    })
  )

  it.live("refuses a client that does not trust the certificate, and counts TLS failures", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        tls: { key: certificates.key, cert: certificates.cert },
        routes: { "/echo": Echo }
      })
      const before = yield* tlsErrors
      const untrusted = yield* Effect.exit(
        promise(
          () =>
            new Promise<void>((resolve, reject) => {
              const ws = new WebSocket(`wss://localhost:${server.port}/echo`)
              ws.once("open", () => resolve())
              ws.once("error", reject)
            })
        ).pipe(Effect.orDie, Effect.sandbox)
      )
      expect(untrusted._tag).toBe("Failure")
      // plain text on the TLS port: the server drops it
      const plainClosed = yield* promise(
        () =>
          new Promise<boolean>((resolve) => {
            const socket = Net.connect(server.port, "127.0.0.1", () =>
              socket.write("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            )
            socket.on("error", () => {})
            socket.resume()
            socket.on("close", () => resolve(true))
            setTimeout(() => resolve(false), 5_000)
          })
      )
      expect(plainClosed).toBe(true)
      const deadline = Date.now() + 2_000
      while ((yield* tlsErrors) - before < 2 && Date.now() < deadline) yield* Effect.sleep(10)
      expect((yield* tlsErrors) - before).toBeGreaterThanOrEqual(2)
      // the server still serves trusting clients
      const { echo, ws } = yield* echoOver(`wss://localhost:${server.port}/echo`, "still here")
      expect(echo).toBe("still here")
      ws.close()
    })
  )

  it.live("bounds the TLS handshake by handshakeTimeout", () =>
    Effect.gen(function* () {
      const server = yield* serve({
        ...quiet,
        handshakeTimeout: "200 millis",
        tls: { key: certificates.key, cert: certificates.cert },
        routes: { "/echo": Echo }
      })
      // a TCP connection that never starts TLS
      const closedAfter = yield* promise(
        () =>
          new Promise<number>((resolve) => {
            const started = Date.now()
            const socket = Net.connect(server.port, "127.0.0.1")
            socket.on("error", () => {})
            socket.on("close", () => resolve(Date.now() - started))
            setTimeout(() => {
              socket.destroy()
              resolve(Number.POSITIVE_INFINITY)
            }, 5_000)
          })
      )
      expect(closedAfter).toBeLessThan(2_000)
    })
  )

  it.live("keeps wss:// connections of layerAttached on a user's https.Server past the handshake timeout", () =>
    Effect.gen(function* () {
      const https = Https.createServer({ key: certificates.key, cert: certificates.cert })
      yield* Effect.acquireRelease(
        promise(() => new Promise<void>((resolve) => https.listen(0, "127.0.0.1", () => resolve()))),
        () => promise(() => new Promise<void>((resolve) => https.close(() => resolve())))
      )
      const port = (https.address() as Net.AddressInfo).port
      yield* Layer.build(
        NodeServer.layerAttached(https, { ...quiet, handshakeTimeout: "200 millis", routes: { "/echo": Echo } })
      ).pipe(Effect.map((context) => Context.get(context, NodeServer.NodeServer)))
      const { ws } = yield* echoOver(`wss://localhost:${port}/echo`, "first")
      // the handshake timeout must not take the TLS socket of an upgraded connection for a slow handshake
      yield* Effect.sleep("800 millis")
      expect(ws.readyState).toBe(WebSocket.OPEN)
      const second = yield* promise(
        () =>
          new Promise<string>((resolve, reject) => {
            ws.once("message", (data) => resolve(data.toString()))
            ws.once("close", (code) => reject(new Error(`closed with ${code}`)))
            ws.send("second")
          })
      )
      expect(second).toBe("second")
      ws.close()
    })
  )
})
