/**
 * A server that runs out of file descriptors, in a child process with a low
 * `ulimit -n`: by default it turns clients away with 503 before the limit,
 * and when descriptors do run out (EMFILE on accept) it logs once, keeps
 * running, and accepts again once descriptors are free.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { fdLimit, startNodeProcess } from "../../../test-support/process.ts"
import { promise } from "./support.ts"

const fixture = new URL("./fixtures/echoServer.ts", import.meta.url).pathname

const start = (limit: number, env: Record<string, string>) =>
  Effect.acquireRelease(
    promise(() =>
      startNodeProcess(fixture, env, { prefix: fdLimit(limit), readyWhen: /port (\d+)/, name: "the fixture server" })
    ),
    (child) => promise(() => child.stop({ signal: "SIGKILL" }))
  )

type Outcome = { readonly ws: WebSocket } | { readonly status: number } | { readonly failed: string }

/** Opens one connection: the open socket, the HTTP status it was refused with, or how it failed. */
const attempt = (port: number) =>
  new Promise<Outcome>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
    ws.on("open", () => resolve({ ws }))
    ws.on("unexpected-response", (_req, res) => {
      resolve({ status: res.statusCode ?? 0 })
      ws.terminate()
    })
    ws.on("error", (error) => resolve({ failed: error.message }))
  })

const echoOnce = (port: number) =>
  promise(
    () =>
      new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
        ws.on("open", () => ws.send("still here"))
        ws.on("message", (data) => {
          resolve(data.toString())
          ws.close()
        })
        ws.on("error", reject)
      })
  )

const openMany = (port: number, n: number) =>
  promise(async () => {
    const outcomes: Array<Outcome> = []
    // a few at a time, as clients arrive
    for (let i = 0; i < n; i += 20) {
      outcomes.push(...(await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => attempt(port)))))
    }
    return outcomes
  })

const closed = (ws: WebSocket) =>
  new Promise<void>((done) => {
    ws.once("close", () => done())
    ws.close()
  })

const closeAll = (outcomes: ReadonlyArray<Outcome>) =>
  promise(() => Promise.all(outcomes.flatMap((o) => ("ws" in o ? [closed(o.ws)] : []))))

describe("NodeServer at its file-descriptor limit (child process, ulimit -n 256)", () => {
  it.live("turns clients away with 503 below the limit by default, and never hits EMFILE", () =>
    Effect.gen(function* () {
      const child = yield* start(256, {})
      const outcomes = yield* openMany(child.port, 200)
      const open = outcomes.filter((o) => "ws" in o).length
      const refused = outcomes.filter((o) => "status" in o && o.status === 503).length
      // the default: 256 less a reserve of 128
      expect(open).toBe(128)
      expect(refused).toBe(72)
      expect(child.output()).not.toContain("EMFILE")
      yield* closeAll(outcomes)
      expect(yield* echoOnce(child.port)).toBe("still here")
    })
  )

  it.live("survives EMFILE on accept: logs once, and accepts again when descriptors are free", () =>
    Effect.gen(function* () {
      // descriptors held elsewhere in the process, and a maxConnections above what is left
      const child = yield* start(256, { HOLD_FDS: "120", MAX_CONNECTIONS: "100000" })
      const outcomes = yield* openMany(child.port, 200)
      const open = outcomes.filter((o) => "ws" in o).length
      expect(open).toBeGreaterThan(50)
      expect(open).toBeLessThan(200)
      expect(child.exitStatus()).toBeUndefined()
      // held long enough for the server's once-a-second probe to see the exhaustion
      yield* Effect.sleep("1500 millis")
      yield* closeAll(outcomes)
      yield* Effect.sleep("1500 millis")
      expect(yield* echoOnce(child.port)).toBe("still here")
      const log = child.output()
      expect(log.match(/not accepting connections/g)?.length).toBe(1)
      expect(log).toContain("EMFILE")
      expect(log).toContain("accepting connections again")
    })
  )
})
