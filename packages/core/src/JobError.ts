/**
 * The typed errors of jobs and of the pool that runs them. There is one
 * error, `JobError`, whose `reason` says what went wrong. A job's own typed
 * failure (its `failure` schema) is not a `JobError`: it reaches the caller
 * as it is, next to these. The full list is in `docs/reference/errors.md`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The pool's queue held `capacity` jobs and the submitter asked not to wait
 * (`wait: false`). Nothing was queued.
 *
 * @since 0.1.0
 * @category reasons
 */
export class QueueFull extends Data.TaggedError("QueueFull")<{
  readonly capacity: number
}> {}

/**
 * The connection already had `limit` jobs queued or running
 * (`maxJobsPerConnection`) and the submitter asked not to wait. Nothing was
 * queued.
 *
 * @since 0.1.0
 * @category reasons
 */
export class ConnectionLimit extends Data.TaggedError("ConnectionLimit")<{
  readonly limit: number
}> {}

/**
 * The job ran longer than its timeout. It was interrupted where it yields;
 * a worker thread that did not stop within the pool's `cancelGrace` was
 * terminated and replaced.
 *
 * @since 0.1.0
 * @category reasons
 */
export class Timeout extends Data.TaggedError("Timeout")<{
  readonly millis: number
}> {}

/**
 * The worker thread running the job died: an uncaught exception outside the
 * job's Effect, `process.exit`, or an out-of-memory kill. The worker was
 * replaced; other jobs carry on.
 *
 * @since 0.1.0
 * @category reasons
 */
export class WorkerCrashed extends Data.TaggedError("WorkerCrashed")<{
  readonly message: string
}> {}

/**
 * The job's handler died (a defect: a thrown exception or `Effect.die`), or
 * its success or failure did not match its schema. The worker carries on.
 *
 * @since 0.1.0
 * @category reasons
 */
export class Defect extends Data.TaggedError("Defect")<{
  readonly message: string
}> {}

/**
 * The payload did not match the job's `payload` schema (or could not be
 * encoded). Nothing was queued.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidPayload extends Data.TaggedError("InvalidPayload")<{
  readonly message: string
}> {}

/**
 * The job was cancelled before it finished: its connection closed, or the
 * awaiting fiber was interrupted. A connection never sees this one: it is
 * gone when its jobs are cancelled.
 *
 * @since 0.1.0
 * @category reasons
 */
export class Cancelled extends Data.TaggedError("Cancelled")<{}> {}

/**
 * The pool is shutting down (its layer's scope is closing): the job was not
 * queued, or it was still queued, or it did not finish within the pool's
 * `shutdownTimeout`.
 *
 * @since 0.1.0
 * @category reasons
 */
export class PoolClosed extends Data.TaggedError("PoolClosed")<{}> {}

/**
 * A pool setting was out of range. The pool's layer fails with it.
 *
 * @since 0.1.0
 * @category reasons
 */
export class InvalidOptions extends Data.TaggedError("InvalidOptions")<{
  readonly message: string
}> {}

/**
 * A worker could not be started (a bad module URL, or a module that threw
 * while loading). At startup the pool's layer fails with it; later the pool
 * retries with backoff and logs it once per failing worker.
 *
 * @since 0.1.0
 * @category reasons
 */
export class SpawnFailed extends Data.TaggedError("SpawnFailed")<{
  readonly message: string
}> {}

/**
 * Every reason a `JobError` can carry.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | QueueFull
  | ConnectionLimit
  | Timeout
  | WorkerCrashed
  | Defect
  | InvalidPayload
  | Cancelled
  | PoolClosed
  | InvalidOptions
  | SpawnFailed

/**
 * The error of a job, or of the pool.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
 * import { Job, WorkerPool } from "@switchboard/core/jobs"
 *
 * const Hash = Job.make("Hash", { payload: Schema.String, success: Schema.String })
 *
 * // a busy pool answers "later" instead of making the caller wait
 * const hashNow = (text: string) =>
 *   WorkerPool.run(Hash, text, { wait: false }).pipe(
 *     Effect.catchReason("JobError", "QueueFull", () => Effect.succeed("busy, try again"))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class JobError extends Data.TaggedError("JobError")<{
  /** The job's tag (`"pool"` for errors of the pool itself). */
  readonly job: string
  readonly reason: Reason
}> {
  override get message(): string {
    return `job ${this.job}: ${this.reason._tag}${
      "message" in this.reason && this.reason.message ? `: ${this.reason.message}` : ""
    }`
  }
}
