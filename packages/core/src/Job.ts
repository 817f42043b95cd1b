/**
 * Jobs: CPU-bound work declared once with `Schema` and run by a
 * `WorkerPool`, on worker threads or inline on the event loop.
 *
 * A job has a tag, a `payload` schema, a `success` schema and a `failure`
 * schema. The schemas are the contract across the thread boundary: the pool
 * encodes the payload where the job is submitted and decodes it where the
 * job runs, and the other way round for the result, so what crosses is
 * checked at both ends. The handlers live in a module that both the server
 * and the worker entry import (`handlers`); the pool's size decides where
 * they run, with nothing else to change.
 *
 * From a behaviour, `WorkerPool.submit` queues a job and returns at once;
 * the result comes back to the connection's `onInfo` as a `JobResult`.
 *
 * @example
 * ```ts
 * import { hash } from "node:crypto"
 * import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
 * import { Job } from "@switchboard/core/jobs"
 *
 * // jobs.ts: imported by the server and by the worker entry
 * export const Digest = Job.make("Digest", {
 *   payload: Schema.Struct({ data: Job.Bytes, rounds: Schema.Int }),
 *   success: Schema.String
 * })
 *
 * export const Handlers = Job.handlers([Digest], {
 *   Digest: ({ data, rounds }) =>
 *     Effect.sync(() => {
 *       let digest: Uint8Array = data
 *       for (let i = 0; i < rounds; i++) digest = hash("sha256", digest, "buffer")
 *       return Buffer.from(digest).toString("hex")
 *     })
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Transferable from "effect/workers/Transferable"
import type * as JobError from "./JobError.ts"

/**
 * A schema a job may use: it encodes and decodes without services.
 *
 * @since 0.1.0
 * @category models
 */
export type Codec = Schema.Codec<unknown, unknown, never, never> & Schema.Top

/**
 * A job: a tag and the schemas of its payload, success and failure.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job<
  out Tag extends string = string,
  out P extends Codec = Codec,
  out S extends Codec = Codec,
  out F extends Codec = Codec
> {
  readonly _tag: "Job"
  readonly tag: Tag
  readonly payload: P
  readonly success: S
  readonly failure: F
}

/**
 * Any job.
 *
 * @since 0.1.0
 * @category models
 */
export type Any = Job<string, Codec, Codec, Codec>

/**
 * The payload type of a job.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Payload<J extends Any> = J["payload"]["Type"]

/**
 * The success type of a job.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Success<J extends Any> = J["success"]["Type"]

/**
 * The typed failure of a job.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Failure<J extends Any> = J["failure"]["Type"]

/**
 * Declares a job. `success` defaults to `Schema.Void`, `failure` to
 * `Schema.Never` (a job that cannot fail except by a `JobError`).
 *
 * @example
 * ```ts
 * import * as Schema from "effect/Schema"
 * import { Job } from "@switchboard/core/jobs"
 *
 * class TooLong extends Schema.TaggedError<TooLong>()("TooLong", { length: Schema.Number }) {}
 *
 * const Render = Job.make("Render", { payload: Schema.String, success: Schema.String, failure: TooLong })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  const Tag extends string,
  P extends Codec,
  S extends Codec = Schema.Void,
  F extends Codec = Schema.Never
>(
  tag: Tag,
  schemas: { readonly payload: P; readonly success?: S; readonly failure?: F }
): Job<Tag, P, S, F> => ({
  _tag: "Job",
  tag,
  payload: schemas.payload,
  success: (schemas.success ?? Schema.Void) as S,
  failure: (schemas.failure ?? Schema.Never) as F
})

/**
 * The function that runs a job: from its payload to its success or typed
 * failure. It may need services `R` (the worker entry and the inline pool
 * provide them).
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<J extends Any, R> = (payload: Payload<J>) => Effect.Effect<Success<J>, Failure<J>, R>

/**
 * The handlers of a set of jobs, by tag: what a worker (or the inline pool)
 * runs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handlers<out R = never> {
  readonly _tag: "Handlers"
  readonly jobs: ReadonlyMap<string, { readonly job: Any; readonly handle: Handler<Any, R> }>
}

type ImplOf<Jobs extends ReadonlyArray<Any>, R> = {
  readonly [Tag in Jobs[number]["tag"]]: Handler<Extract<Jobs[number], { readonly tag: Tag }>, R>
}

/**
 * Pairs each job with its handler. Every job of `jobs` needs one.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
 * import { Job } from "@switchboard/core/jobs"
 *
 * const Upper = Job.make("Upper", { payload: Schema.String, success: Schema.String })
 * const Count = Job.make("Count", { payload: Schema.String, success: Schema.Number })
 *
 * export const Handlers = Job.handlers([Upper, Count], {
 *   Upper: (text) => Effect.succeed(text.toUpperCase()),
 *   Count: (text) => Effect.succeed(text.length)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const handlers = <const Jobs extends ReadonlyArray<Any>, R = never>(
  jobs: Jobs,
  impl: ImplOf<Jobs, R>
): Handlers<R> => {
  const map = new Map<string, { readonly job: Any; readonly handle: Handler<Any, R> }>()
  const byTag = impl as unknown as Record<string, Handler<Any, R>>
  for (const job of jobs) {
    if (map.has(job.tag)) throw new RangeError(`Job.handlers: two jobs are tagged ${job.tag}`)
    const handle = byTag[job.tag]
    if (typeof handle !== "function") throw new RangeError(`Job.handlers: no handler for job ${job.tag}`)
    map.set(job.tag, { job, handle })
  }
  return { _tag: "Handlers", jobs: map }
}

/**
 * What a job's connection receives in `onInfo` when the job ends: its id
 * (what `submit` returned), its tag, and how it ended: the success, the
 * job's typed failure, or a `JobError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobResult<J extends Any = Any> {
  readonly _tag: "JobResult"
  readonly id: number
  readonly job: J["tag"]
  readonly exit: Exit.Exit<Success<J>, Failure<J> | JobError.JobError>
}

/**
 * True when `info` is the result of `job`: narrows an `onInfo` message.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
 * import { Behavior, type Connection } from "@switchboard/core"
 * import { Job } from "@switchboard/core/jobs"
 *
 * const Upper = Job.make("Upper", { payload: Schema.String, success: Schema.String })
 *
 * const onInfo = (conn: Connection.Connection<Job.JobResult<typeof Upper>>, info: Job.JobResult<typeof Upper>) =>
 *   Job.isResultOf(info, Upper) && Exit.isSuccess(info.exit) ? conn.send(info.exit.value) : Effect.void
 *
 * export const Shout = Behavior.make({ onInfo: (conn, info: Job.JobResult<typeof Upper>) => onInfo(conn, info) })
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isResultOf = <J extends Any>(info: unknown, job: J): info is JobResult<J> =>
  typeof info === "object" &&
  info !== null &&
  (info as { _tag?: unknown })._tag === "JobResult" &&
  (info as { job?: unknown }).job === job.tag

/**
 * Binary data in a job's payload or result: a `Uint8Array`, copied between
 * threads.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Bytes: Schema.instanceOf<Uint8Array<ArrayBufferLike>> = Schema.Uint8Array

const ownsItsBuffer = (bytes: Uint8Array): boolean =>
  bytes.byteLength > 0 &&
  bytes.byteOffset === 0 &&
  bytes.byteLength === bytes.buffer.byteLength &&
  bytes.buffer instanceof ArrayBuffer

/**
 * Binary data that moves between threads instead of being copied: its
 * `ArrayBuffer` is transferred, so the sender's array is empty afterwards.
 * Only an array that owns its whole, non-empty buffer moves (a slice of a
 * bigger buffer is copied: moving it would take its neighbours along; an
 * empty array may share its buffer, as ws's empty messages do); Node's
 * pooled buffers are never moved. An inline pool crosses no thread, so
 * there nothing moves and the array stays as it was.
 *
 * A copied slice costs its whole buffer: a thread boundary (structured
 * clone) copies the `ArrayBuffer` under a view, not just the view's bytes.
 * Binary messages from the Node reactor are their own copy whenever they
 * would share a much bigger buffer; a slice made by the behaviour
 * (`subarray` of a large buffer) should be passed as `slice()`.
 *
 * @example
 * ```ts
 * import * as Schema from "effect/Schema"
 * import { Job } from "@switchboard/core/jobs"
 *
 * const Resize = Job.make("Resize", { payload: Job.TransferredBytes, success: Job.TransferredBytes })
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const TransferredBytes: Transferable.Transferable<Schema.instanceOf<Uint8Array<ArrayBufferLike>>> =
  Transferable.schema(Schema.Uint8Array, (bytes: Uint8Array) =>
    ownsItsBuffer(bytes) ? [bytes.buffer as ArrayBuffer] : []
  )
