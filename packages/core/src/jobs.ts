/**
 * @switchboard/core/jobs: CPU-bound work off the event loop. A `Job` names
 * the work and its schemas, a `WorkerPool` runs jobs (on worker threads with
 * `@switchboard/node/jobs`, or inline) and delivers their results to the
 * connection's `onInfo`; `JobExecutor` is the worker side.
 *
 * Its own entry point, apart from `@switchboard/core`: jobs need
 * `effect/Schema` and Effect's workers, about 8 MB of RSS that a server
 * without jobs should not load (ADR 0007).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Job from "./Job.ts"
/** @since 0.1.0 */
export * as JobError from "./JobError.ts"
/** @since 0.1.0 */
export * as JobExecutor from "./JobExecutor.ts"
/** @since 0.1.0 */
export * as WorkerPool from "./WorkerPool.ts"
