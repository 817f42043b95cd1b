/**
 * The Prometheus endpoint over real sockets: `metrics: { path }` serves the
 * registry in the text format on the server's own port, with the
 * connection metrics of live sockets (wire bytes included), and refuses
 * what it should.
 */
import * as Http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Behavior } from "@switchboard/core"
import { Cause, Effect, Exit } from "effect"
import { connect, promise, serve, waitUntil } from "./support.ts"

const Echo = Behavior.make({ onMessage: (conn, message) => conn.send(message) })
const quiet = { keepalive: false } as const

const get = (port: number, path: string, method = "GET") =>
  promise(
    () =>
      new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const req = Http.request({ host: "127.0.0.1", port, path, method }, (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (chunk) => {
            body += chunk
          })
          res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }))
        })
        req.on("error", reject)
        req.end()
      })
  )

/** The value of the series whose line starts with `series` (name and labels), or undefined. */
const seriesValue = (body: string, series: string): number | undefined => {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe("NodeServer metrics endpoint", () => {
  it.live("serves the connection metrics in the Prometheus text format on the server's port", () =>
    Effect.gen(function* () {
      const Closer = Behavior.make({ init: (conn) => conn.close(1000, "done") })
      const server = yield* serve({
        ...quiet,
        routes: { "/metrics-echo": Echo, "/closer": Closer },
        metrics: { path: "/metrics" }
      })
      const client = yield* connect(server.port, "/metrics-echo")
      client.ws.send("x".repeat(1000))
      expect(yield* promise(client.next)).toBe("x".repeat(1000))
      const scrape = yield* get(server.port, "/metrics")
      expect(scrape.status).toBe(200)
      expect(scrape.type).toContain("text/plain; version=0.0.4")
      expect(scrape.body).toContain("# TYPE switchboard_connections_open gauge")
      expect(seriesValue(scrape.body, 'switchboard_connections_open{route="/metrics-echo"}')).toBe(1)
      expect(seriesValue(scrape.body, 'switchboard_connections_opened_total{route="/metrics-echo"}')).toBe(1)
      expect(seriesValue(scrape.body, "switchboard_messages_received_total")).toBeGreaterThanOrEqual(1)
      // the live socket's bytes: 1000 payload bytes plus framing each way, at least
      expect(seriesValue(scrape.body, "switchboard_received_bytes_total")).toBeGreaterThan(1000)
      expect(seriesValue(scrape.body, "switchboard_sent_bytes_total")).toBeGreaterThan(1000)
      expect(seriesValue(scrape.body, "switchboard_handshake_duration_seconds_count")).toBeGreaterThanOrEqual(1)
      expect(scrape.body).toContain("# TYPE switchboard_behavior_duration_seconds histogram")
      // a query string is the same path; another method is refused
      expect((yield* get(server.port, "/metrics?x=1")).status).toBe(200)
      expect((yield* get(server.port, "/metrics", "POST")).status).toBe(405)
      // other plain requests still get the WebSocket-only answer
      expect((yield* get(server.port, "/other")).status).toBe(426)

      client.ws.close(1000)
      yield* promise(() => client.closed)
      // the server is done with it once its actor has left
      yield* waitUntil(() => server.connections() === 0)
      const after = yield* get(server.port, "/metrics")
      expect(seriesValue(after.body, 'switchboard_connections_open{route="/metrics-echo"}')).toBe(0)
      expect(
        seriesValue(after.body, 'switchboard_connections_closed_total{reason="Peer",code="1000"}')
      ).toBeGreaterThanOrEqual(1)

      // a close the server started is timed from its close frame to the socket's close
      const closesBefore = seriesValue(after.body, "switchboard_close_duration_seconds_count") ?? 0
      const closed = yield* connect(server.port, "/closer")
      expect((yield* promise(() => closed.closed)).code).toBe(1000)
      yield* waitUntil(() => server.connections() === 0)
      const last = yield* get(server.port, "/metrics")
      expect(seriesValue(last.body, "switchboard_close_duration_seconds_count")).toBe(closesBefore + 1)
      expect(
        seriesValue(last.body, 'switchboard_connections_closed_total{reason="Local",code="1000"}')
      ).toBeGreaterThanOrEqual(1)
    })
  )

  it.live("refuses a metrics path that is not a path, or is a route's", () =>
    Effect.gen(function* () {
      for (const path of ["metrics", "/metrics-echo"]) {
        const exit = yield* Effect.exit(
          Effect.scoped(serve({ ...quiet, routes: { "/metrics-echo": Echo }, metrics: { path } }))
        )
        expect(Exit.isFailure(exit) && String(Cause.squash(exit.cause))).toContain("metrics.path")
      }
    })
  )
})
