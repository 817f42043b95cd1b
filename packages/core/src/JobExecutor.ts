/**
 * The contract between a `WorkerPool` and the place its jobs run: the inline
 * executor here (the event loop), worker threads in `@switchboard/node`.
 *
 * The pool owns everything about scheduling: its queue, timeouts,
 * cancellation, replacing dead workers, metrics, delivery. An executor only
 * starts workers (`Executor.spawn`), and a worker (`Slot`) runs one encoded
 * request at a time and reports its `Outcome`. `execute` is what runs on the
 * other side: it decodes a request, runs its handler and encodes the result;
 * a worker thread's entry calls it for every request it receives.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Transferables from "effect/workers/Transferable"
import type * as Job from "./Job.ts"
import type * as JobError from "./JobError.ts"

/**
 * A job as it crosses to a worker: its id, tag and encoded payload, and the
 * buffers to transfer rather than copy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly id: number
  readonly tag: string
  readonly payload: unknown
  readonly transfers: ReadonlyArray<unknown>
}

/**
 * How a request ended, as a worker reports it. `Success` and `Failure` carry
 * the encoded success or typed failure; `Defect` a handler that died (or a
 * result that did not match its schema); `Interrupted` a job stopped by
 * `Slot.cancel`; `Crashed` a worker that died while running it.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Success"; readonly value: unknown; readonly transfers: ReadonlyArray<unknown> }
  | { readonly _tag: "Failure"; readonly error: unknown; readonly transfers: ReadonlyArray<unknown> }
  | { readonly _tag: "Defect"; readonly message: string }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "Crashed"; readonly message: string }

/**
 * One worker: it runs one request at a time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Slot {
  /**
   * Starts `request` (the slot is idle). `settle` is called exactly once:
   * with the outcome, or with `Crashed` if the worker dies first.
   */
  start(request: Request, settle: (outcome: Outcome) => void): void
  /** Asks the running job `id` to stop where it yields; it settles with `Interrupted` (or its outcome, if it finished first). */
  cancel(id: number): void
  /** Completes when the worker is gone: it crashed, exited or was terminated. */
  readonly exited: Effect.Effect<string>
  /** Stops the worker now, running or not (a job that never yields); completes when it is gone. */
  readonly terminate: Effect.Effect<void>
}

/**
 * Where a pool's jobs run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Executor {
  /** `"inline"` or `"threads"`, for logs. */
  readonly kind: string
  /** How many workers the pool runs. */
  readonly size: number
  /** Starts a worker, ready for requests; the worker ends with the scope. */
  readonly spawn: Effect.Effect<Slot, JobError.SpawnFailed, Scope.Scope>
}

const collect = <A>(effect: Effect.Effect<A, Schema.SchemaError>) => {
  const collector = Transferables.makeCollectorUnsafe()
  return effect.pipe(
    Effect.provideService(Transferables.Collector, collector),
    Effect.map((value) => ({ value, transfers: collector.clearUnsafe() }))
  )
}

/**
 * Encodes `payload` for `job`, collecting the buffers that its schema
 * transfers.
 *
 * @since 0.1.0
 * @category codec
 */
export const encodePayload = <J extends Job.Any>(
  job: J,
  payload: Job.Payload<J>
): Effect.Effect<{ readonly value: unknown; readonly transfers: ReadonlyArray<unknown> }, Schema.SchemaError> =>
  collect(Schema.encodeUnknownEffect(job.payload)(payload))

/**
 * Decodes an outcome for `job` into the exit its caller sees; `toError`
 * builds the `JobError` of an outcome that is not the job's own.
 *
 * @since 0.1.0
 * @category codec
 */
export const decodeOutcome = <J extends Job.Any>(
  job: J,
  outcome: Outcome,
  toError: (outcome: Exclude<Outcome, { readonly _tag: "Success" | "Failure" }>) => JobError.JobError
): Effect.Effect<Exit.Exit<Job.Success<J>, Job.Failure<J> | JobError.JobError>> => {
  switch (outcome._tag) {
    case "Success":
      return Schema.decodeUnknownEffect(job.success)(outcome.value).pipe(
        Effect.map((value) => Exit.succeed(value as Job.Success<J>)),
        Effect.catch((error) =>
          Effect.succeed(Exit.fail(toError({ _tag: "Defect", message: `success: ${error.message}` })))
        )
      )
    case "Failure":
      return Schema.decodeUnknownEffect(job.failure)(outcome.error).pipe(
        Effect.map((error) => Exit.fail(error as Job.Failure<J>)),
        Effect.catch((error) =>
          Effect.succeed(Exit.fail(toError({ _tag: "Defect", message: `failure: ${error.message}` })))
        )
      )
    default:
      return Effect.succeed(Exit.fail(toError(outcome)))
  }
}

/**
 * Runs a request with `handlers` and encodes how it ended; never fails. A
 * worker entry runs it for each request; the inline executor runs it on the
 * event loop. Interrupting it interrupts the handler.
 *
 * @since 0.1.0
 * @category running
 */
export const execute = <R>(handlers: Job.Handlers<R>, request: Request): Effect.Effect<Outcome, never, R> => {
  const entry = handlers.jobs.get(request.tag)
  if (entry === undefined) return Effect.succeed({ _tag: "Defect", message: `no handler for job ${request.tag}` })
  const { handle, job } = entry
  return Schema.decodeUnknownEffect(job.payload)(request.payload).pipe(
    Effect.mapError((error) => ({ _tag: "BadPayload" as const, error })),
    Effect.flatMap((payload) => Effect.mapError(handle(payload), (error) => ({ _tag: "Handler" as const, error }))),
    Effect.matchCauseEffect({
      onSuccess: (value): Effect.Effect<Outcome> =>
        collect(Schema.encodeUnknownEffect(job.success)(value)).pipe(
          Effect.map(({ transfers, value }): Outcome => ({ _tag: "Success", value, transfers })),
          Effect.catch((error) => Effect.succeed<Outcome>({ _tag: "Defect", message: `success: ${error.message}` }))
        ),
      onFailure: (cause): Effect.Effect<Outcome> => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.succeed({ _tag: "Interrupted" })
        const failure = Cause.findErrorOption(cause)
        if (failure._tag === "Some" && failure.value._tag === "Handler") {
          return collect(Schema.encodeUnknownEffect(job.failure)(failure.value.error)).pipe(
            Effect.map(({ transfers, value }): Outcome => ({ _tag: "Failure", error: value, transfers })),
            Effect.catch((error) => Effect.succeed<Outcome>({ _tag: "Defect", message: `failure: ${error.message}` }))
          )
        }
        if (failure._tag === "Some")
          return Effect.succeed({ _tag: "Defect", message: `payload: ${failure.value.error}` })
        return Effect.succeed({ _tag: "Defect", message: Cause.pretty(cause) })
      }
    })
  )
}

/** How long inline jobs may run back to back in one macrotask before the next waits for a later one. */
const inlineTurnBudgetMillis = 1

/** Runs `f` in a later macrotask (after pending I/O); returns how to call it off. */
const nextTurn = (f: () => void): (() => void) => {
  if (typeof setImmediate === "function") {
    const handle = setImmediate(f)
    return () => clearImmediate(handle)
  }
  const handle = setTimeout(f, 0)
  return () => clearTimeout(handle)
}

/**
 * Runs jobs on the event loop, one at a time: `size: 0` of a pool. A job
 * that never yields cannot be interrupted (nor can its timeout fire until it
 * returns), and it stalls every connection while it runs: inline is for tests
 * and for jobs short enough not to matter. Jobs that follow one another run
 * back to back for at most 1 ms of one macrotask; the next then starts in a
 * later one, so the loop serves sockets and timers between long jobs.
 *
 * @since 0.1.0
 * @category executors
 */
export const inline = <R>(handlers: Job.Handlers<R>): Effect.Effect<Executor, never, R> =>
  Effect.map(Effect.context<R>(), (context) => {
    const runFork = Effect.runForkWith(context)
    return {
      kind: "inline",
      size: 1,
      spawn: Effect.sync((): Slot => {
        let running: Fiber.Fiber<Outcome> | undefined
        // when the first job of this macrotask began (undefined: none yet)
        let turnStart: number | undefined
        // a job about to start, and how to call it off
        let pending: { readonly cancel: () => void; readonly settle: (outcome: Outcome) => void } | undefined
        const stop = () => {
          if (pending !== undefined) {
            const { cancel, settle } = pending
            pending = undefined
            cancel()
            settle({ _tag: "Interrupted" })
          } else running?.interruptUnsafe()
        }
        return {
          start(request, settle) {
            const begin = () => {
              pending = undefined
              if (turnStart === undefined) {
                turnStart = performance.now()
                nextTurn(() => {
                  turnStart = undefined
                })
              }
              const fiber = runFork(execute(handlers, request))
              running = fiber
              fiber.addObserver((exit) => {
                if (running === fiber) running = undefined
                settle(Exit.isSuccess(exit) ? exit.value : { _tag: "Interrupted" })
              })
            }
            // each job's end starts the next one synchronously: without a budget, a queue of jobs
            // would hold the loop for all of them, and sockets, timers and I/O would wait
            if (turnStart !== undefined && performance.now() - turnStart >= inlineTurnBudgetMillis) {
              pending = { cancel: nextTurn(begin), settle }
            } else begin()
          },
          cancel: stop,
          exited: Effect.never,
          terminate: Effect.sync(stop)
        }
      })
    }
  })
