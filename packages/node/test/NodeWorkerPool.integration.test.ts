import { threadId } from "node:worker_threads"
import { describe, expect, it } from "@effect/vitest"
import { Behavior, type Connection } from "@switchboard/core"
import { type Job, JobError, WorkerPool } from "@switchboard/core/jobs"
import { NodeWorkerPool } from "@switchboard/node/jobs"
import { Cause, ConfigProvider, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import {
  Crash,
  Die,
  Digest,
  digest,
  Handlers,
  Niceness,
  Refused,
  Reverse,
  Sleep,
  Spin,
  Where
} from "./fixtures/jobs.ts"
import { connect, serve, waitUntil } from "./support.ts"

const worker = new URL("./fixtures/jobWorker.ts", import.meta.url)

const Threads = (options?: Partial<NodeWorkerPool.Options<never>>) =>
  NodeWorkerPool.layer({ handlers: Handlers, worker, size: 2, ...options })

const reasonOf = (error: unknown) => (error instanceof JobError.JobError ? error.reason._tag : String(error))

const threadsAlive = Metric.value(NodeWorkerPool.threads).pipe(Effect.map((state) => state.value))
const replaced = Metric.value(WorkerPool.metrics.replaced).pipe(Effect.map((state) => state.count))

/** The same jobs, run on `pool`: what every kind of pool must answer alike. */
const sameAnswers = Effect.gen(function* () {
  const data = new TextEncoder().encode("switchboard")
  return {
    digest: yield* WorkerPool.run(Digest, { data, rounds: 100 }),
    refused: yield* Effect.flip(WorkerPool.run(Digest, { data, rounds: 0 })),
    died: reasonOf(yield* Effect.flip(WorkerPool.run(Die, "boom"))),
    reversed: Array.from(yield* WorkerPool.run(Reverse, new Uint8Array([1, 2, 3])))
  }
})

describe("NodeWorkerPool", () => {
  it.live("gives the same results on threads as inline, off the main thread", () =>
    Effect.gen(function* () {
      const threaded = yield* Effect.provide(sameAnswers, Threads())
      const inline = yield* Effect.provide(sameAnswers, Threads({ size: 0 }))
      expect(threaded).toEqual(inline)
      expect(threaded.digest).toBe(digest(new TextEncoder().encode("switchboard"), 100))
      expect(threaded.refused).toBeInstanceOf(Refused)
      expect(threaded.died).toBe("Defect")
      expect(threaded.reversed).toEqual([3, 2, 1])
      const where = yield* Effect.provide(WorkerPool.run(Where, undefined), Threads())
      expect(where).not.toBe(threadId)
      expect(yield* Effect.provide(WorkerPool.run(Where, undefined), Threads({ size: 0 }))).toBe(threadId)
    })
  )

  it.live("moves a transferred payload to the worker instead of copying it", () =>
    Effect.gen(function* () {
      const bytes = new Uint8Array(1 << 20).fill(7)
      bytes[0] = 1
      const back = yield* WorkerPool.run(Reverse, bytes)
      expect(bytes.byteLength).toBe(0) // detached: its buffer went to the worker
      expect(back.byteLength).toBe(1 << 20)
      expect(back[back.length - 1]).toBe(1)
      // a slice of a bigger buffer is copied, not moved (moving would take its neighbours)
      const whole = new Uint8Array([1, 2, 3, 4])
      const slice = whole.subarray(1, 3)
      expect(Array.from(yield* WorkerPool.run(Reverse, slice))).toEqual([3, 2])
      expect(Array.from(whole)).toEqual([1, 2, 3, 4])
    }).pipe(Effect.provide(Threads()))
  )

  it.live("runs empty payloads again and again: one shared empty buffer is never moved (and detached)", () =>
    Effect.gen(function* () {
      // ws hands every empty message over as the same module-wide empty buffer
      const shared = new Uint8Array(0)
      for (let i = 0; i < 3; i++) expect((yield* WorkerPool.run(Reverse, shared)).byteLength).toBe(0)
      expect(shared.buffer.detached).toBe(false)
    }).pipe(Effect.provide(Threads()))
  )

  it.live("replaces a worker that exits or throws; only its job fails, the others carry on", () =>
    Effect.gen(function* () {
      const before = yield* replaced
      const long = yield* Effect.forkChild(WorkerPool.run(Sleep, 300))
      yield* Effect.sleep("50 millis")
      const exited = yield* Effect.flip(WorkerPool.run(Crash, "exit"))
      expect(reasonOf(exited)).toBe("WorkerCrashed")
      expect(
        exited instanceof JobError.JobError && exited.reason._tag === "WorkerCrashed" && exited.reason.message
      ).toContain("3")
      const thrown = yield* Effect.flip(WorkerPool.run(Crash, "throw"))
      expect(reasonOf(thrown)).toBe("WorkerCrashed")
      expect(yield* Fiber.join(long)).toBe(300)
      expect((yield* replaced) - before).toBe(2)
      // both workers serve again
      const results = yield* Effect.all([WorkerPool.run(Sleep, 20), WorkerPool.run(Sleep, 20)], { concurrency: 2 })
      expect(results).toEqual([20, 20])
    }).pipe(Effect.provide(Threads()))
  )

  it.live("replaces a worker that dies while idle", () =>
    Effect.gen(function* () {
      const before = yield* replaced
      const first = yield* WorkerPool.run(Where, undefined)
      yield* WorkerPool.run(Crash, "later")
      yield* Effect.sleep("600 millis")
      expect((yield* replaced) - before).toBe(1)
      const second = yield* WorkerPool.run(Where, undefined)
      expect(second).not.toBe(first)
    }).pipe(Effect.provide(Threads({ size: 1 })))
  )

  it.live("times out a job that never yields, terminates its worker after cancelGrace, and replaces it", () =>
    Effect.gen(function* () {
      const before = yield* replaced
      const started = Date.now()
      const error = yield* Effect.flip(WorkerPool.run(Spin, 30_000, { timeout: "200 millis" }))
      expect(reasonOf(error)).toBe("Timeout")
      expect(Date.now() - started).toBeLessThan(10_000)
      expect(yield* WorkerPool.run(Sleep, 10)).toBe(10)
      // the spinning worker could not confirm: it was terminated
      expect((yield* replaced) - before).toBe(1)
    }).pipe(Effect.provide(Threads({ size: 1, cancelGrace: "200 millis" })))
  )

  it.live("interrupts a job that yields on timeout, keeping its worker", () =>
    Effect.gen(function* () {
      const before = yield* replaced
      const where = yield* WorkerPool.run(Where, undefined)
      const error = yield* Effect.flip(WorkerPool.run(Sleep, 60_000, { timeout: "100 millis" }))
      expect(reasonOf(error)).toBe("Timeout")
      expect(yield* WorkerPool.run(Where, undefined)).toBe(where)
      expect((yield* replaced) - before).toBe(0)
    }).pipe(Effect.provide(Threads({ size: 1 })))
  )

  it.live("leaves no thread when its scope closes, even with a job that never yields", () =>
    Effect.gen(function* () {
      const alive = yield* threadsAlive
      const scope = yield* Scope.make()
      const pool = yield* Layer.buildWithScope(Threads({ shutdownTimeout: "200 millis" }), scope)
      expect((yield* threadsAlive) - alive).toBe(2)
      const spinning = yield* Effect.forkChild(Effect.provide(WorkerPool.run(Spin, 30_000), pool))
      const queued = yield* Effect.forkChild(Effect.provide(WorkerPool.run(Sleep, 10), pool))
      yield* Effect.sleep("50 millis")
      yield* Scope.close(scope, Exit.void)
      expect((yield* threadsAlive) - alive).toBe(0)
      expect(reasonOf(yield* Effect.flip(Fiber.join(spinning)))).toBe("PoolClosed")
      // the other worker had run the short job before the close
      expect(yield* Fiber.join(queued)).toBe(10)
    })
  )

  it.live("reads its size from WORKERS and its priority from WORKER_NICENESS with layerConfig (0: inline)", () =>
    Effect.gen(function* () {
      const sized = (workers: string) =>
        WorkerPool.WorkerPool.use((pool) => Effect.succeed([pool.kind, pool.size])).pipe(
          Effect.provide(
            NodeWorkerPool.layerConfig({ handlers: Handlers, worker }).pipe(
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ WORKERS: workers })))
            )
          )
        )
      expect(yield* sized("0")).toEqual(["inline", 1])
      const nice = yield* WorkerPool.run(Niceness, undefined).pipe(
        Effect.provide(
          NodeWorkerPool.layerConfig({ handlers: Handlers, worker }).pipe(
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ WORKERS: "1", WORKER_NICENESS: "5" })))
          )
        )
      )
      expect(nice).toBe(Math.max(5, yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 0 }))))
      expect(yield* sized("2")).toEqual(["threads", 2])
      const error = yield* Effect.flip(sized("-1"))
      expect(error._tag === "JobError" && error.reason._tag).toBe("InvalidOptions")
    })
  )

  it.live("lowers its threads' priority to niceness (default 10), not the main thread's", () =>
    Effect.gen(function* () {
      const main = yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 0 }))
      // a priority is only ever lowered: under a nicer test runner, the threads keep its value
      expect(yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 1 }))).toBe(
        Math.max(main, NodeWorkerPool.defaultNiceness)
      )
      expect(NodeWorkerPool.defaultNiceness).toBe(10)
      expect(yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 1, niceness: 0 }))).toBe(main)
      expect(yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 1, niceness: 19 }))).toBe(19)
      expect(main).toBeLessThan(19)
      // the inline run above read the main thread, which no pool touched
      expect(yield* Effect.provide(WorkerPool.run(Niceness, undefined), Threads({ size: 0 }))).toBe(main)
      for (const niceness of [-1, 20, 1.5]) {
        const error = yield* Effect.flip(Layer.build(Threads({ size: 1, niceness })))
        expect(error.reason._tag).toBe("InvalidOptions")
      }
    })
  )

  it.live("fails its layer with SpawnFailed for a worker module that does not exist", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(Threads({ worker: new URL("./fixtures/no-such-worker.ts", import.meta.url), size: 1 }))
      )
      expect(error.reason._tag).toBe("SpawnFailed")
      expect(error.message).toContain("no-such-worker")
    })
  )

  it.live("delivers job results to a real connection's onInfo while it keeps answering echoes", () =>
    Effect.gen(function* () {
      type Info = Job.JobResult<typeof Sleep>
      // text "sleep <ms>" submits a job; anything else is echoed
      const Jobs = Behavior.make({
        onMessage: (conn: Connection.Connection<Info>, message) =>
          typeof message === "string" && message.startsWith("sleep ")
            ? Effect.asVoid(WorkerPool.submit(conn, Sleep, Number(message.slice(6))))
            : conn.send(message),
        onInfo: (conn, result: Info) =>
          conn.send(Exit.isSuccess(result.exit) ? `slept ${result.exit.value}` : Cause.pretty(result.exit.cause))
      })
      const server = yield* serve({ routes: { "/jobs": Jobs } })
      const client = yield* connect(server.port, "/jobs")
      client.ws.send("sleep 300")
      const echoes: Array<string> = []
      for (let i = 0; i < 20; i++) {
        client.ws.send(`echo ${i}`)
        echoes.push(String(yield* Effect.promise(client.next)))
      }
      expect(echoes).toEqual(Array.from({ length: 20 }, (_, i) => `echo ${i}`))
      expect(yield* Effect.promise(client.next)).toBe("slept 300")
    }).pipe(Effect.scoped, Effect.provide(Threads()))
  )

  it.live("stops a closed connection's jobs at once, even while its actor waits in submit for room", () =>
    Effect.gen(function* () {
      let started = 0
      // every message submits a 400 ms job, waiting for room: one job at a time per connection
      const Burst = Behavior.make({
        onMessage: (conn: Connection.Connection<Job.JobResult<typeof Sleep>>) =>
          Effect.sync(() => started++).pipe(
            Effect.andThen(WorkerPool.submit(conn, Sleep, 400)),
            Effect.catch(() => Effect.void),
            Effect.asVoid
          )
      })
      const server = yield* serve({ routes: { "/burst": Burst } })
      const client = yield* connect(server.port, "/burst")
      for (let i = 0; i < 20; i++) client.ws.send("go")
      yield* waitUntil(() => started >= 2)
      const closedAt = Date.now()
      client.ws.terminate()
      // before the fix the actor fed its 20 jobs to the pool one by one: 8 s after the close
      yield* waitUntil(() => server.connections() === 0, 3_000)
      expect(Date.now() - closedAt).toBeLessThan(3_000)
      // and the pool is free for others at once: a new job runs now, not after the closed one's queue
      const t0 = Date.now()
      expect(yield* WorkerPool.run(Sleep, 1)).toBe(1)
      expect(Date.now() - t0).toBeLessThan(1_500)
    }).pipe(Effect.scoped, Effect.provide(Threads({ maxJobsPerConnection: 1 })))
  )
})
