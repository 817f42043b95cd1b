/**
 * What keeps a server we own alive and observable at its file-descriptor
 * limit: the TCP cap, the accept-failure listener and the descriptor probe.
 */
import * as FS from "node:fs"
import type * as Http from "node:http"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { reserveFor } from "./fdLimit.ts"

export const acceptErrorsTotal = Metric.counter("switchboard_accept_errors_total", {
  description: "Failed TCP accepts (EMFILE, ENFILE, …) and connections dropped at the server's TCP connection cap",
  incremental: true
})

/** The TCP cap of a server we own: the descriptor limit less a smaller reserve than `maxConnections`'s. */
export const tcpCap = (fileLimit: number | undefined): number | undefined =>
  fileLimit === undefined ? undefined : Math.max(1, fileLimit - Math.ceil(reserveFor(fileLimit) / 2))

/**
 * Keeps a server we own alive and observable when it runs out of file
 * descriptors. libuv hides most accept failures (on EMFILE it accepts and
 * closes the waiting connections, so their clients see a hang-up, and Node
 * hears nothing); when it cannot, Node emits them as the server's `error`
 * event, which without a listener kills the process. And Node drops
 * connections beyond `server.maxConnections` silently. So: the `error` event
 * is listened to, `drop` too, and once a second a probe opens /dev/null to
 * see whether descriptors are exhausted. Each is counted in
 * `acceptErrorsTotal` and logged once per episode: when it starts, and when
 * it ends.
 */
export const guardAccepts = (server: Http.Server, cap: number | undefined, fileLimit: number | undefined) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const run = Effect.runForkWith(context)
    if (cap !== undefined) server.maxConnections = cap
    const limit = fileLimit === undefined ? "" : ` (ulimit -n ${fileLimit})`
    const episode = (what: string) => {
      let refused = 0
      return {
        failed: (code: string, message: string) => {
          Metric.withAttributes(acceptErrorsTotal, { code }).updateUnsafe(1, context)
          if (refused++ === 0) run(Effect.logError(`not accepting connections: ${message}`))
        },
        recovered: () => {
          if (refused === 0) return
          run(Effect.logWarning(`accepting connections again: ${what} (${refused} refusal(s) counted)`))
          refused = 0
        }
      }
    }
    const descriptors = episode("file descriptors are available")
    const capped = episode("below the TCP connection cap")
    const onError = (error: Error & { readonly code?: string }) =>
      descriptors.failed(error.code ?? "unknown", `${error.message}${limit}`)
    const onDrop = () =>
      capped.failed("cap", `${server.maxConnections} TCP connections open (the file-descriptor limit less a reserve)`)
    const onConnection = () => capped.recovered()
    const probe = Effect.sync(() => {
      try {
        FS.closeSync(FS.openSync("/dev/null", "r"))
        descriptors.recovered()
      } catch (error) {
        const code = (error as { readonly code?: string }).code
        if (code === "EMFILE" || code === "ENFILE") {
          descriptors.failed(code, `${code}: the process has no file descriptor left${limit}`)
        }
      }
    })
    server.on("error", onError)
    server.on("drop", onDrop)
    server.on("connection", onConnection)
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), probe)))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        server.off("error", onError)
        server.off("drop", onDrop)
        server.off("connection", onConnection)
      })
    )
  })
