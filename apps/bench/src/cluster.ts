/**
 * The alternative to reactor threads that the scaling benchmark measures:
 * `node:cluster` with round-robin scheduling (the primary accepts every
 * connection and hands it to a worker process over IPC). Each worker process
 * runs the bench server (`server.ts`) with one reactor, so only how
 * connections reach the cores differs from `REACTORS=N`. Echo only: the
 * processes share no backplane, so a broadcast would stay in one process.
 *
 *   PORT=9003 HOST=127.0.0.1 CLUSTER_WORKERS=2 node apps/bench/src/cluster.ts
 *
 * Prints `switchboard cluster: N workers listening on ws://HOST:PORT` once
 * every worker listens; SIGINT/SIGTERM stop the workers (each drains as the
 * bench server does) and then the primary.
 */
import cluster from "node:cluster"
import * as Path from "node:path"

const workers = Number(process.env.CLUSTER_WORKERS ?? 2)
const host = process.env.HOST ?? "127.0.0.1"
const port = process.env.PORT ?? "9003"

if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
  process.stderr.write(`CLUSTER_WORKERS must be an integer from 1 to 64, got ${process.env.CLUSTER_WORKERS}\n`)
  process.exit(2)
}

cluster.schedulingPolicy = cluster.SCHED_RR
cluster.setupPrimary({ exec: Path.join(import.meta.dirname, "server.ts") })

let listening = 0
let stopping = false
cluster.on("listening", () => {
  listening++
  if (listening === workers) {
    process.stdout.write(`switchboard cluster: ${workers} workers listening on ws://${host}:${port}\n`)
  }
})
cluster.on("exit", (worker, code, signal) => {
  if (!stopping) {
    process.stderr.write(`cluster worker ${worker.id} exited (code ${code}, signal ${signal}) during the run\n`)
    process.exitCode = 1
  }
  if (Object.keys(cluster.workers ?? {}).length === 0) process.exit()
})
for (let i = 0; i < workers; i++) cluster.fork({ PORT: port, HOST: host, REACTORS: "1" })

const stop = () => {
  if (stopping) return
  stopping = true
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM")
  // a worker that does not drain in time is killed
  setTimeout(() => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL")
    process.exit(1)
  }, 10_000).unref()
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
