/**
 * A live dashboard, from the guides alone: an Effect HTTP API and the
 * WebSocket routes on one port, a typed token per route, updates pushed
 * from a timer, and Prometheus metrics.
 *
 *   PORT=8090 node apps/dashboard/src/main.ts
 *
 * - `GET /health` (the `HttpRouter`): `ok`.
 * - `POST /api/announce` (the `HttpRouter`) with `Authorization: Bearer
 *   <ADMIN_TOKEN>` and a text body: every viewer gets it as an
 *   `announcement`.
 * - `/live` (WebSocket, `Route.make` with its own hook): a viewer connects
 *   with `?token=<one of VIEWER_TOKENS>`; it gets a `welcome` with its name,
 *   then a `tick` every TICK_INTERVAL (the time and how many viewers are
 *   connected, across reactors and servers through the hub), and the
 *   announcements. A wrong or missing token gets 401.
 * - `/metrics`: Switchboard's and the app's metrics for Prometheus.
 *
 * Settings from the environment: PORT (8090), HOST (127.0.0.1),
 * VIEWER_TOKENS (`ada:ada-token,bob:bob-token`: name:token pairs),
 * ADMIN_TOKEN (`admin-token`), TICK_INTERVAL (`1 second`).
 */
import * as Http from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Backplane, Behavior, type Connection, Handshake, Hub, Route } from "@switchboard/core"
import { NodeReactors, NodeServer } from "@switchboard/node"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"

// 1. Who may watch: a viewer's token names it (a real app verifies a signed token here).
interface Viewer {
  readonly name: string
}

const viewerTokens = Config.String("VIEWER_TOKENS").pipe(
  Config.withDefault("ada:ada-token,bob:bob-token"),
  Config.map((pairs) => new Map(pairs.split(",").map((pair) => pair.split(":", 2).reverse() as [string, string])))
)

const viewers =
  (tokens: ReadonlyMap<string, string>): Handshake.Authenticate<Viewer> =>
  (request) => {
    const name = tokens.get(request.query.get("token") ?? "")
    return name === undefined
      ? Effect.fail(new Handshake.HandshakeRejected({ status: 401, message: "a viewer token is required" }))
      : Effect.succeed({ name })
  }

// 2. The viewer's connection: welcomed by name, subscribed to the dashboard's feed.
const Live = Behavior.make({
  init: (conn: Connection.Connection<never, Viewer>) =>
    Effect.gen(function* () {
      yield* Hub.identify(conn, conn.auth.name)
      yield* Hub.subscribe("dashboard", conn)
      yield* conn.send(JSON.stringify({ type: "welcome", name: conn.auth.name }))
    })
})

// 3. The timer: a tick to every viewer, from outside any connection.
const ticksSent = Metric.counter("dashboard_ticks_total", { description: "Ticks broadcast to the viewers" })

const ticker = (interval: Duration.Duration) =>
  Effect.gen(function* () {
    const server = yield* NodeServer.NodeServer
    const tick = Effect.suspend(() =>
      Hub.broadcast("dashboard", JSON.stringify({ type: "tick", at: Date.now(), viewers: server.list("/live").length }))
    ).pipe(Effect.andThen(Metric.update(ticksSent, 1)))
    yield* Effect.repeat(tick, Schedule.spaced(interval))
  })

// 4. The HTTP API on the same port.
const api = (adminToken: Redacted.Redacted<string>) =>
  Layer.mergeAll(
    HttpRouter.add("GET", "/health", HttpServerResponse.text("ok")),
    HttpRouter.add(
      "POST",
      "/api/announce",
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (request.headers.authorization !== `Bearer ${Redacted.value(adminToken)}`) {
          return HttpServerResponse.text("admin token required", { status: 401 })
        }
        const text = (yield* request.text).trim()
        if (text === "" || text.length > 500) {
          return HttpServerResponse.text("an announcement is 1 to 500 characters", { status: 400 })
        }
        yield* Hub.broadcast("dashboard", JSON.stringify({ type: "announcement", text }))
        return HttpServerResponse.empty({ status: 204 })
      }).pipe(Effect.catch(() => Effect.succeed(HttpServerResponse.text("could not announce", { status: 500 }))))
    )
  )

// 5. Everything on one http.Server.
const App = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(8090))
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    const tokens = yield* viewerTokens
    const adminToken = yield* Config.Redacted("ADMIN_TOKEN").pipe(Config.withDefault(Redacted.make("admin-token")))
    const interval = yield* Config.Duration("TICK_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
    yield* Effect.logInfo(`dashboard: http://${host}:${port}/health, ws://${host}:${port}/live?token=…`)

    const server = Http.createServer()
    const HttpLive = HttpRouter.serve(api(adminToken), { disableLogger: true }).pipe(
      Layer.provide(NodeHttpServer.layer(() => server, { port, host }))
    )
    const WebSocketsLive = NodeServer.layerAttached(server, {
      routes: { "/live": Route.make({ authenticate: viewers(tokens), behavior: Live, idleTimeout: "10 minutes" }) },
      metrics: { path: "/metrics" },
      beforeShutdown: Hub.broadcast("dashboard", JSON.stringify({ type: "restarting" }))
    })
    const TickerLive = Layer.effectDiscard(Effect.forkScoped(ticker(interval))).pipe(Layer.provide(WebSocketsLive))
    return Layer.mergeAll(HttpLive, WebSocketsLive, TickerLive).pipe(
      Layer.provide(Hub.layer()),
      Layer.provide(Backplane.layerMemory)
    )
  })
)

// until SIGINT/SIGTERM: viewers hear "restarting", get their 1001, and the process exits 0
NodeReactors.runMain(App)
