/** The chat protocol over a real socket: bad input gets an error and the connection survives. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { type ChatServer, startChat } from "./support.ts"

let server: ChatServer
beforeAll(async () => {
  server = await startChat()
})
afterAll(() => server?.stop())

const open = () =>
  new Promise<{ ws: WebSocket; next: () => Promise<Record<string, unknown>> }>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/chat`)
    const inbox: Array<Record<string, unknown>> = []
    const waiters: Array<(m: Record<string, unknown>) => void> = []
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString()) as Record<string, unknown>
      const waiter = waiters.shift()
      if (waiter) waiter(message)
      else inbox.push(message)
    })
    const next = () =>
      new Promise<Record<string, unknown>>((done, fail) => {
        const queued = inbox.shift()
        if (queued) return done(queued)
        const timer = setTimeout(() => fail(new Error("no message within 5 s")), 5_000)
        waiters.push((m) => {
          clearTimeout(timer)
          done(m)
        })
      })
    ws.on("open", () => resolve({ ws, next }))
    ws.on("error", reject)
  })

describe("chat protocol", () => {
  it("answers malformed, invalid, oversized and binary input with an error and keeps the connection", async () => {
    const { ws, next } = await open()
    for (const bad of ["not json", "{}", JSON.stringify({ type: "join", room: "Bad Room!", nick: "x" })]) {
      ws.send(bad)
      expect(await next()).toEqual({ type: "error", message: "not a valid message" })
    }
    ws.send(JSON.stringify({ type: "say", text: "x".repeat(5000) }))
    expect(await next()).toEqual({ type: "error", message: "message longer than 4096 characters" })
    ws.send(Buffer.from([1, 2, 3]))
    expect(await next()).toEqual({ type: "error", message: "send JSON text" })
    ws.send(JSON.stringify({ type: "say", text: "too early" }))
    expect(await next()).toEqual({ type: "error", message: "join a room first" })
    ws.send(JSON.stringify({ type: "join", room: "proto", nick: "tester" }))
    const joined = await next()
    expect(joined.type).toBe("joined")
    expect(joined.members).toEqual([{ id: joined.you, nick: "tester" }])
    ws.send(JSON.stringify({ type: "say", text: "still here" }))
    expect(await next()).toMatchObject({ type: "message", room: "proto", nick: "tester", text: "still here" })
    expect(ws.readyState).toBe(WebSocket.OPEN)
    ws.close()
  })

  it("serves the page at / and 404 elsewhere", async () => {
    const page = await fetch(server.url)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain("Switchboard chat")
    expect((await fetch(`${server.url}app.js`)).status).toBe(200)
    expect((await fetch(`${server.url}nope`)).status).toBe(404)
  })
})
