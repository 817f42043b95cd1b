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
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

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

/**
 * The environment, read directly (as the ws baselines read it): Effect's
 * `Config` would load `effect/Schema` into a server that needs neither, and
 * the empty-process RSS is one of the benchmark's numbers (docs/benchmarks.md).
 */
const setting = <const A extends string>(name: string, fallback: A, allowed: ReadonlyArray<A>): A => {
  const value = process.env[name] ?? fallback
  const found = allowed.find((option) => option === value)
  if (found === undefined) {
    process.stderr.write(`bench server: ${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}\n`)
    process.exit(2)
  }
  return found
}
const integer = (name: string, fallback: number, min: number, max: number): number => {
  const text = process.env[name]
  const value = text === undefined ? fallback : Number(text)
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`bench server: ${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}\n`)
    process.exit(2)
  }
  return value
}

const port = integer("PORT", 9001, 0, 65535)
const host = process.env.HOST ?? "127.0.0.1"
const backplane = setting("BACKPLANE", "memory", ["memory", "redis"])
const compression = setting("COMPRESSION", "off", ["off", "on", "nocontext"])
// REACTORS (default 1): that many reactor threads on PORT, broadcasts crossing between them
const reactors = integer("REACTORS", 1, 1, 64)

const Server = NodeServer.layer({
  port,
  host,
  routes: { "/echo": Echo, "/broadcast": Broadcast },
  compression: compressionOf[compression],
  metrics: { path: "/metrics" }
}).pipe(
  Layer.provide(Hub.layer()),
  Layer.provide(
    backplane === "redis"
      ? // loaded only when asked for: the Redis client is a few hundred modules
        Layer.unwrap(
          Effect.map(
            Effect.promise(() => import("@switchboard/redis")),
            (redis) => redis.RedisBackplane.layerConfig()
          )
        )
      : NodeReactors.layerBackplane
  )
)

NodeReactors.runMain(Server, { reactors })
