/**
 * The dashboard app over real sockets, in its own process: the HTTP API and
 * the WebSocket route on one port, viewer tokens checked per route, ticks
 * pushed from a timer, announcements from the API reaching every viewer,
 * Prometheus metrics, and a graceful stop (restarting, 1001, exit 0).
 */
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"

const ROOT = Path.resolve(import.meta.dirname, "../../..")
let app: NodeProcess
let base = ""

beforeAll(async () => {
  app = await startNodeProcess(
    "apps/dashboard/src/main.ts",
    { TICK_INTERVAL: "100 millis" },
    {
      cwd: ROOT,
      name: "the dashboard app"
    }
  )
  base = `127.0.0.1:${app.port}`
})

afterAll(async () => {
  await app?.stop()
})

interface Viewer {
  readonly ws: WebSocket
  readonly messages: Array<{ readonly type: string; readonly [key: string]: unknown }>
  readonly closed: Promise<number>
  /** Resolves with the first message (from now on) that `matches`. */
  readonly next: (matches: (message: Viewer["messages"][number]) => boolean) => Promise<Viewer["messages"][number]>
}

const watch = (token: string) =>
  new Promise<Viewer>((resolve, reject) => {
    const ws = new WebSocket(`ws://${base}/live?token=${token}`)
    const messages: Viewer["messages"] = []
    const waiters: Array<() => void> = []
    ws.on("message", (data) => {
      messages.push(JSON.parse(String(data)))
      for (const waiter of waiters.splice(0)) waiter()
    })
    const closed = new Promise<number>((done) => ws.on("close", (code) => done(code)))
    const next: Viewer["next"] = (matches) => {
      const from = messages.length
      return new Promise((done, fail) => {
        const timer = setTimeout(() => fail(new Error("no such message within 3 s")), 3_000)
        const look = () => {
          const found = messages.slice(from).find(matches)
          if (found !== undefined) {
            clearTimeout(timer)
            done(found)
          } else waiters.push(look)
        }
        look()
      })
    }
    ws.once("open", () => resolve({ ws, messages, closed, next }))
    ws.once("unexpected-response", (_req, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.once("error", reject)
  })

describe("the dashboard app", () => {
  it("serves its HTTP API and the live route on one port", async () => {
    const health = await fetch(`http://${base}/health`)
    expect(health.status).toBe(200)
    expect(await health.text()).toBe("ok")
  })

  it("admits viewers with a token only, welcomes them by name, and pushes ticks to them", async () => {
    await expect(watch("")).rejects.toThrow("status 401")
    await expect(watch("forged")).rejects.toThrow("status 401")
    const ada = await watch("ada-token")
    expect(ada.messages[0] ?? (await ada.next(() => true))).toEqual({ type: "welcome", name: "ada" })
    const bob = await watch("bob-token")
    await bob.next((m) => m.type === "welcome" && m.name === "bob")
    // both see a tick that counts both of them
    await ada.next((m) => m.type === "tick" && m.viewers === 2)
    await bob.next((m) => m.type === "tick" && m.viewers === 2)

    // the API's announcement reaches every viewer; without the admin token, nothing is sent
    expect((await fetch(`http://${base}/api/announce`, { method: "POST", body: "nope" })).status).toBe(401)
    const announced = await fetch(`http://${base}/api/announce`, {
      method: "POST",
      headers: { authorization: "Bearer admin-token" },
      body: "deploy at noon"
    })
    expect(announced.status).toBe(204)
    for (const viewer of [ada, bob]) {
      await viewer.next((m) => m.type === "announcement" && m.text === "deploy at noon")
    }
    expect([...ada.messages, ...bob.messages].filter((m) => m.type === "announcement")).toHaveLength(2)

    const metrics = await (await fetch(`http://${base}/metrics`)).text()
    expect(metrics).toMatch(/^switchboard_connections_open\{route="\/live"\} 2$/m)
    expect(metrics).toMatch(/^dashboard_ticks_total [1-9]\d*$/m)
    expect(metrics).toMatch(/^switchboard_upgrades_rejected_total\{reason="rejected"\} 2$/m)
    ada.ws.close()
    bob.ws.close()
  })

  it("on SIGTERM tells the viewers it is restarting, closes them with 1001 and exits 0", async () => {
    const viewer = await watch("ada-token")
    await viewer.next((m) => m.type === "tick")
    expect(await app.stop()).toBe("stopped")
    expect(await viewer.closed).toBe(1001)
    expect(viewer.messages.at(-1)).toEqual({ type: "restarting" })
    expect(app.exitStatus()).toEqual({ code: 0, signal: null })
  })
})
