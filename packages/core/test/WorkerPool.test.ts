import { describe, expect, it } from "@effect/vitest"
import { Behavior, type Connection } from "@switchboard/core"
import { Job, JobError, WorkerPool } from "@switchboard/core/jobs"
import { TestClient } from "@switchboard/testing"
import { Cause, Effect, Exit, Fiber, Layer, Metric, Schema, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { recordingTracer } from "./fixtures/tracing.ts"

const noTimers = { keepalive: false, closeTimeout: false } as const

class Refused extends Schema.TaggedError<Refused>()("Refused", { why: Schema.String }) {}

/** Sleeps `millis` on the Clock, then answers with the text upper-cased. */
const Slow = Job.make("Slow", {
  payload: Schema.Struct({ text: Schema.String, millis: Schema.Int }),
  success: Schema.String,
  failure: Refused
})
const Die = Job.make("Die", { payload: Schema.String })
const Count = Job.make("Count", { payload: Schema.Int, success: Schema.Int })
/** Blocks the thread for `millis`, then records that it ended. */
const Spin = Job.make("Spin", { payload: Schema.Int, success: Schema.Int })

const ended: Array<string> = []

const started: Array<string> = []
const interrupted: Array<string> = []

const Handlers = Job.handlers([Slow, Die, Count, Spin], {
  Slow: ({ millis, text }) =>
    Effect.gen(function* () {
      started.push(text)
      if (text === "refuse") return yield* new Refused({ why: "asked to" })
      yield* Effect.sleep(millis)
      return text.toUpperCase()
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.push(text)))),
  Die: (text) => Effect.die(new Error(text)),
  Count: (n) => Effect.succeed(n + 1),
  Spin: (millis) =>
    Effect.sync(() => {
      const end = performance.now() + millis
      while (performance.now() < end) {}
      ended.push(`spin ${millis}`)
      return millis
    })
})

const Pool = (options?: WorkerPool.Options) => WorkerPool.layerInline(Handlers, options)

type Info = Job.JobResult<typeof Slow>

/**
 * A text message "job:<text>:<millis>" submits a Slow job and answers "queued:<id>";
 * anything else is echoed. A job's result is sent as "done:<id>:<value or error>".
 */
const Jobs = Behavior.make({
  onMessage: (conn: Connection.Connection<Info>, message) => {
    if (typeof message !== "string" || !message.startsWith("job:")) return conn.send(message)
    const [, text = "", millis] = message.split(":")
    return WorkerPool.submit(conn, Slow, { text, millis: Number(millis) }).pipe(
      Effect.flatMap((id) => conn.send(`queued:${id}`)),
      Effect.catch((error) => conn.send(`refused:${error.reason._tag}`))
    )
  },
  onInfo: (conn, result: Info) =>
    conn.send(
      `done:${result.id}:${Exit.match(result.exit, {
        onSuccess: (value) => value,
        onFailure: (cause) => {
          const error = Cause.squash(cause)
          return error instanceof JobError.JobError ? error.reason._tag : (error as Refused)._tag
        }
      })}`
    )
})

const reset = () => {
  started.length = 0
  interrupted.length = 0
}

describe("WorkerPool (inline)", () => {
  it.effect("runs a job and returns its success, its typed failure, or a Defect", () =>
    Effect.gen(function* () {
      expect(yield* WorkerPool.run(Count, 41)).toBe(42)
      const refused = yield* Effect.flip(WorkerPool.run(Slow, { text: "refuse", millis: 0 }))
      expect(refused).toBeInstanceOf(Refused)
      const died = yield* Effect.flip(WorkerPool.run(Die, "boom"))
      expect(died._tag === "JobError" && died.reason._tag).toBe("Defect")
      expect(died._tag === "JobError" && died.reason._tag === "Defect" && died.reason.message).toContain("boom")
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("each job run is a span, switchboard.job, with its tag", () =>
    Effect.gen(function* () {
      const { tracer: recording, spans } = recordingTracer()
      const result = yield* WorkerPool.run(Count, 1).pipe(
        Effect.provide(Pool()),
        Effect.provideService(Tracer.Tracer, recording)
      )
      expect(result).toBe(2)
      const job = spans.find((span) => span.name === "switchboard.job")
      expect(job?.attributes.get("switchboard.job.tag")).toBe("Count")
      expect(job?.status._tag).toBe("Ended")
    })
  )

  it.effect("checks the payload against its schema before queueing", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(WorkerPool.run(Count, 1.5))
      expect(error._tag === "JobError" && error.reason._tag).toBe("InvalidPayload")
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("delivers a submitted job's result to onInfo while the connection keeps answering", () =>
    Effect.gen(function* () {
      reset()
      const client = yield* TestClient.connect(Jobs, noTimers)
      yield* client.send("job:hello:1000")
      expect(yield* client.expectText).toBe("queued:1")
      for (let i = 0; i < 5; i++) {
        yield* client.send(`echo ${i}`)
        expect(yield* client.expectText).toBe(`echo ${i}`)
      }
      yield* TestClock.adjust("1 second")
      expect(yield* client.expectText).toBe("done:1:HELLO")
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("delivers results in the order the jobs end, each with its id", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Jobs, noTimers)
      yield* client.send("job:a:30")
      yield* client.send("job:b:10")
      expect([yield* client.expectText, yield* client.expectText]).toEqual(["queued:1", "queued:2"])
      // one inline worker: a runs first (30 ms), then b (10 ms)
      yield* TestClock.adjust("30 millis")
      expect(yield* client.expectText).toBe("done:1:A")
      yield* TestClock.adjust("10 millis")
      expect(yield* client.expectText).toBe("done:2:B")
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("fails a job that runs past its timeout with Timeout, and interrupts it", () =>
    Effect.gen(function* () {
      reset()
      const client = yield* TestClient.connect(Jobs, noTimers)
      yield* client.send("job:late:60000")
      expect(yield* client.expectText).toBe("queued:1")
      yield* TestClock.adjust("2 seconds")
      expect(yield* client.expectText).toBe("done:1:Timeout")
      expect(interrupted).toEqual(["late"])
      // the worker is free again
      yield* client.send("job:next:5")
      expect(yield* client.expectText).toBe("queued:2")
      yield* TestClock.adjust("5 millis")
      expect(yield* client.expectText).toBe("done:2:NEXT")
    }).pipe(Effect.provide(Pool({ timeout: "2 seconds" })))
  )

  it.effect("cancels a connection's jobs when it closes: the queued are dropped, the running interrupted", () =>
    Effect.gen(function* () {
      reset()
      const client = yield* TestClient.connect(Jobs, noTimers)
      yield* client.send("job:running:60000")
      yield* client.send("job:queued:60000")
      expect([yield* client.expectText, yield* client.expectText]).toEqual(["queued:1", "queued:2"])
      expect(started).toEqual(["running"])
      yield* client.close(1000)
      yield* client.finished
      yield* Effect.yieldNow
      expect(interrupted).toEqual(["running"])
      expect(started).toEqual(["running"])
      expect((yield* WorkerPool.WorkerPool).queued()).toBe(0)
      // the worker serves others at once
      expect(yield* WorkerPool.run(Count, 1)).toBe(2)
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("makes submitters wait while the queue is full, or fails fast with QueueFull", () =>
    Effect.gen(function* () {
      // one worker busy, one job queued: the queue (capacity 1) is full
      const first = yield* Effect.forkChild(WorkerPool.run(Slow, { text: "one", millis: 100 }))
      const second = yield* Effect.forkChild(WorkerPool.run(Slow, { text: "two", millis: 100 }))
      yield* Effect.yieldNow
      const gauge = (metric: typeof WorkerPool.metrics.queued) =>
        Effect.map(Metric.value(metric), (state) => state.value)
      expect([yield* gauge(WorkerPool.metrics.queued), yield* gauge(WorkerPool.metrics.running)]).toEqual([1, 1])
      const full = yield* Effect.flip(WorkerPool.run(Count, 1, { wait: false }))
      expect(full._tag === "JobError" && full.reason).toEqual(new JobError.QueueFull({ capacity: 1 }))
      const waiting = yield* Effect.forkChild(WorkerPool.run(Count, 1))
      yield* Effect.yieldNow
      expect(waiting.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(first)).toBe("ONE")
      // "two" left the queue for the worker: the waiter took its place in the queue
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      expect([yield* gauge(WorkerPool.metrics.queued), yield* gauge(WorkerPool.metrics.running)]).toEqual([1, 1])
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(second)).toBe("TWO")
      expect(yield* Fiber.join(waiting)).toBe(2)
      expect([yield* gauge(WorkerPool.metrics.queued), yield* gauge(WorkerPool.metrics.running)]).toEqual([0, 0])
    }).pipe(Effect.provide(Pool({ queueCapacity: 1 })))
  )

  it.effect("limits the jobs of one connection; the next submit waits for one to end", () =>
    Effect.gen(function* () {
      const client = yield* TestClient.connect(Jobs, noTimers)
      yield* client.send("job:a:10")
      yield* client.send("job:b:10")
      yield* client.send("job:c:10")
      expect([yield* client.expectText, yield* client.expectText]).toEqual(["queued:1", "queued:2"])
      // the third submit waits: the actor does too, so an echo queues behind it
      yield* client.send("echo")
      yield* Effect.yieldNow
      expect(client.pending).toEqual([])
      yield* TestClock.adjust("10 millis")
      // the waiting submit went first; the result of job 1 queued behind the echo
      expect(yield* client.expectText).toBe("queued:3")
      expect(yield* client.expectText).toBe("echo")
      expect(yield* client.expectText).toBe("done:1:A")
      // scoped: the connection closes before the pool, as under a server layer
    }).pipe(Effect.scoped, Effect.provide(Pool({ maxJobsPerConnection: 2 })))
  )

  it.effect("on shutdown fails queued jobs with PoolClosed and gives running ones shutdownTimeout", () =>
    Effect.gen(function* () {
      reset()
      const scope = yield* Scope.make()
      const pool = yield* Layer.buildWithScope(Pool({ shutdownTimeout: "1 second" }), scope)
      const runIn = <A, E>(effect: Effect.Effect<A, E, WorkerPool.WorkerPool>) =>
        Effect.forkChild(Effect.provide(effect, pool))
      const short = yield* runIn(WorkerPool.run(Slow, { text: "short", millis: 500 }))
      const queued = yield* runIn(WorkerPool.run(Slow, { text: "queued", millis: 10 }))
      yield* Effect.yieldNow
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow
      const refusedLater = yield* Effect.flip(Effect.provide(WorkerPool.run(Count, 1), pool))
      expect(refusedLater._tag === "JobError" && refusedLater.reason._tag).toBe("PoolClosed")
      const dropped = yield* Effect.flip(Fiber.join(queued))
      expect(dropped._tag === "JobError" && dropped.reason._tag).toBe("PoolClosed")
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(short)).toBe("SHORT")
      yield* Fiber.join(closing)
      expect(started).toEqual(["short"])
    })
  )

  it.effect("interrupts a running job that outlives shutdownTimeout", () =>
    Effect.gen(function* () {
      reset()
      const scope = yield* Scope.make()
      const pool = yield* Layer.buildWithScope(Pool({ shutdownTimeout: "1 second" }), scope)
      const long = yield* Effect.forkChild(Effect.provide(WorkerPool.run(Slow, { text: "long", millis: 60_000 }), pool))
      yield* Effect.yieldNow
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const error = yield* Effect.flip(Fiber.join(long))
      expect(error._tag === "JobError" && error.reason._tag).toBe("PoolClosed")
      expect(interrupted).toEqual(["long"])
    })
  )

  it.effect("lets the event loop run between two inline jobs", () =>
    Effect.gen(function* () {
      ended.length = 0
      const jobs = yield* Effect.forkChild(
        Effect.all([WorkerPool.run(Spin, 20), WorkerPool.run(Spin, 21)], { concurrency: 2 })
      )
      // a macrotask queued while the first job is queued: sockets, timers and I/O are served like it
      setImmediate(() => ended.push("event loop"))
      yield* Fiber.join(jobs)
      expect(ended).toEqual(["spin 20", "event loop", "spin 21"])
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("fails the layer with InvalidOptions for a bad setting", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(Pool({ queueCapacity: 0 })))
      expect(error.reason._tag).toBe("InvalidOptions")
    })
  )

  it.effect("counts failures by reason", () =>
    Effect.gen(function* () {
      const failed = (reason: string) =>
        Metric.value(Metric.withAttributes(WorkerPool.metrics.failed, { reason })).pipe(Effect.map((s) => s.count))
      const before = yield* failed("Defect")
      yield* Effect.flip(WorkerPool.run(Die, "x"))
      expect((yield* failed("Defect")) - before).toBe(1)
      const typed = yield* failed("Failure")
      yield* Effect.flip(WorkerPool.run(Slow, { text: "refuse", millis: 0 }))
      expect((yield* failed("Failure")) - typed).toBe(1)
    }).pipe(Effect.provide(Pool()))
  )

  it.effect("an interrupted run cancels its job", () =>
    Effect.gen(function* () {
      reset()
      const fiber = yield* Effect.forkChild(WorkerPool.run(Slow, { text: "gone", millis: 60_000 }))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      yield* Effect.yieldNow
      expect(interrupted).toEqual(["gone"])
      expect(yield* WorkerPool.run(Count, 2)).toBe(3)
    }).pipe(Effect.provide(Pool()))
  )
})
