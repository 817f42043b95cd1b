/**
 * The chat protocol over a real socket: bad input gets an error and the
 * connection survives, nicks arrive clean and distinguishable, and the
 * history stays within its bounds.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { type ChatServer, startChat } from "./support.ts"

let server: ChatServer
beforeAll(async () => {
  server = await startChat()
})
afterAll(() => server?.stop())

type Received = Record<string, unknown>
const open = (port = server.port) =>
  new Promise<{ ws: WebSocket; next: () => Promise<Received> }>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`)
    const inbox: Array<Received> = []
    const waiters: Array<(m: Received) => void> = []
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString()) as Received
      const waiter = waiters.shift()
      if (waiter) waiter(message)
      else inbox.push(message)
    })
    const next = () =>
      new Promise<Received>((done, fail) => {
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

const join = (room: string, nick: string) => JSON.stringify({ type: "join", room, nick })
const say = (text: string) => JSON.stringify({ type: "say", text })

describe("chat limits", () => {
  it("drops what one client sends beyond 20 messages a second (40 at once) with one notice, and keeps it", async () => {
    const { ws, next } = await open()
    const watcher = await open()
    ws.send(JSON.stringify({ type: "join", room: "flood", nick: "flooder" }))
    expect((await next()).type).toBe("joined")
    watcher.ws.send(JSON.stringify({ type: "join", room: "flood", nick: "watcher" }))
    expect((await watcher.next()).type).toBe("joined")
    expect(await next()).toMatchObject({ type: "presence", event: "joined", nick: "watcher" })
    // the join took one token; 100 says at once
    for (let i = 0; i < 100; i++) ws.send(JSON.stringify({ type: "say", text: `m${i}` }))
    ws.send(JSON.stringify({ type: "join", room: "flood", nick: "flooder" }))
    const seen: Array<Received> = []
    // the watcher gets the messages that passed; the flooder gets them too, and one notice
    for (let i = 0; i < 39; i++) seen.push(await watcher.next())
    expect(seen.map((m) => m.text)).toEqual(Array.from({ length: 39 }, (_, i) => `m${i}`))
    const flooder: Array<Received> = []
    for (let i = 0; i < 40; i++) flooder.push(await next())
    expect(flooder.filter((m) => m.type === "error")).toEqual([
      { type: "error", message: "sending too fast: messages are being dropped" }
    ])
    // after a second the bucket has refilled: the connection still works
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    ws.send(JSON.stringify({ type: "say", text: "later" }))
    expect(await watcher.next()).toMatchObject({ type: "message", text: "later" })
    ws.close()
    watcher.ws.close()
  })

  it("re-joining the room it is in tells the room nothing (and a new nick once)", async () => {
    const { ws, next } = await open()
    const watcher = await open()
    watcher.ws.send(JSON.stringify({ type: "join", room: "rejoin", nick: "watcher" }))
    expect((await watcher.next()).type).toBe("joined")
    ws.send(JSON.stringify({ type: "join", room: "rejoin", nick: "ada" }))
    expect((await next()).type).toBe("joined")
    expect(await watcher.next()).toMatchObject({ type: "presence", event: "joined", nick: "ada" })
    for (let i = 0; i < 10; i++) {
      ws.send(JSON.stringify({ type: "join", room: "rejoin", nick: "ada" }))
      expect((await next()).type).toBe("joined")
    }
    ws.send(JSON.stringify({ type: "join", room: "rejoin", nick: "grace" }))
    expect((await next()).type).toBe("joined")
    ws.send(JSON.stringify({ type: "say", text: "hi" }))
    // no Left/Joined for the ten re-joins: the next thing the watcher hears is the nick change, then the message
    expect(await watcher.next()).toMatchObject({ type: "presence", event: "joined", nick: "grace" })
    expect(await watcher.next()).toMatchObject({ type: "message", nick: "grace", text: "hi" })
    ws.close()
    watcher.ws.close()
  })
})

describe("chat nicks", () => {
  it("delivers a nick without bidi overrides and control characters, and messages without bidi overrides", async () => {
    const spoofer = await open()
    const watcher = await open()
    spoofer.ws.send(join("nicks", "\u202Eadmin\u0007"))
    const joined = await spoofer.next()
    expect(joined.members).toEqual([{ id: joined.you, nick: "admin" }])
    watcher.ws.send(join("nicks", "watcher"))
    const seen = await watcher.next()
    expect(seen.members).toEqual([
      { id: joined.you, nick: "admin" },
      { id: seen.you, nick: "watcher" }
    ])
    expect(await spoofer.next()).toMatchObject({ type: "presence", event: "joined", id: seen.you, nick: "watcher" })
    spoofer.ws.send(say("\u202Ehi\u2066 there\u0007\nbye"))
    expect(await watcher.next()).toMatchObject({
      type: "message",
      from: joined.you,
      nick: "admin",
      text: "hi there\nbye"
    })
    spoofer.ws.send(say("\u202E\u0007"))
    expect(await spoofer.next()).toMatchObject({ type: "message", text: "hi there\nbye" })
    expect(await spoofer.next()).toEqual({ type: "error", message: "empty message" })
    spoofer.ws.close()
    watcher.ws.close()
  })

  it("lets two members share a nick and tells them apart by member id", async () => {
    const first = await open()
    const second = await open()
    first.ws.send(join("twins", "twin"))
    const one = await first.next()
    second.ws.send(join("twins", "twin"))
    const two = await second.next()
    expect(one.you).not.toEqual(two.you)
    expect(two.members).toEqual([
      { id: one.you, nick: "twin" },
      { id: two.you, nick: "twin" }
    ])
    expect(await first.next()).toMatchObject({ type: "presence", event: "joined", id: two.you, nick: "twin" })
    first.ws.send(say("from one"))
    second.ws.send(say("from two"))
    const received = [await first.next(), await first.next()]
    expect(received.map(({ from, nick, text }) => ({ from, nick, text }))).toEqual(
      expect.arrayContaining([
        { from: one.you, nick: "twin", text: "from one" },
        { from: two.you, nick: "twin", text: "from two" }
      ])
    )
    first.ws.close()
    second.ws.close()
  })
})

describe("chat history bounds", () => {
  let bounded: ChatServer
  beforeAll(async () => {
    // without the rate limit: one client fills thousands of rooms
    bounded = await startChat({ HISTORY_ROOMS: "10", HISTORY_MESSAGES: "3", HISTORY_BYTES: "48 KiB", RATE_LIMIT: "0" })
  })
  afterAll(() => bounded?.stop())

  const historyOf = async (client: Awaited<ReturnType<typeof open>>, room: string) => {
    client.ws.send(join(room, "reader"))
    const joined = await client.next()
    expect(joined).toMatchObject({ type: "joined", room })
    return (joined.history as ReadonlyArray<{ text: string }>).map((entry) => entry.text)
  }

  it("keeps the last HISTORY_MESSAGES of a room, and stores nothing for rooms only joined", async () => {
    const client = await open(bounded.port)
    client.ws.send(join("chatty", "talker"))
    await client.next()
    for (const text of ["1", "2", "3", "4", "5"]) {
      client.ws.send(say(text))
      expect(await client.next()).toMatchObject({ type: "message", text })
    }
    for (let i = 0; i < 1000; i++) expect(await historyOf(client, `quiet-${i}`)).toEqual([])
    expect(await historyOf(client, "chatty")).toEqual(["3", "4", "5"])
    client.ws.close()
  })

  it("keeps only the HISTORY_ROOMS most recently used rooms when 5,000 rooms each get a message", async () => {
    const client = await open(bounded.port)
    const rooms = 5000
    const batch = 100
    for (let start = 0; start < rooms; start += batch) {
      // a batch at a time: join a room, say something in it, next room
      for (let i = start; i < start + batch; i++) {
        client.ws.send(join(`r${i}`, "filler"))
        client.ws.send(say(`m${i}`))
      }
      for (let i = start; i < start + batch; i++) {
        expect(await client.next()).toMatchObject({ type: "joined", room: `r${i}` })
        expect(await client.next()).toMatchObject({ type: "message", room: `r${i}`, text: `m${i}` })
      }
    }
    expect(await historyOf(client, "chatty")).toEqual([])
    expect(await historyOf(client, "r0")).toEqual([])
    expect(await historyOf(client, `r${rooms - 11}`)).toEqual([])
    for (let i = rooms - 10; i < rooms; i++) expect(await historyOf(client, `r${i}`)).toEqual([`m${i}`])
    client.ws.close()
  })

  it("drops the least recently used rooms to stay within HISTORY_BYTES", async () => {
    // each room of three 2,000-character messages is charged about 13 KB: three fit in 48 KiB, four do not
    const client = await open(bounded.port)
    const long = (room: number, n: number) => `${room}.${n}`.padEnd(2000, "x")
    for (let room = 0; room < 8; room++) {
      client.ws.send(join(`big-${room}`, "writer"))
      await client.next()
      for (let n = 0; n < 3; n++) {
        client.ws.send(say(long(room, n)))
        expect(await client.next()).toMatchObject({ type: "message", text: long(room, n) })
      }
    }
    for (let room = 0; room < 5; room++) expect(await historyOf(client, `big-${room}`)).toEqual([])
    for (let room = 5; room < 8; room++) {
      expect(await historyOf(client, `big-${room}`)).toEqual([long(room, 0), long(room, 1), long(room, 2)])
    }
    client.ws.close()
  })
})
