/**
 * The worker pool: where a behaviour sends CPU-bound work so that its
 * connection, and every other one, keeps answering while the work runs.
 *
 * A pool runs `Job`s on a fixed set of workers, one job per worker at a
 * time, behind a bounded FIFO queue. `@switchboard/node`'s
 * `NodeWorkerPool.layer` runs them on `worker_threads`; `layerInline` (and a
 * Node pool of `size: 0`) runs the same handlers on the event loop, one at a
 * time, for tests and for work too small to be worth a thread.
 *
 * Two ways to use it:
 * - `submit(conn, job, payload)` queues the job and returns its id at once;
 *   when the job ends, its `JobResult` arrives in the connection's `onInfo`
 *   (in the order the jobs end, which with several workers need not be the
 *   order they were submitted: match results by `id`). The actor keeps
 *   serving messages meanwhile. When the connection closes, its queued jobs
 *   are dropped and its running ones interrupted.
 * - `run(job, payload)` awaits the result (success, typed failure or
 *   `JobError`): simple, but a behaviour that runs it waits, and so does its
 *   connection's mailbox. Interrupting it cancels the job.
 *
 * Limits, each with a safe default: `queueCapacity` (1024 queued jobs),
 * `maxJobsPerConnection` (16 queued or running), `timeout` (30 s per job).
 * A full queue makes the submitter wait, or fail with `QueueFull` if it
 * passes `wait: false`.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
 * import { Behavior, type Connection } from "@switchboard/core"
 * import { Job, WorkerPool } from "@switchboard/core/jobs"
 *
 * const Upper = Job.make("Upper", { payload: Schema.String, success: Schema.String })
 * const Handlers = Job.handlers([Upper], { Upper: (text) => Effect.succeed(text.toUpperCase()) })
 *
 * export const Shout = Behavior.make({
 *   // returns at once: the connection keeps serving while the job runs
 *   onMessage: (conn: Connection.Connection<Job.JobResult<typeof Upper>>, message) =>
 *     typeof message === "string" ? Effect.asVoid(WorkerPool.submit(conn, Upper, message)) : Effect.void,
 *   onInfo: (conn, result: Job.JobResult<typeof Upper>) =>
 *     Exit.isSuccess(result.exit) ? conn.send(result.exit.value) : conn.send("failed")
 * })
 *
 * // provide it to the server layer: inline here, `NodeWorkerPool.layer` for threads
 * export const Pool = WorkerPool.layerInline(Handlers)
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Connection from "./Connection.ts"
import { Pool, metrics as poolMetrics } from "./internal/pool.ts"
import { durationMillis, positiveInteger } from "./internal/settings.ts"
import type * as Job from "./Job.ts"
import * as JobError from "./JobError.ts"
import * as JobExecutor from "./JobExecutor.ts"

/**
 * Settings of a pool; every one has a default safe for a server on the
 * internet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Jobs waiting for a worker before submitters wait (or fail with `QueueFull`). Default 1024. */
  readonly queueCapacity?: number
  /** Jobs one connection may have queued or running; more wait (or fail with `ConnectionLimit`). Default 16. */
  readonly maxJobsPerConnection?: number
  /** How long a job may run before it fails with `Timeout`; `false` for none. Default 30 s. */
  readonly timeout?: Duration.Input | false
  /** How long a stopped job's worker may take to confirm before it is terminated and replaced. Default 1 s. */
  readonly cancelGrace?: Duration.Input
  /** How long shutdown lets running jobs finish before terminating the workers. Default 5 s. */
  readonly shutdownTimeout?: Duration.Input
}

/**
 * Per-job settings of `submit` and `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions {
  /** False: fail with `QueueFull` or `ConnectionLimit` instead of waiting for room. Default true. */
  readonly wait?: boolean
  /** This job's timeout, instead of the pool's; `false` for none. */
  readonly timeout?: Duration.Input | false
}

/**
 * The pool service.
 *
 * @since 0.1.0
 * @category services
 */
export class WorkerPool extends Context.Service<
  WorkerPool,
  {
    /** How many workers run jobs (1 for an inline pool). */
    readonly size: number
    /** `"inline"` or `"threads"`. */
    readonly kind: string
    /** Jobs waiting for a worker now. */
    readonly queued: () => number
    /** See the module's `submit`. */
    readonly submit: <J extends Job.Any>(
      conn: Connection.Connection<Job.JobResult<J>>,
      job: J,
      payload: Job.Payload<J>,
      options?: SubmitOptions
    ) => Effect.Effect<number, JobError.JobError>
    /** See the module's `run`. */
    readonly run: <J extends Job.Any>(
      job: J,
      payload: Job.Payload<J>,
      options?: SubmitOptions
    ) => Effect.Effect<Job.Success<J>, Job.Failure<J> | JobError.JobError>
  }
>()("@switchboard/core/WorkerPool") {}

/**
 * Queues `job` for `conn` and returns its id without waiting for it to run
 * (it waits only while the queue or the connection's job limit is full,
 * unless `wait: false`). The `JobResult` arrives in the connection's
 * `onInfo`, so `conn`'s info type must include it.
 *
 * @since 0.1.0
 * @category running
 */
export const submit = <J extends Job.Any>(
  conn: Connection.Connection<Job.JobResult<J>>,
  job: J,
  payload: Job.Payload<J>,
  options?: SubmitOptions
): Effect.Effect<number, JobError.JobError, WorkerPool> =>
  WorkerPool.use((pool) => pool.submit(conn, job, payload, options))

/**
 * Runs `job` and awaits its result: the success, the job's typed failure, or
 * a `JobError`. Interrupting the caller cancels the job.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
 * import { Behavior } from "@switchboard/core"
 * import { Job, WorkerPool } from "@switchboard/core/jobs"
 *
 * const WordCount = Job.make("WordCount", { payload: Schema.String, success: Schema.Number })
 *
 * // the connection waits for each count: fine for short jobs
 * export const Counter = Behavior.make({
 *   onMessage: (conn, message) =>
 *     typeof message === "string"
 *       ? WorkerPool.run(WordCount, message).pipe(Effect.flatMap((count) => conn.send(String(count))))
 *       : Effect.void
 * })
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const run = <J extends Job.Any>(
  job: J,
  payload: Job.Payload<J>,
  options?: SubmitOptions
): Effect.Effect<Job.Success<J>, Job.Failure<J> | JobError.JobError, WorkerPool> =>
  WorkerPool.use((pool) => pool.run(job, payload, options))

const resolve = (options: Options) => {
  try {
    return {
      queueCapacity: positiveInteger(options.queueCapacity ?? 1024, "queueCapacity"),
      maxJobsPerConnection: positiveInteger(options.maxJobsPerConnection ?? 16, "maxJobsPerConnection"),
      timeout: durationMillis(options.timeout, 30_000, "timeout"),
      cancelGrace: durationMillis(options.cancelGrace, 1_000, "cancelGrace"),
      shutdownTimeout: durationMillis(options.shutdownTimeout, 5_000, "shutdownTimeout")
    }
  } catch (error) {
    return new JobError.JobError({ job: "pool", reason: new JobError.InvalidOptions({ message: String(error) }) })
  }
}

/**
 * Makes a pool on `executor`: starts its workers (failing with `SpawnFailed`
 * if one cannot start) and, when the scope closes, refuses new jobs, lets
 * running ones finish within `shutdownTimeout` and terminates the workers.
 * Reactor packages build their pools with it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  executor: JobExecutor.Executor,
  options: Options = {}
): Effect.Effect<WorkerPool["Service"], JobError.JobError, Scope.Scope> =>
  Effect.gen(function* () {
    const settings = resolve(options)
    if (settings instanceof JobError.JobError) return yield* settings
    const context = yield* Effect.context<never>()
    const pool = new Pool(executor, settings, context)
    yield* Effect.addFinalizer(() => pool.shutdown)
    yield* pool.start
    const perJob = (job: Job.Any, submitOptions: SubmitOptions | undefined) =>
      Effect.try({
        try: () => ({
          wait: submitOptions?.wait ?? true,
          timeout:
            submitOptions?.timeout === undefined
              ? settings.timeout
              : durationMillis(submitOptions.timeout, settings.timeout, "timeout")
        }),
        catch: (error) =>
          new JobError.JobError({ job: job.tag, reason: new JobError.InvalidOptions({ message: String(error) }) })
      })
    return WorkerPool.of({
      size: executor.size,
      kind: executor.kind,
      queued: () => pool.queued,
      submit: (conn, job, payload, submitOptions) =>
        Effect.flatMap(perJob(job, submitOptions), (resolved) => pool.submit(conn, job, payload, resolved)),
      run: (job, payload, submitOptions) =>
        Effect.flatMap(perJob(job, submitOptions), (resolved) => pool.run(job, payload, resolved))
    })
  })

/**
 * A pool that runs `handlers` on the event loop, one job at a time, with
 * the same queue, limits, timeouts and results as a threaded pool. A job
 * that never yields blocks the loop and cannot be interrupted: use it for
 * tests, and for jobs short enough not to matter.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInline = <R>(
  handlers: Job.Handlers<R>,
  options?: Options
): Layer.Layer<WorkerPool, JobError.JobError, R> =>
  Layer.effect(WorkerPool)(Effect.flatMap(JobExecutor.inline(handlers), (executor) => make(executor, options)))

/**
 * The names of the pool's metrics: `switchboard_jobs_queued` and
 * `switchboard_jobs_running` (gauges), `switchboard_job_duration_seconds`
 * (histogram), `switchboard_jobs_failed_total{reason}` (a `JobError` reason,
 * or `Failure` for a job's own typed failure) and
 * `switchboard_workers_replaced_total`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = poolMetrics
