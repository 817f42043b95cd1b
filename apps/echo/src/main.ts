/**
 * The echo server of the classic engine examples: every text message is sent
 * back as text and every binary message as binary, unchanged, on `/echo`.
 *
 *   PORT=8080 HOST=127.0.0.1 node apps/echo/src/main.ts
 *
 * Settings come from the environment (Effect `Config`):
 * PORT (8080), HOST (127.0.0.1), PING_AFTER ("60 seconds"),
 * CLOSE_AFTER_NO_PONG ("100 seconds"), IDLE_TIMEOUT (off),
 * MAX_MESSAGE_BYTES (1 MiB: the memory a server admits grows with it; the
 * RFC 6455 conformance test sets 16 MiB), MAX_CONNECTIONS_PER_IP (64).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Behavior } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Config, Duration, Effect, Layer, Option } from "effect"

// 1. The behaviour: text stays text, binary stays binary.
const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

// 2. The settings, from the environment.
const settings = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(8080)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  pingAfter: Config.Duration("PING_AFTER").pipe(Config.withDefault(Duration.seconds(60))),
  closeAfterNoPong: Config.Duration("CLOSE_AFTER_NO_PONG").pipe(Config.withDefault(Duration.seconds(100))),
  idleTimeout: Config.option(Config.Duration("IDLE_TIMEOUT")),
  maxMessageBytes: Config.Int("MAX_MESSAGE_BYTES").pipe(Config.withDefault(1024 * 1024)),
  maxConnectionsPerIp: Config.Int("MAX_CONNECTIONS_PER_IP").pipe(Config.withDefault(64))
})

// 3. The server layer.
const EchoServer = Layer.unwrap(
  Effect.gen(function* () {
    const s = yield* settings
    yield* Effect.logInfo(
      `echo: port=${s.port} host=${s.host} pingAfter=${Duration.format(s.pingAfter)} ` +
        `closeAfterNoPong=${Duration.format(s.closeAfterNoPong)} ` +
        `idleTimeout=${Option.match(s.idleTimeout, { onNone: () => "off", onSome: Duration.format })} ` +
        `maxMessageBytes=${s.maxMessageBytes} maxConnectionsPerIp=${s.maxConnectionsPerIp}`
    )
    return NodeServer.layer({
      port: s.port,
      host: s.host,
      routes: { "/echo": Echo },
      keepalive: { pingAfter: s.pingAfter, closeAfterNoPong: s.closeAfterNoPong },
      idleTimeout: Option.getOrElse(s.idleTimeout, () => false as const),
      maxMessageBytes: s.maxMessageBytes,
      maxConnectionsPerIp: s.maxConnectionsPerIp
    })
  })
)

// 4. Run until SIGINT/SIGTERM, then shut down gracefully (1001 to every client).
NodeRuntime.runMain(Layer.launch(EchoServer))
