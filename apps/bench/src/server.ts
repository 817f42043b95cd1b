/**
 * The Switchboard bench server (the benchmark contract in DESIGN.md):
 *
 * - `/echo`: every text or binary message is sent back unchanged, same opcode;
 * - `/broadcast`: every message from any client goes to every client on
 *   `/broadcast`, the sender included, through the hub.
 *
 *   PORT=9001 HOST=127.0.0.1 [REACTORS=2] [BACKPLANE=redis REDIS_URL=…] node apps/bench/src/server.ts
 *
 * BACKPLANE=redis (default memory) carries `/broadcast` over the Redis at
 * REDIS_URL, so that clients of several servers share it. COMPRESSION=on or
 * nocontext (default off) turns on permessage-deflate, with context takeover
 * or without it both ways.
 */
import { Behavior, Hub } from "@switchboard/core"
import { NodeReactors, NodeServer } from "@switchboard/node"
import { RedisBackplane } from "@switchboard/redis"
import { Config, Effect, Layer } from "effect"

const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

const Broadcast = Behavior.make({
  init: (conn) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.subscribe("broadcast", conn)
    }),
  onMessage: (_conn, message) =>
    Effect.gen(function* () {
      const hub = yield* Hub.Hub
      yield* hub.broadcast("broadcast", message)
    })
})

/** COMPRESSION: off (default), on (ws's defaults: context takeover), nocontext (each message on its own, both ways). */
const compressionOf = {
  off: false,
  on: true,
  nocontext: { serverNoContextTakeover: true, clientNoContextTakeover: true }
} as const

const Server = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(9001))
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    const backplane = yield* Config.Literals(["memory", "redis"], "BACKPLANE").pipe(Config.withDefault("memory"))
    const compression = yield* Config.Literals(["off", "on", "nocontext"], "COMPRESSION").pipe(
      Config.withDefault("off")
    )
    return NodeServer.layer({
      port,
      host,
      routes: { "/echo": Echo, "/broadcast": Broadcast },
      compression: compressionOf[compression],
      metrics: { path: "/metrics" }
    }).pipe(
      Layer.provide(Hub.layer()),
      Layer.provide(backplane === "redis" ? RedisBackplane.layerConfig() : NodeReactors.layerBackplane)
    )
  })
)

// REACTORS (default 1): that many reactor threads on PORT, broadcasts crossing between them
NodeReactors.runMain(Server)
