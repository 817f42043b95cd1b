/**
 * The worker pool on Node's `worker_threads`: CPU-bound `Job`s run off the
 * event loop, so every connection keeps answering while they run.
 *
 * Two modules make a pool. The jobs and their handlers (`Job.make`,
 * `Job.handlers`) live in one module that both the server and the worker
 * entry import; the worker entry is a file of its own that calls
 * `runWorker`. The server provides `layer({ handlers, worker, size })` to
 * its server layer; behaviours then `WorkerPool.submit` (the result comes
 * back to `onInfo`) or `WorkerPool.run` (awaits it).
 *
 * `size: 0` runs the same handlers inline on the event loop instead
 * (`WorkerPool.layerInline`), so a deployment switches by configuration
 * (`layerConfig` reads `WORKERS`). The default size is the number of cores
 * less one (at least one): the event loop keeps a core of its own.
 *
 * Each worker runs one job at a time. A worker that crashes (an uncaught
 * exception, `process.exit`, running out of `resourceLimits`) is replaced
 * and only its job fails, with `WorkerCrashed`; a job past its timeout is
 * interrupted where it yields, and its worker is terminated and replaced if
 * it does not stop within `cancelGrace`. When the layer's scope closes, the
 * pool refuses new jobs, lets running ones finish within `shutdownTimeout`,
 * and terminates every worker: no thread outlives the scope.
 *
 * @example
 * ```ts
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
 * import { Behavior } from "@switchboard/core"
 * import { Job, WorkerPool } from "@switchboard/core/jobs"
 * import { NodeServer } from "@switchboard/node"
 * import { NodeWorkerPool } from "@switchboard/node/jobs"
 *
 * // jobs.ts
 * const Upper = Job.make("Upper", { payload: Schema.String, success: Schema.String })
 * const Handlers = Job.handlers([Upper], { Upper: (text) => Effect.succeed(text.toUpperCase()) })
 *
 * // worker.ts is two lines: import { Handlers } from "./jobs.ts"; NodeWorkerPool.runWorker(Handlers)
 *
 * // main.ts
 * const Shout = Behavior.make({
 *   onMessage: (conn, message) =>
 *     typeof message === "string" ? WorkerPool.run(Upper, message).pipe(Effect.flatMap(conn.send)) : Effect.void
 * })
 *
 * const Main = NodeServer.layer({ port: 8080, routes: { "/shout": Shout } }).pipe(
 *   Layer.provide(NodeWorkerPool.layer({ handlers: Handlers, worker: new URL("./worker.ts", import.meta.url) }))
 * )
 * NodeRuntime.runMain(Layer.launch(Main))
 * ```
 *
 * @since 0.1.0
 */

import { availableParallelism } from "node:os"
import type * as WorkerThreads from "node:worker_threads"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import { type Job, JobError, WorkerPool } from "@switchboard/core/jobs"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { executor, serve as serveThread, threadsAlive } from "./internal/threads.ts"

/**
 * The gauge `switchboard_job_threads`: worker threads alive in this
 * process, counted from their creation to their `exit` event (the pool's
 * other metrics are `WorkerPool.metrics`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const threads = threadsAlive

/**
 * Settings of a Node pool: the core pool's (`WorkerPool.Options`) and where
 * its jobs run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R> extends WorkerPool.Options {
  /** The handlers: run inline when `size` is 0 (a worker thread imports its own copy). */
  readonly handlers: Job.Handlers<R>
  /** The worker entry module: a file that calls `runWorker` with the same handlers. */
  readonly worker: URL | string
  /** Worker threads; 0 runs jobs inline on the event loop. Default: cores − 1, at least 1. */
  readonly size?: number
  /** Passed to each `Worker`: a job that exceeds them crashes its worker (`WorkerCrashed`), not the server. */
  readonly resourceLimits?: WorkerThreads.ResourceLimits
  /** How long a new worker may take to load its module. Default 10 s. */
  readonly readyTimeout?: number
  /**
   * The nice value of the worker threads, 0 (the process's own priority) to
   * 19 (the lowest). Default 10: when the cores are short (V8's helper
   * threads, other processes, a pool larger than the cores), the kernel gives
   * the event loop the CPU first, so connections keep answering while jobs
   * run; jobs then take longer. It only ever lowers a priority: in a process
   * already nicer than this, the threads keep the process's value. Linux
   * only (per-thread `setpriority`); elsewhere the threads keep the
   * process's priority.
   */
  readonly niceness?: number
}

/**
 * The default pool size: the cores less one, at least one.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSize = (): number => Math.max(1, availableParallelism() - 1)

/**
 * The default nice value of worker threads (see `Options.niceness`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultNiceness = 10

const invalid = (message: string): Layer.Layer<WorkerPool.WorkerPool, JobError.JobError> =>
  Layer.effect(WorkerPool.WorkerPool)(
    Effect.fail(new JobError.JobError({ job: "pool", reason: new JobError.InvalidOptions({ message }) }))
  )

/**
 * The pool layer. Fails with `JobError` `InvalidOptions` for a bad setting,
 * or `SpawnFailed` when a worker cannot start (a wrong `worker` URL, a
 * module that throws while loading, one that never calls `runWorker`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R = never>(options: Options<R>): Layer.Layer<WorkerPool.WorkerPool, JobError.JobError, R> => {
  const size = options.size ?? defaultSize()
  if (!Number.isInteger(size) || size < 0) return invalid(`size: must be a non-negative integer, got ${size}`)
  const niceness = options.niceness ?? defaultNiceness
  if (!Number.isInteger(niceness) || niceness < 0 || niceness > 19) {
    return invalid(`niceness: must be an integer from 0 to 19, got ${niceness}`)
  }
  if (size === 0) return WorkerPool.layerInline(options.handlers, options)
  return Layer.effect(WorkerPool.WorkerPool)(
    WorkerPool.make(
      executor({
        worker: options.worker,
        size,
        ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
        readyTimeout: options.readyTimeout ?? 10_000,
        niceness
      }),
      options
    )
  )
}

/**
 * `layer` with its size and priority from the environment: `WORKERS`
 * (default: cores − 1, at least 1; 0 = inline) and `WORKER_NICENESS`
 * (default 10).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <R = never>(
  options: Omit<Options<R>, "size" | "niceness">
): Layer.Layer<WorkerPool.WorkerPool, JobError.JobError | Config.ConfigError, R> =>
  Layer.unwrap(
    Effect.map(
      Config.all({
        size: Config.Int("WORKERS").pipe(Config.withDefault(defaultSize())),
        niceness: Config.Int("WORKER_NICENESS").pipe(Config.withDefault(defaultNiceness))
      }),
      ({ size, niceness }) => layer({ ...options, size, niceness })
    )
  )

/**
 * The worker side, as an Effect: answers the pool's requests with
 * `handlers` until the pool closes this worker. Needs Effect's
 * `WorkerRunnerPlatform` (`NodeWorkerRunner.layer`); `runWorker` provides it.
 *
 * @since 0.1.0
 * @category worker
 */
export const serve: <R>(
  handlers: Job.Handlers<R>
) => Effect.Effect<void, JobError.JobError, R | import("effect/workers/WorkerRunner").WorkerRunnerPlatform> =
  serveThread

/**
 * The whole worker entry module: `runWorker(Handlers)`. Handlers that need
 * services get them from `layer`.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
 * import { Job } from "@switchboard/core/jobs"
 * import { NodeWorkerPool } from "@switchboard/node/jobs"
 *
 * const Upper = Job.make("Upper", { payload: Schema.String, success: Schema.String })
 * const Handlers = Job.handlers([Upper], { Upper: (text) => Effect.succeed(text.toUpperCase()) })
 *
 * // worker.ts
 * NodeWorkerPool.runWorker(Handlers)
 * ```
 *
 * @since 0.1.0
 * @category worker
 */
export const runWorker = <R = never, E = never>(handlers: Job.Handlers<R>, services?: Layer.Layer<R, E>): void => {
  const program = serve(handlers).pipe(Effect.provide(NodeWorkerRunner.layer))
  const provided = (services ? Effect.provide(program, services) : program) as Effect.Effect<
    void,
    JobError.JobError | E
  >
  NodeRuntime.runMain(provided, { disableErrorReporting: false })
}
