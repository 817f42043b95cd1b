/**
 * The echo server of the classic engine examples: every text message is sent
 * back as text and every binary message as binary, unchanged, on `/echo`.
 * On `/jobs`, each binary message starts a CPU-bound job (`jobs.ts`: its
 * SHA-256, JOB_ROUNDS times) on the worker pool and the digest comes back as
 * text, while the connection (and every other) keeps answering; text is
 * echoed there too. On `/stream`, each message is received as a stream
 * (`onStream`) and echoed as one, fragment by fragment as it arrives, so a
 * message of any size up to MAX_MESSAGE_BYTES passes through without ever
 * being held whole (that route never compresses).
 *
 *   PORT=8080 HOST=127.0.0.1 node apps/echo/src/main.ts
 *
 * Settings come from the environment (Effect `Config`):
 * PORT (8080), HOST (127.0.0.1), PING_AFTER ("60 seconds"),
 * CLOSE_AFTER_NO_PONG ("100 seconds"), IDLE_TIMEOUT (off),
 * MAX_MESSAGE_BYTES (1 MiB: the memory a server admits grows with it; the
 * RFC 6455 conformance test sets 16 MiB), MAX_CONNECTIONS_PER_IP (64),
 * WORKERS (worker threads for jobs: cores − 1, at least 1; 0 runs them inline
 * on the event loop), WORKER_NICENESS (10: the job threads' nice value, 0 to
 * 19), JOB_ROUNDS (20,000: about 20 ms of hashing), REACTORS (1: reactor
 * threads on the same port, each with its own pool).
 */
import { Behavior, type Connection } from "@switchboard/core"
import { type Job, WorkerPool } from "@switchboard/core/jobs"
import { NodeReactors, NodeServer } from "@switchboard/node"
import { NodeWorkerPool } from "@switchboard/node/jobs"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Handlers, Hash } from "./jobs.ts"

// 1. The behaviours. /echo: text stays text, binary stays binary.
const Echo = Behavior.make({
  onMessage: (conn, message) => conn.send(message)
})

// /stream: the same echo, one piece at a time; the reply is a streamed message too
const StreamEcho = Behavior.make({
  onStream: (conn, message) => conn.sendStream(message.chunks, { binary: message._tag === "Binary" })
})

// /jobs: a binary message is hashed on the pool; the digest arrives in onInfo
// (in the order the jobs end), and the connection keeps serving meanwhile.
const HashJobs = (rounds: number) =>
  Behavior.make({
    onMessage: (conn: Connection.Connection<Job.JobResult<typeof Hash>>, message) =>
      typeof message === "string"
        ? conn.send(message)
        : WorkerPool.submit(conn, Hash, { data: message, rounds }).pipe(
            Effect.catch((error) => conn.send(`error: ${error.reason._tag}`))
          ),
    onInfo: (conn, result: Job.JobResult<typeof Hash>) =>
      conn.send(Exit.isSuccess(result.exit) ? result.exit.value : `error: ${Cause.squash(result.exit.cause)}`)
  })

// 2. The settings, from the environment.
const settings = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(8080)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  pingAfter: Config.Duration("PING_AFTER").pipe(Config.withDefault(Duration.seconds(60))),
  closeAfterNoPong: Config.Duration("CLOSE_AFTER_NO_PONG").pipe(Config.withDefault(Duration.seconds(100))),
  idleTimeout: Config.option(Config.Duration("IDLE_TIMEOUT")),
  maxMessageBytes: Config.Int("MAX_MESSAGE_BYTES").pipe(Config.withDefault(1024 * 1024)),
  maxConnectionsPerIp: Config.Int("MAX_CONNECTIONS_PER_IP").pipe(Config.withDefault(64)),
  workers: Config.Int("WORKERS").pipe(Config.withDefault(NodeWorkerPool.defaultSize())),
  niceness: Config.Int("WORKER_NICENESS").pipe(Config.withDefault(NodeWorkerPool.defaultNiceness)),
  jobRounds: Config.Int("JOB_ROUNDS").pipe(Config.withDefault(20_000)),
  compression: Config.Boolean("COMPRESSION").pipe(Config.withDefault(false))
})

// 3. The server layer.
const EchoServer = Layer.unwrap(
  Effect.gen(function* () {
    const s = yield* settings
    yield* Effect.logInfo(
      `echo: port=${s.port} host=${s.host} pingAfter=${Duration.format(s.pingAfter)} ` +
        `closeAfterNoPong=${Duration.format(s.closeAfterNoPong)} ` +
        `idleTimeout=${Option.match(s.idleTimeout, { onNone: () => "off", onSome: Duration.format })} ` +
        `maxMessageBytes=${s.maxMessageBytes} maxConnectionsPerIp=${s.maxConnectionsPerIp} ` +
        `workers=${s.workers} workerNiceness=${s.niceness} jobRounds=${s.jobRounds} compression=${s.compression}`
    )
    return NodeServer.layer({
      port: s.port,
      host: s.host,
      routes: {
        "/echo": Echo,
        "/jobs": HashJobs(s.jobRounds),
        // messages received as streams cannot be inflated piecewise: no permessage-deflate here
        "/stream": { behavior: StreamEcho, compression: false }
      },
      keepalive: { pingAfter: s.pingAfter, closeAfterNoPong: s.closeAfterNoPong },
      idleTimeout: Option.getOrElse(s.idleTimeout, () => false as const),
      maxMessageBytes: s.maxMessageBytes,
      maxConnectionsPerIp: s.maxConnectionsPerIp,
      // permessage-deflate with ws's defaults, for clients that offer it
      compression: s.compression
    }).pipe(
      // the pool outlives the server: connections close (cancelling their jobs) before it shuts down
      Layer.provide(
        NodeWorkerPool.layer({
          handlers: Handlers,
          worker: new URL("./worker.ts", import.meta.url),
          size: s.workers,
          niceness: s.niceness
        })
      )
    )
  })
)

// 4. Run until SIGINT/SIGTERM, then shut down gracefully (1001 to every client).
// REACTORS (default 1): that many reactor threads on PORT; a SIGINT/SIGTERM stop exits 0
NodeReactors.runMain(EchoServer)
