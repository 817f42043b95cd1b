/**
 * The worker pool's dispatcher: a bounded FIFO queue in front of a fixed
 * set of workers (`JobExecutor.Slot`s), each running one job at a time.
 *
 * - Admission: a job waits (or fails with `QueueFull` / `ConnectionLimit`)
 *   while the queue is full or its connection has `maxJobsPerConnection`
 *   jobs; waiters are woken one at a time, in order.
 * - Each running job has a supervising fiber on the pool's `Clock`: it
 *   awaits the worker's outcome, or the job's timeout, or its cancellation
 *   (the connection closed, the awaiting fiber was interrupted). A job that
 *   ended early is asked to stop; a worker that does not confirm within
 *   `cancelGrace` is terminated and replaced, so a job that never yields
 *   costs one worker for that long, not for ever.
 * - A worker that dies is replaced (with backoff while spawning fails); only
 *   its own job fails, with `WorkerCrashed`.
 * - Shutdown: new jobs fail with `PoolClosed`, queued ones too; running ones
 *   get up to `shutdownTimeout` to finish, then every worker is terminated.
 */
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import type * as Connection from "../Connection.ts"
import type * as Job from "../Job.ts"
import * as JobError from "../JobError.ts"
import * as JobExecutor from "../JobExecutor.ts"
import { ActorImpl } from "./actor.ts"

export interface Settings {
  readonly queueCapacity: number
  readonly maxJobsPerConnection: number
  /** ms; 0 = none. */
  readonly timeout: number
  readonly cancelGrace: number
  readonly shutdownTimeout: number
}

export interface SubmitOptions {
  readonly wait: boolean
  /** ms; 0 = none. */
  readonly timeout: number
}

export const metrics = {
  queued: Metric.gauge("switchboard_jobs_queued", { description: "Jobs waiting for a worker" }),
  running: Metric.gauge("switchboard_jobs_running", { description: "Jobs running on a worker" }),
  duration: Metric.histogram("switchboard_job_duration_seconds", {
    description: "From a job's start on a worker to its end",
    boundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
  }),
  failed: Metric.counter("switchboard_jobs_failed_total", {
    description: "Jobs that did not succeed, by reason (Failure: the job's own typed failure)",
    incremental: true
  }),
  replaced: Metric.counter("switchboard_workers_replaced_total", {
    description: "Workers replaced after a crash, or terminated because a job would not stop",
    incremental: true
  })
}

type Exit_ = Exit.Exit<unknown, unknown>

interface Owner {
  readonly conn: Connection.Connection<never>
  /** The connection ended: no more jobs for it. */
  abandoned: boolean
  count: number
  readonly entries: Set<Entry>
  readonly waiters: Array<() => void>
  /** Its submitter waiting for room in the queue, if any: woken (to fail) when the connection ends. */
  spaceWake: (() => void) | undefined
}

interface Entry {
  readonly id: number
  readonly job: Job.Any
  readonly request: JobExecutor.Request
  readonly owner: Owner | undefined
  readonly timeout: number
  /** Called once, with the job's exit. */
  deliver: (exit: Exit_) => void
  state: "queued" | "running" | "done"
  fiber: Fiber.Fiber<void> | undefined
  startedAt: number
}

interface Worker {
  readonly index: number
  slot: JobExecutor.Slot | undefined
  scope: Scope.Closeable | undefined
  /** The job on this worker (it stays set while a stopped job's worker is asked to stop). */
  entry: Entry | undefined
  busy: boolean
}

const poolError = (job: string, reason: JobError.Reason) => new JobError.JobError({ job, reason })

const remove = <A>(array: Array<A>, item: A): void => {
  const index = array.indexOf(item)
  if (index >= 0) array.splice(index, 1)
}

export class Pool {
  private readonly queue: Array<Entry> = []
  private readonly spaceWaiters: Array<() => void> = []
  private readonly owners = new WeakMap<object, Owner>()
  private readonly workers: Array<Worker> = []
  private readonly runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  private nextId = 0
  private closed = false
  private busyCount = 0
  private idle: Deferred.Deferred<void> | undefined
  private readonly executor: JobExecutor.Executor
  private readonly settings: Settings
  private readonly context: Context.Context<never>

  constructor(executor: JobExecutor.Executor, settings: Settings, context: Context.Context<never>) {
    this.executor = executor
    this.settings = settings
    this.context = context
    this.runFork = Effect.runForkWith(context)
  }

  get size(): number {
    return this.executor.size
  }

  get queued(): number {
    return this.queue.length
  }

  /** Starts every worker; fails if one cannot start. */
  get start(): Effect.Effect<void, JobError.JobError> {
    return Effect.forEach(
      Array.from({ length: this.executor.size }, (_, index) => index),
      (index) =>
        Effect.gen({ self: this }, function* () {
          const worker: Worker = { index, slot: undefined, scope: undefined, entry: undefined, busy: false }
          this.workers.push(worker)
          // a worker's scope is its own, not a child of the pool's: the pool
          // closes it after draining (a child would close before the drain)
          const scope = yield* Scope.make()
          const slot = yield* this.executor.spawn.pipe(
            Scope.provide(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void)),
            Effect.mapError((reason) => poolError("pool", reason))
          )
          this.attach(worker, slot, scope)
        }),
      { discard: true }
    )
  }

  // ---------------------------------------------------------------- submitting

  submit<J extends Job.Any>(
    conn: Connection.Connection<Job.JobResult<J>>,
    job: J,
    payload: Job.Payload<J>,
    options: SubmitOptions
  ): Effect.Effect<number, JobError.JobError> {
    return Effect.flatMap(this.encode(job, payload), (request) =>
      this.admit(job, request, this.ownerOf(conn as Connection.Connection<never>), options, ({ id }) => (exit) => {
        const result: Job.JobResult<J> = { _tag: "JobResult", id, job: job.tag, exit: exit as Job.JobResult<J>["exit"] }
        if (conn instanceof ActorImpl) conn.deliverUnsafe(result)
        else conn.tellUnsafe(result)
      }).pipe(Effect.map((entry) => entry.id))
    )
  }

  run<J extends Job.Any>(
    job: J,
    payload: Job.Payload<J>,
    options: SubmitOptions
  ): Effect.Effect<Job.Success<J>, Job.Failure<J> | JobError.JobError> {
    return Effect.flatMap(this.encode(job, payload), (request) => {
      const done = Deferred.makeUnsafe<Job.Success<J>, Job.Failure<J> | JobError.JobError>()
      // set as the job is queued, so that an interrupt at any point after it cancels the job
      let queued: Entry | undefined
      return this.admit(job, request, undefined, options, (entry) => {
        queued = entry
        return (exit) =>
          Deferred.doneUnsafe(done, exit as Exit.Exit<Job.Success<J>, Job.Failure<J> | JobError.JobError>)
      }).pipe(
        Effect.andThen(Deferred.await(done)),
        Effect.onInterrupt(() => Effect.sync(() => queued && this.cancel(queued)))
      )
    })
  }

  private encode<J extends Job.Any>(job: J, payload: Job.Payload<J>) {
    return JobExecutor.encodePayload(job, payload).pipe(
      Effect.mapError((error) => poolError(job.tag, new JobError.InvalidPayload({ message: error.message })))
    )
  }

  private ownerOf(conn: Connection.Connection<never>): Owner {
    let owner = this.owners.get(conn)
    if (owner === undefined) {
      const made: Owner = { conn, abandoned: false, count: 0, entries: new Set(), waiters: [], spaceWake: undefined }
      owner = made
      this.owners.set(conn, made)
      // the socket's close ends its jobs at once, even while its actor is blocked in a callback
      // (a submit waiting for room); the finalizer covers connections that end otherwise
      if (conn instanceof ActorImpl) conn.watchClosedUnsafe(() => this.abandon(made))
      Effect.runSyncWith(this.context)(conn.addFinalizer(Effect.sync(() => this.abandon(made))))
    }
    return owner
  }

  /** Waits for room (or fails), then queues the job; succeeds with its id. */
  private admit(
    job: Job.Any,
    encoded: { readonly value: unknown; readonly transfers: ReadonlyArray<unknown> },
    owner: Owner | undefined,
    options: SubmitOptions,
    deliverTo: (entry: Entry) => (exit: Exit_) => void
  ): Effect.Effect<Entry, JobError.JobError> {
    const attempt: Effect.Effect<Entry, JobError.JobError> = Effect.suspend(() => {
      if (this.closed) return Effect.fail(poolError(job.tag, new JobError.PoolClosed()))
      if (owner !== undefined && (owner.abandoned || !owner.conn.isOpen)) {
        // a wake-up meant for room in the queue goes on to the next submitter
        if (this.queue.length < this.settings.queueCapacity) this.spaceWaiters.shift()?.()
        return Effect.fail(poolError(job.tag, new JobError.Cancelled()))
      }
      if (owner !== undefined && owner.count >= this.settings.maxJobsPerConnection) {
        if (!options.wait) {
          return Effect.fail(
            poolError(job.tag, new JobError.ConnectionLimit({ limit: this.settings.maxJobsPerConnection }))
          )
        }
        return Effect.andThen(this.waitIn(owner.waiters), attempt)
      }
      if (this.queue.length >= this.settings.queueCapacity) {
        if (!options.wait) {
          return Effect.fail(poolError(job.tag, new JobError.QueueFull({ capacity: this.settings.queueCapacity })))
        }
        return Effect.andThen(this.waitIn(this.spaceWaiters, owner), attempt)
      }
      const id = ++this.nextId
      const entry: Entry = {
        id,
        job,
        request: { id, tag: job.tag, payload: encoded.value, transfers: encoded.transfers },
        owner,
        timeout: options.timeout,
        deliver: undefined as unknown as Entry["deliver"],
        state: "queued",
        fiber: undefined,
        startedAt: 0
      }
      entry.deliver = deliverTo(entry)
      if (owner !== undefined) {
        owner.count++
        owner.entries.add(entry)
      }
      this.queue.push(entry)
      metrics.queued.modifyUnsafe(1, this.context)
      this.dispatch()
      return Effect.succeed(entry)
    })
    return attempt
  }

  /** Suspends until woken from `waiters`; passes the wake-up on if interrupted. */
  private waitIn(waiters: Array<() => void>, owner?: Owner): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const wake = () => {
        if (owner !== undefined && owner.spaceWake === wake) owner.spaceWake = undefined
        resume(Effect.void)
      }
      waiters.push(wake)
      if (owner !== undefined) owner.spaceWake = wake
      return Effect.sync(() => {
        remove(waiters, wake)
        if (owner !== undefined && owner.spaceWake === wake) owner.spaceWake = undefined
      })
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => waiters.shift()?.())))
  }

  // ---------------------------------------------------------------- running

  private dispatch(): void {
    for (const worker of this.workers) {
      if (this.queue.length === 0) return
      if (worker.slot === undefined || worker.busy) continue
      const entry = this.queue.shift()!
      metrics.queued.modifyUnsafe(-1, this.context)
      this.startOn(worker, entry)
      // after the start: a woken submitter may dispatch again, and must find this worker busy
      this.spaceWaiters.shift()?.()
    }
  }

  private startOn(worker: Worker, entry: Entry): void {
    const slot = worker.slot!
    worker.busy = true
    worker.entry = entry
    this.busyCount++
    entry.state = "running"
    entry.startedAt = performance.now()
    metrics.running.modifyUnsafe(1, this.context)
    const settled = Deferred.makeUnsafe<JobExecutor.Outcome>()
    slot.start(entry.request, (outcome) => Deferred.doneUnsafe(settled, Exit.succeed(outcome)))
    entry.fiber = this.runFork(
      Effect.withSpan(this.supervise(worker, slot, entry, settled), "switchboard.job", {
        attributes: { "switchboard.job.tag": entry.job.tag, "switchboard.job.worker": worker.index }
      })
    )
  }

  /** Awaits the job's outcome, its timeout, or its cancellation (an interrupt of this fiber). */
  private supervise(
    worker: Worker,
    slot: JobExecutor.Slot,
    entry: Entry,
    settled: Deferred.Deferred<JobExecutor.Outcome>
  ): Effect.Effect<void> {
    const outcome =
      entry.timeout > 0
        ? Effect.timeoutOption(Deferred.await(settled), entry.timeout)
        : Effect.asSome(Deferred.await(settled))
    return outcome.pipe(
      Effect.flatMap((result) => {
        if (result._tag === "None") {
          this.finish(entry, Exit.fail(poolError(entry.job.tag, new JobError.Timeout({ millis: entry.timeout }))))
          return this.stop(worker, slot, entry, settled)
        }
        return JobExecutor.decodeOutcome(entry.job, result.value, (o) =>
          poolError(entry.job.tag, this.reasonOf(o))
        ).pipe(
          Effect.flatMap((exit) =>
            Effect.sync(() => {
              // the worker first, so that whoever the result wakes finds the pool as it will be
              if (result.value._tag === "Crashed") {
                this.logCrash(entry, result.value.message)
                this.replace(worker, slot)
              } else this.release(worker, slot)
              this.finish(entry, exit)
            })
          )
        )
      }),
      Effect.onInterrupt(() =>
        Effect.suspend(() => {
          const reason = this.closed ? new JobError.PoolClosed() : new JobError.Cancelled()
          this.finish(entry, Exit.fail(poolError(entry.job.tag, reason)))
          // a closing pool terminates its workers itself
          if (!this.closed) this.background(this.stop(worker, slot, entry, settled))
          return Effect.void
        })
      ),
      Effect.asVoid
    )
  }

  private reasonOf(outcome: Exclude<JobExecutor.Outcome, { readonly _tag: "Success" | "Failure" }>): JobError.Reason {
    switch (outcome._tag) {
      case "Defect":
        return new JobError.Defect({ message: outcome.message })
      case "Crashed":
        return new JobError.WorkerCrashed({ message: outcome.message })
      case "Interrupted":
        return new JobError.Cancelled()
    }
  }

  /** Asks the worker to stop the job; replaces the worker if it does not within `cancelGrace`. */
  private stop(
    worker: Worker,
    slot: JobExecutor.Slot,
    entry: Entry,
    settled: Deferred.Deferred<JobExecutor.Outcome>
  ): Effect.Effect<void> {
    slot.cancel(entry.id)
    return Effect.timeoutOption(Deferred.await(settled), this.settings.cancelGrace).pipe(
      Effect.flatMap((result) =>
        Effect.sync(() => {
          if (result._tag === "Some" && result.value._tag !== "Crashed") this.release(worker, slot)
          else this.replace(worker, slot)
        })
      )
    )
  }

  /** The job ended (once): bookkeeping, metrics, delivery. */
  private finish(entry: Entry, exit: Exit_): void {
    if (entry.state === "done") return
    const wasRunning = entry.state === "running"
    entry.state = "done"
    if (wasRunning) {
      metrics.running.modifyUnsafe(-1, this.context)
      metrics.duration.updateUnsafe((performance.now() - entry.startedAt) / 1000, this.context)
    }
    if (Exit.isFailure(exit)) {
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
      const tag =
        error && error._tag === "Fail" && error.error instanceof JobError.JobError ? error.error.reason._tag : "Failure"
      Metric.withAttributes(metrics.failed, { reason: tag }).updateUnsafe(1, this.context)
    }
    const owner = entry.owner
    if (owner !== undefined) {
      owner.count--
      owner.entries.delete(entry)
      owner.waiters.shift()?.()
    }
    entry.deliver(exit)
  }

  private release(worker: Worker, slot: JobExecutor.Slot): void {
    if (worker.slot !== slot) return
    worker.entry = undefined
    this.idleOne(worker)
    this.dispatch()
  }

  private idleOne(worker: Worker): void {
    if (!worker.busy) return
    worker.busy = false
    this.busyCount--
    if (this.busyCount === 0 && this.idle !== undefined) Deferred.doneUnsafe(this.idle, Exit.void)
  }

  /** Terminates a worker and starts another in its place. */
  private replace(worker: Worker, slot: JobExecutor.Slot): void {
    if (worker.slot !== slot) return
    const scope = worker.scope!
    worker.slot = undefined
    worker.scope = undefined
    worker.entry = undefined
    this.idleOne(worker)
    metrics.replaced.updateUnsafe(1, this.context)
    this.background(
      Effect.uninterruptible(Effect.andThen(slot.terminate, Scope.close(scope, Exit.void))).pipe(
        Effect.andThen(Effect.suspend(() => (this.closed ? Effect.void : this.respawn(worker))))
      )
    )
  }

  /** Fibers the pool started on its own (replacing workers, watching them): interrupted and awaited at shutdown. */
  private readonly fibers = new Set<Fiber.Fiber<void>>()

  private background(effect: Effect.Effect<void>): void {
    const fiber = this.runFork(effect)
    this.fibers.add(fiber)
    fiber.addObserver(() => this.fibers.delete(fiber))
  }

  private respawn(worker: Worker): Effect.Effect<void> {
    const attempt = (delay: number, logged: boolean): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (this.closed) return Effect.void
        // starting is uninterruptible, so that shutdown never leaves a half-started worker behind
        const spawned = Effect.uninterruptible(
          Effect.flatMap(Scope.make(), (scope) =>
            this.executor.spawn.pipe(
              Scope.provide(scope),
              Effect.matchEffect({
                onSuccess: (slot) => {
                  if (!this.closed) return Effect.sync(() => this.attach(worker, slot, scope))
                  return Effect.andThen(slot.terminate, Scope.close(scope, Exit.void))
                },
                onFailure: (error) => Effect.andThen(Scope.close(scope, Exit.void), Effect.fail(error))
              })
            )
          )
        )
        return spawned.pipe(
          Effect.andThen(Effect.sync(() => this.dispatch())),
          Effect.catch((error) =>
            (logged
              ? Effect.void
              : Effect.logError(`worker ${worker.index} could not start; retrying`, error.message)
            ).pipe(Effect.andThen(Effect.sleep(delay)), Effect.andThen(attempt(Math.min(delay * 2, 5_000), true)))
          )
        )
      })
    return attempt(100, false)
  }

  private attach(worker: Worker, slot: JobExecutor.Slot, scope: Scope.Closeable): void {
    worker.slot = slot
    worker.scope = scope
    // a worker that dies while idle is replaced; one that dies running a job
    // settles that job with `Crashed`, and its supervisor replaces it
    this.background(
      Effect.flatMap(slot.exited, (message) => {
        if (worker.slot !== slot || worker.busy || this.closed) return Effect.void
        this.replace(worker, slot)
        return Effect.logWarning(`worker ${worker.index} exited while idle (${message}); replaced it`)
      })
    )
  }

  private logCrash(entry: Entry, message: string): void {
    this.runFork(Effect.logError(`job ${entry.job.tag} #${entry.id}: its worker crashed (${message}); replacing it`))
  }

  // ---------------------------------------------------------------- cancelling

  /** Cancels one job: dropped if queued, interrupted if running. */
  cancel(entry: Entry): void {
    if (entry.state === "queued") {
      const index = this.queue.indexOf(entry)
      if (index >= 0) {
        this.queue.splice(index, 1)
        metrics.queued.modifyUnsafe(-1, this.context)
        this.spaceWaiters.shift()?.()
      }
      this.finish(
        entry,
        Exit.fail(poolError(entry.job.tag, this.closed ? new JobError.PoolClosed() : new JobError.Cancelled()))
      )
    } else if (entry.state === "running") {
      entry.fiber?.interruptUnsafe()
    }
  }

  /** The connection ended: its jobs are cancelled. */
  private abandon(owner: Owner): void {
    if (owner.abandoned) return
    this.owners.delete(owner.conn)
    owner.abandoned = true
    // a submit it is blocked in fails now (Cancelled) instead of waiting for room
    for (const wake of owner.waiters.splice(0)) wake()
    const spaceWake = owner.spaceWake
    if (spaceWake !== undefined) {
      remove(this.spaceWaiters, spaceWake)
      spaceWake()
    }
    // the queued first: interrupting a running job frees its worker, which would start the next one
    const entries = Array.from(owner.entries)
    for (const entry of entries) if (entry.state === "queued") this.cancel(entry)
    for (const entry of entries) this.cancel(entry)
  }

  /** Refuses new jobs, fails the queued ones, gives running ones `shutdownTimeout`, then terminates every worker. */
  get shutdown(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function* () {
      if (this.closed) return
      this.closed = true
      for (const wake of this.spaceWaiters.splice(0)) wake()
      for (const entry of this.queue.slice()) this.cancel(entry)
      if (this.busyCount > 0) {
        this.idle = Deferred.makeUnsafe<void>()
        yield* Effect.timeoutOption(Deferred.await(this.idle), this.settings.shutdownTimeout)
      }
      for (const worker of this.workers) {
        if (worker.entry?.fiber !== undefined) yield* Fiber.interrupt(worker.entry.fiber)
      }
      yield* Fiber.interruptAll(this.fibers)
      yield* Effect.forEach(
        this.workers,
        (worker) => {
          const slot = worker.slot
          const scope = worker.scope
          worker.slot = undefined
          worker.scope = undefined
          if (slot === undefined || scope === undefined) return Effect.void
          return Effect.andThen(slot.terminate, Scope.close(scope, Exit.void))
        },
        { concurrency: "unbounded", discard: true }
      )
    })
  }
}
