/**
 * Every core of one machine: several reactors on one port. The app's main
 * module runs once per reactor, each in its own worker thread with its own
 * event loop, `NodeServer` and hub; each reactor's server listens on the
 * same port with `SO_REUSEPORT`, and the kernel spreads new connections
 * among them. Hub traffic crosses reactors through `layerBackplane` (a
 * `BroadcastChannel` between the threads: no server needed).
 *
 * How an app starts N times: its `main.ts` ends with
 * `NodeReactors.runMain(App)` instead of `NodeRuntime.runMain(Layer.launch(App))`.
 * Started as usual, the main thread reads `REACTORS` (default 1):
 *
 * - 1: the app runs on the main thread, exactly as `NodeRuntime.runMain`
 *   would run it (no thread, no overhead).
 * - N > 1: the main thread becomes the supervisor (it serves nothing): it
 *   starts the same module N times as reactor threads, the first one
 *   alone so that a `port: 0` app shares the port it got, then the others.
 *   In a reactor thread, `runMain` builds the app's layer and runs it until
 *   the supervisor asks it to stop.
 *
 * What is per reactor: everything in memory (the connections, the hub's
 * subscribers, a behaviour's module-level state such as the chat history,
 * each `WorkerPool`, `maxConnections` and the per-IP limits). What is
 * shared: the port, and what goes through the backplane (broadcasts and
 * presence events).
 *
 * Supervision: a reactor that dies (a defect that escaped, `process.exit`
 * in a behaviour, an out-of-memory of its heap) is logged and restarted
 * after a backoff (100 ms, doubling to 5 s while it keeps dying within
 * 10 s of its start); its clients lose their connection (1006) and
 * reconnect to the others, which keep serving. Shutdown (SIGINT/SIGTERM on
 * the process, or the supervisor's scope closing) asks every reactor to
 * stop: each closes its clients with 1001 within its own `shutdownTimeout`;
 * a reactor still running a second after that is terminated. No reactor
 * thread outlives the scope. A process stopped by a signal this way exits
 * with 0 (Effect's own `runMain` uses 130), a failed one with 1.
 *
 * @since 0.1.0
 */
import { type MessagePort, parentPort, Worker } from "node:worker_threads"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Backplane, ServerError } from "@switchboard/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as ReactorThread from "./internal/reactorThread.ts"

/**
 * Options of the supervisor `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Reactor threads, 1 to 256. */
  readonly reactors: number
  /** The module every reactor thread runs: the app's main module, which calls `runMain`. */
  readonly entry: string | URL
  /** `argv` of the reactor threads (after the script). Default: the process's. */
  readonly argv?: ReadonlyArray<string>
}

/**
 * The supervisor of the reactor threads.
 *
 * @since 0.1.0
 * @category services
 */
export class NodeReactors extends Context.Service<
  NodeReactors,
  {
    /** The port every reactor listens on. */
    readonly port: number
    readonly host: string
    readonly reactors: number
    /** The thread id of each reactor (undefined while one is being restarted). */
    readonly threadIds: () => ReadonlyArray<number | undefined>
    /** Reactors restarted since the start. */
    readonly restarts: () => number
  }
>()("@switchboard/node/NodeReactors") {}

/**
 * Reactor threads restarted after they ended unexpectedly.
 *
 * @since 0.1.0
 * @category metrics
 */
export const restartsTotal = Metric.counter("switchboard_reactor_restarts_total", {
  description: "Reactor threads that ended unexpectedly and were started again",
  incremental: true
})

/**
 * Reactor threads listening now.
 *
 * @since 0.1.0
 * @category metrics
 */
export const reactorsListening = Metric.gauge("switchboard_reactors_listening", {
  description: "Reactor threads of this process that are listening"
})

/**
 * This thread's reactor index (0 to N − 1) in a reactor thread, undefined
 * anywhere else (the main thread of a one-reactor app included).
 *
 * @since 0.1.0
 * @category getters
 */
export const index: number | undefined = ReactorThread.current?.index

/**
 * The backplane for an app that may run as several reactors: between the
 * reactor threads in a reactor thread (`Backplane.layerThreads`), within
 * the thread otherwise (`Backplane.layerMemory`).
 *
 * @example
 * ```ts
 * import * as Layer from "effect/Layer"
 * import { Hub } from "@switchboard/core"
 * import { NodeReactors } from "@switchboard/node"
 *
 * const HubLive = Hub.layer().pipe(Layer.provide(NodeReactors.layerBackplane))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerBackplane: Layer.Layer<Backplane.Backplane> =
  // the default options are valid: the layer cannot fail
  ReactorThread.current === undefined ? Backplane.layerMemory : Layer.orDie(Backplane.layerThreads())

/** How long a reactor may still run after its own `shutdownTimeout` before it is terminated. */
const shutdownGrace = 1_000
const restartBackoff = { first: 100, max: 5_000, stableAfter: 10_000 }

const invalid = (message: string) =>
  new ServerError.ServerError({ reason: new ServerError.InvalidOptions({ message }) })

interface Slot {
  readonly index: number
  worker: Worker | undefined
  /** Done when this slot's current thread has exited (with its exit code). */
  exited: Deferred.Deferred<number>
  startedAt: number
  delay: number
}

/**
 * Starts `options.reactors` threads running `options.entry`, and keeps
 * them running until the scope closes. The layer is built when every
 * reactor is listening; it fails with `ReactorFailed` if one ends first.
 *
 * Most apps use `runMain`, which builds this layer when `REACTORS` > 1.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<NodeReactors, ServerError.ServerError> =>
  Layer.effect(NodeReactors)(
    Effect.gen(function* () {
      const count = options.reactors
      if (!Number.isInteger(count) || count < 1 || count > 256) {
        return yield* invalid(`reactors: must be an integer from 1 to 256, got ${count}`)
      }
      const context = yield* Effect.context<never>()
      const scope = yield* Effect.scope
      const slots: Array<Slot> = Array.from({ length: count }, (_, index) => ({
        index,
        worker: undefined,
        exited: Deferred.makeUnsafe<number>(),
        startedAt: 0,
        delay: restartBackoff.first
      }))
      const restarting = new Set<Fiber.Fiber<void>>()
      let closing = false
      let port: number | undefined
      let host = ""
      let shutdownTimeout = 5_000
      let restarts = 0
      const argv = options.argv ?? process.argv.slice(2)

      /** Starts one reactor thread; succeeds when it is listening. */
      const spawn = (slot: Slot) =>
        Effect.callback<void, ServerError.ServerError>((resume) => {
          const exited = Deferred.makeUnsafe<number>()
          slot.exited = exited
          slot.startedAt = Date.now()
          const data: ReactorThread.WorkerData = {
            switchboardReactor: { index: slot.index, reactors: count, port }
          }
          const worker = new Worker(options.entry, {
            workerData: data,
            argv: [...argv],
            name: `switchboard-reactor-${slot.index}`
          })
          slot.worker = worker
          let listening = false
          let failure: string | undefined
          worker.on("message", (message: ReactorThread.ToSupervisor) => {
            if (message._tag === "Failed") failure = message.message
            else if (message._tag === "Listening" && !listening) {
              listening = true
              port ??= message.port
              host = message.host
              shutdownTimeout = Math.max(shutdownTimeout, message.shutdownTimeout)
              reactorsListening.modifyUnsafe(1, context)
              resume(Effect.void)
            }
          })
          worker.on("error", (error) => {
            failure ??= error.stack ?? String(error)
          })
          worker.on("exit", (code) => {
            if (slot.worker === worker) slot.worker = undefined
            Deferred.doneUnsafe(exited, Exit.succeed(code))
            if (!listening) {
              const why = failure ?? `the thread exited with code ${code}`
              resume(
                Effect.fail(
                  new ServerError.ServerError({
                    reason: new ServerError.ReactorFailed({
                      index: slot.index,
                      message: `reactor ${slot.index} ended before listening: ${why}`
                    })
                  })
                )
              )
              return
            }
            reactorsListening.modifyUnsafe(-1, context)
            if (!closing) died(slot, code, failure)
          })
          // interrupted before it listened (shutdown while starting): it must not outlive the scope
          return Effect.promise(() => worker.terminate())
        })

      /** A listening reactor ended while the server runs: log it, and start it again after a backoff. */
      const died = (slot: Slot, code: number, failure: string | undefined) => {
        const ranFor = Date.now() - slot.startedAt
        slot.delay = ranFor >= restartBackoff.stableAfter ? restartBackoff.first : slot.delay
        const delay = slot.delay
        slot.delay = Math.min(slot.delay * 2, restartBackoff.max)
        const restart: Effect.Effect<void> = Effect.logError(
          `reactor ${slot.index} ended (exit code ${code}) after ${ranFor} ms; restarting it in ${delay} ms`,
          ...(failure === undefined ? [] : [failure])
        ).pipe(
          Effect.andThen(Effect.sleep(delay)),
          Effect.andThen(Effect.suspend(() => spawn(slot))),
          Effect.tap(() =>
            Effect.sync(() => {
              restarts++
              restartsTotal.updateUnsafe(1, context)
            })
          ),
          Effect.andThen(Effect.logInfo(`reactor ${slot.index} restarted`)),
          Effect.catch((error) =>
            // it died again before listening: that is one more death, with a longer backoff
            Effect.sync(() => {
              if (!closing) died(slot, -1, error.message)
            })
          )
        )
        const fiber = Effect.runForkWith(context)(restart)
        restarting.add(fiber)
        fiber.addObserver(() => restarting.delete(fiber))
      }

      const shutdown = Effect.gen(function* () {
        closing = true
        const started = Date.now()
        yield* Fiber.interruptAll(restarting)
        const live = slots.filter((slot) => slot.worker !== undefined)
        if (live.length === 0) return
        for (const slot of live) slot.worker?.postMessage({ _tag: "Shutdown" } satisfies ReactorThread.ToReactor)
        yield* Effect.forEach(live, (slot) => Deferred.await(slot.exited), { discard: true }).pipe(
          Effect.timeoutOption(shutdownTimeout + shutdownGrace)
        )
        const stuck = slots.filter((slot) => slot.worker !== undefined)
        yield* Effect.forEach(stuck, (slot) => Effect.promise(() => slot.worker?.terminate() ?? Promise.resolve(0)), {
          concurrency: "unbounded",
          discard: true
        })
        yield* Effect.logInfo(
          `shutdown: ${live.length} reactor(s) stopped in ${Date.now() - started} ms` +
            (stuck.length > 0 ? `, ${stuck.length} terminated after ${shutdownTimeout + shutdownGrace} ms` : "")
        )
      })
      yield* Scope.addFinalizer(scope, shutdown)

      // the first alone: the port it binds (port 0 too) is the one the others share
      const [first, ...rest] = slots
      yield* spawn(first!)
      yield* Effect.forEach(rest, spawn, { concurrency: "unbounded", discard: true })
      yield* Effect.logInfo(`switchboard: ${count} reactors listening on ws://${host}:${port}`)
      return NodeReactors.of({
        port: port ?? 0,
        host,
        reactors: count,
        threadIds: () => slots.map((slot) => slot.worker?.threadId),
        restarts: () => restarts
      })
    })
  )

/**
 * Runs the app's layer as one reactor in this reactor thread, until the
 * supervisor asks it to stop.
 */
const runReactor = <ROut, E>(app: Layer.Layer<ROut, E>, port: MessagePort): void => {
  const fiber = Effect.runFork(Layer.launch(app))
  const onMessage = (message: ReactorThread.ToReactor) => {
    if (message._tag === "Shutdown") fiber.interruptUnsafe()
  }
  port.on("message", onMessage)
  fiber.addObserver((exit) => {
    // nothing else of ours keeps the thread alive: it ends once the app's own handles are gone
    port.off("message", onMessage)
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
      ReactorThread.tell({ _tag: "Failed", message: Cause.pretty(exit.cause) })
      process.exitCode = 1
    }
  })
}

/**
 * Runs an app as one reactor or several, as `REACTORS` (or
 * `options.reactors`) says: the `main.ts` of an app that can use every core
 * ends with it instead of `NodeRuntime.runMain(Layer.launch(App))`. See the
 * module's documentation for what runs where.
 *
 * @example
 * ```ts
 * import * as Layer from "effect/Layer"
 * import { Behavior, Hub } from "@switchboard/core"
 * import { NodeReactors, NodeServer } from "@switchboard/node"
 *
 * const Chat = Behavior.make({
 *   init: (conn) => Hub.subscribe("lobby", conn),
 *   onMessage: (_conn, message) => Hub.broadcast("lobby", message)
 * })
 *
 * const App = NodeServer.layer({ port: 8080, routes: { "/chat": Chat } }).pipe(
 *   Layer.provide(Hub.layer()),
 *   Layer.provide(NodeReactors.layerBackplane)
 * )
 *
 * // REACTORS=2 node main.ts: two reactors on port 8080, broadcasts crossing between them
 * NodeReactors.runMain(App)
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const runMain = <ROut, E>(
  app: Layer.Layer<ROut, E>,
  options: { readonly reactors?: number; readonly entry?: string | URL } = {}
): void => {
  if (ReactorThread.current !== undefined && parentPort !== null) {
    runReactor(app, parentPort)
    return
  }
  const program = Effect.gen(function* () {
    // Effect's Config (and the Schema under it) is loaded only to read REACTORS
    const reactors =
      options.reactors ??
      (yield* Effect.flatMap(
        Effect.promise(() => import("effect/Config")),
        (Config) => Config.Int("REACTORS").pipe(Config.withDefault(1))
      ))
    if (reactors === 1) return yield* Layer.launch(app)
    const entry = options.entry ?? process.argv[1]
    if (entry === undefined) return yield* invalid("NodeReactors.runMain: no entry module (process.argv[1] is empty)")
    return yield* Layer.launch(layer({ reactors, entry }))
  })
  NodeRuntime.runMain(program, { teardown: gracefulTeardown })
}

/**
 * Exit codes of `runMain`: 0 for a server stopped by SIGINT or SIGTERM (a
 * graceful stop, its connections drained, is a success to a process
 * manager), Effect's defaults otherwise (1 for a failure).
 */
const gracefulTeardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
