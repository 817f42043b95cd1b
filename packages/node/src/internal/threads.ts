/**
 * Jobs on `worker_threads`, both sides of the wire.
 *
 * Main thread: `executor` spawns workers through Effect's `WorkerPlatform`
 * (`@effect/platform-node`'s `NodeWorker`: the ready handshake, messages
 * buffered until the worker is ready, cleanup tied to a scope). Each worker
 * runs one job at a time for the core pool (`WorkerPool.make`), which does
 * all the scheduling; this file only moves requests and outcomes, and knows
 * the raw `Worker` so that it can `terminate()` a job that never yields.
 *
 * Worker thread: `serve` answers requests with `JobExecutor.execute`, one
 * fiber per job, and interrupts a job's fiber when asked to cancel it.
 *
 * The wire: main → worker `[0, id, tag, payload]` (run) and `[1, id]`
 * (cancel); worker → main `[id, kind, value]` with kind 0 success, 1 typed
 * failure, 2 defect (value: message), 3 interrupted.
 */

import * as Fs from "node:fs"
import * as Os from "node:os"
import * as WorkerThreads from "node:worker_threads"
import * as NodeWorker from "@effect/platform-node/NodeWorker"
import { type Job, JobError, JobExecutor } from "@switchboard/core/jobs"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Worker from "effect/workers/Worker"
import * as WorkerRunner from "effect/workers/WorkerRunner"

type Command = readonly [0, number, string, unknown] | readonly [1, number]
type Reply = readonly [number, 0 | 1, unknown] | readonly [number, 2, string] | readonly [number, 3]

export interface ThreadOptions {
  readonly worker: URL | string
  readonly size: number
  readonly resourceLimits?: WorkerThreads.ResourceLimits
  /** How long a new worker may take to load its module and report ready. */
  readonly readyTimeout: number
  /** The nice value each worker thread gives itself (Linux), 0 to 19. */
  readonly niceness: number
}

/** What the main thread tells a worker thread through `workerData`. */
interface ThreadData {
  readonly switchboardNiceness?: number
}

/**
 * Lowers this thread's scheduling priority to `niceness`. On Linux a nice
 * value belongs to a thread (`setpriority` on its thread id), so the main
 * thread and the rest of the process keep theirs. A thread already nicer
 * than that keeps its value (this never raises a priority). Elsewhere there is no
 * thread id to give `setpriority`, and nothing changes.
 */
const lowerThreadPriority = (niceness: number): void => {
  if (niceness <= 0 || process.platform !== "linux") return
  try {
    const tid = Number(Fs.readlinkSync("/proc/thread-self").split("/").pop())
    // only ever lower it: a process that is already nicer keeps its value
    if (Number.isInteger(tid) && tid > 0 && Os.getPriority(tid) < niceness) Os.setPriority(tid, niceness)
  } catch {
    // no /proc, or a sandbox that forbids it: the thread keeps the process's priority
  }
}

/** Transfers only what may move: never a buffer that Node marked untransferable (its pooled buffers). */
const movable = (transfers: ReadonlyArray<unknown>): Array<WorkerThreads.Transferable> =>
  transfers.filter(
    (t): t is WorkerThreads.Transferable =>
      t instanceof ArrayBuffer && !(WorkerThreads.isMarkedAsUntransferable?.(t) ?? false)
  )

const toOutcome = (reply: Reply): JobExecutor.Outcome => {
  switch (reply[1]) {
    case 0:
      return { _tag: "Success", value: reply[2], transfers: [] }
    case 1:
      return { _tag: "Failure", error: reply[2], transfers: [] }
    case 2:
      return { _tag: "Defect", message: reply[2] }
    case 3:
      return { _tag: "Interrupted" }
  }
}

const spawnFailed = (message: string) => new JobError.SpawnFailed({ message })

let nextWorkerId = 0

/** Worker threads alive: up when one is created, down on its `exit` event. */
export const threadsAlive = Metric.gauge("switchboard_job_threads", {
  description: "Worker threads of job pools that are alive (created and not yet exited)"
})

/** The main thread's side: workers on `worker_threads`. */
export const executor = (options: ThreadOptions): JobExecutor.Executor => ({
  kind: "threads",
  size: options.size,
  spawn: Effect.gen(function* () {
    const platform = yield* Worker.WorkerPlatform
    const context = yield* Effect.context<never>()
    let raw: WorkerThreads.Worker | undefined
    const spawner: Worker.SpawnerFn = () => {
      raw = new WorkerThreads.Worker(options.worker, {
        ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
        workerData: { switchboardNiceness: options.niceness } satisfies ThreadData,
        name: "switchboard-job"
      })
      threadsAlive.modifyUnsafe(1, context)
      raw.once("exit", () => threadsAlive.modifyUnsafe(-1, context))
      return raw
    }
    const worker = yield* platform.spawn<Reply, Command>(nextWorkerId++).pipe(
      Effect.provideService(Worker.Spawner, spawner),
      Effect.mapError((error) => spawnFailed(error.message))
    )

    let current: { readonly id: number; readonly settle: (outcome: JobExecutor.Outcome) => void } | undefined
    const ready = Deferred.makeUnsafe<void>()
    const exited = Deferred.makeUnsafe<string>()
    const onReply = (reply: Reply) =>
      Effect.sync(() => {
        if (current === undefined || current.id !== reply[0]) return
        const { settle } = current
        current = undefined
        settle(toOutcome(reply))
      })
    const running: Fiber.Fiber<never, unknown> = yield* worker
      .run(onReply, { onSpawn: Deferred.succeed(ready, undefined) })
      .pipe(Effect.forkScoped)
    running.addObserver((exit) => {
      const message = Exit.isFailure(exit)
        ? Cause.findErrorOption(exit.cause).pipe((e) =>
            e._tag === "Some" ? String((e.value as Error).message) : ""
          ) || Cause.pretty(exit.cause)
        : "exited"
      const job = current
      current = undefined
      job?.settle({ _tag: "Crashed", message })
      Deferred.doneUnsafe(exited, Exit.succeed(message))
    })

    // ready, or the reason it never will be
    const started = yield* Effect.raceFirst(
      Effect.as(Deferred.await(ready), undefined),
      Effect.map(Deferred.await(exited), (message) => message)
    ).pipe(Effect.timeoutOption(options.readyTimeout))
    if (started._tag === "None") {
      yield* Effect.promise(() => raw?.terminate() ?? Promise.resolve(0))
      return yield* spawnFailed(
        `${String(options.worker)} did not report ready within ${options.readyTimeout} ms (does it call NodeWorkerPool.runWorker?)`
      )
    }
    if (started.value !== undefined) return yield* spawnFailed(`${String(options.worker)}: ${started.value}`)

    const slot: JobExecutor.Slot = {
      start(request, settle) {
        // a worker that died while idle, before the pool noticed: its port would swallow the request
        if (Deferred.isDoneUnsafe(exited)) return settle({ _tag: "Crashed", message: "the worker had exited" })
        current = { id: request.id, settle }
        const send = worker.send([0, request.id, request.tag, request.payload], movable(request.transfers))
        Effect.runFork(
          Effect.catch(send, (error) =>
            Effect.sync(() => {
              if (current?.id !== request.id) return
              current = undefined
              // nothing reached the worker (a payload that cannot be cloned): the worker is fine
              settle({ _tag: "Defect", message: `could not send the job: ${error.message}` })
            })
          )
        )
      },
      cancel(id) {
        Effect.runFork(Effect.ignore(worker.send([1, id])))
      },
      exited: Deferred.await(exited),
      terminate: Effect.suspend(() =>
        raw === undefined || Deferred.isDoneUnsafe(exited)
          ? Effect.void
          : Effect.andThen(
              Effect.promise(() => raw!.terminate()),
              Deferred.await(exited)
            )
      ).pipe(Effect.asVoid)
    }
    return slot
  }).pipe(Effect.provide(NodeWorker.layerPlatform))
})

/** The worker thread's side: answers requests with `handlers` until the main thread closes it. */
export const serve = <R>(
  handlers: Job.Handlers<R>
): Effect.Effect<void, JobError.JobError, R | WorkerRunner.WorkerRunnerPlatform> =>
  Effect.gen(function* () {
    const data = WorkerThreads.workerData as ThreadData | undefined
    if (typeof data?.switchboardNiceness === "number") lowerThreadPriority(data.switchboardNiceness)
    const platform = yield* WorkerRunner.WorkerRunnerPlatform
    const runner = yield* platform.start<Reply, Command>()
    const runFork = Effect.runForkWith(yield* Effect.context<R>())
    const jobs = new Map<number, Fiber.Fiber<JobExecutor.Outcome>>()
    yield* runner.run<void, never, never>((_port, command) => {
      if (command[0] === 1) {
        jobs.get(command[1])?.interruptUnsafe()
        return
      }
      const [, id, tag, payload] = command
      const fiber = runFork(JobExecutor.execute(handlers, { id, tag, payload, transfers: [] }))
      jobs.set(id, fiber)
      fiber.addObserver((exit) => {
        jobs.delete(id)
        const outcome: JobExecutor.Outcome = Exit.isSuccess(exit) ? exit.value : { _tag: "Interrupted" }
        switch (outcome._tag) {
          case "Success":
            return runner.sendUnsafe(0, [id, 0, outcome.value], movable(outcome.transfers))
          case "Failure":
            return runner.sendUnsafe(0, [id, 1, outcome.error], movable(outcome.transfers))
          case "Defect":
          case "Crashed":
            return runner.sendUnsafe(0, [id, 2, outcome.message])
          case "Interrupted":
            return runner.sendUnsafe(0, [id, 3])
        }
      })
    })
  }).pipe(
    Effect.mapError(
      (error) => new JobError.JobError({ job: "pool", reason: new JobError.SpawnFailed({ message: error.message }) })
    )
  )
