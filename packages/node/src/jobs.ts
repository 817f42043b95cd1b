/**
 * @switchboard/node/jobs: the worker-thread pool for jobs (`NodeWorkerPool`),
 * on its own entry point like `@switchboard/core/jobs`, so that a server
 * without jobs does not load Effect's workers (ADR 0007).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeWorkerPool from "./NodeWorkerPool.ts"
