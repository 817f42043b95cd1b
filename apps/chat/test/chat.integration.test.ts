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
    const answers: Array<[string, string]> = [
      ["not json", 'not JSON: send an object such as {"type":"say","text":"hi"}'],
      ["[1]", "send a JSON object with a type"],
      ["{}", "missing type: join, say or search"],
      [JSON.stringify({ type: "shout" }), 'unknown type "shout": join, say or search'],
      [
        JSON.stringify({ type: "join", room: "Bad Room!", nick: "x" }),
        "room: 1 to 32 lowercase letters, digits and dashes, not starting with a dash"
      ],
      [JSON.stringify({ type: "join", room: "lobby", nick: "" }), "pick a nickname"],
      [JSON.stringify({ type: "join", room: "lobby", nick: "n".repeat(25) }), "nickname longer than 24 characters"],
      [JSON.stringify({ type: "say", text: "" }), "empty message"],
      [JSON.stringify({ type: "say", text: "t".repeat(2001) }), "message longer than 2000 characters"]
    ]
    for (const [bad, answer] of answers) {
      ws.send(bad)
      expect(await next()).toEqual({ type: "error", message: answer })
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

  it("serves its metrics for Prometheus at /metrics on the same port", async () => {
    const metrics = await fetch(`${server.url}metrics`)
    expect(metrics.status).toBe(200)
    const body = await metrics.text()
    // the tests above opened /chat connections on this server
    expect(body).toMatch(/^switchboard_connections_opened_total\{route="\/chat"\} [1-9]/m)
    expect(body).toContain("# TYPE switchboard_messages_received_total counter")
    expect(body).toContain("# TYPE switchboard_job_threads gauge")
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

describe("chat search", () => {
  // the same server twice: searches on one worker thread, and inline on the event loop. A room may
  // hold 3,000 messages, so that the byte budget (8 MiB) is what bounds the big room below
  const env = { RATE_LIMIT: "0", HISTORY_MESSAGES: "3000" }
  let threads: ChatServer
  let inline: ChatServer
  beforeAll(async () => {
    ;[threads, inline] = await Promise.all([startChat({ ...env, WORKERS: "1" }), startChat({ ...env, WORKERS: "0" })])
  })
  afterAll(() => Promise.all([threads?.stop(), inline?.stop()]))

  const search = (query: string) => JSON.stringify({ type: "search", query })
  type Hit = { readonly nick: string; readonly text: string; readonly score: number }
  const hitsOf = (results: Received) =>
    (results.results as ReadonlyArray<Hit>).map(({ nick, text, score }) => ({ nick, text, score }))

  /** Joins `room` and says `texts`, a batch at a time, awaiting each echo. */
  const fill = async (client: Awaited<ReturnType<typeof open>>, room: string, texts: ReadonlyArray<string>) => {
    client.ws.send(join(room, "writer"))
    expect(await client.next()).toMatchObject({ type: "joined", room })
    for (let start = 0; start < texts.length; start += 100) {
      const batch = texts.slice(start, start + 100)
      for (const text of batch) client.ws.send(say(text))
      for (const text of batch) expect(await client.next()).toMatchObject({ type: "message", text })
    }
  }

  // 2,100 messages of 2,000 characters each, every one with "needle" (so every one is segmented), every
  // third with "haystack" too: the room keeps the last 2,000 or so, what its share of 8 MiB holds
  const big = Array.from({ length: 2100 }, (_, i) =>
    `${i} needle ${i % 3 === 0 ? "haystack " : ""}`.padEnd(2000, " lorem ipsum dolor sit amet")
  )

  for (const [name, server] of [
    ["WORKERS=1", () => threads],
    ["WORKERS=0", () => inline]
  ] as const) {
    it(`returns the matching messages of the room, ranked by terms matched, then newest first (${name})`, async () => {
      const client = await open(server().port)
      await fill(client, "search-small", ["Red apples", "green APPLE pie", "nothing", "red apple pie", "Straße"])
      client.ws.send(search("apple RED pie"))
      expect(await client.next()).toEqual({
        type: "results",
        room: "search-small",
        query: "apple RED pie",
        total: 3,
        results: [
          expect.objectContaining({ nick: "writer", text: "red apple pie", score: 3 }),
          expect.objectContaining({ nick: "writer", text: "green APPLE pie", score: 2 }),
          expect.objectContaining({ nick: "writer", text: "Red apples", score: 2 })
        ]
      })
      client.ws.send(search("STRASSE"))
      expect(hitsOf(await client.next())).toEqual([{ nick: "writer", text: "Straße", score: 1 }])
      client.ws.send(search("?!"))
      expect(await client.next()).toEqual({ type: "error", message: "search for at least one word" })
      client.ws.send(search("x".repeat(201)))
      expect(await client.next()).toEqual({ type: "error", message: "search longer than 200 characters" })
      client.ws.close()
    })
  }

  it("answers a search before joining with an error", async () => {
    const client = await open(threads.port)
    client.ws.send(search("anything"))
    expect(await client.next()).toEqual({ type: "error", message: "join a room first" })
    client.ws.close()
  })

  it("keeps answering chat messages while a search of a full history runs on a worker, one search at a time", async () => {
    const client = await open(threads.port)
    await fill(client, "search-big", big)
    const started = performance.now()
    client.ws.send(search("needle haystack"))
    client.ws.send(search("needle")) // a second search while the first runs: busy
    expect(await client.next()).toEqual({ type: "error", message: "search busy, try again" })
    // chat round trips while the search runs: the first is answered before the results, and so on
    let answered = 0
    let results: Received | undefined
    while (results === undefined) {
      client.ws.send(say(`ping ${answered}`))
      const received = await client.next()
      if (received.type === "results") {
        results = received
        expect(await client.next()).toMatchObject({ type: "message", text: `ping ${answered}` })
      } else {
        expect(received).toMatchObject({ type: "message", text: `ping ${answered}` })
        answered++
      }
    }
    const searchMs = performance.now() - started
    expect(answered).toBeGreaterThanOrEqual(1)
    expect(results.total).toBeGreaterThan(1900)
    const hits = hitsOf(results)
    expect(hits).toHaveLength(20)
    // every third message has both terms: the newest twenty of those, newest first
    expect(hits.map((hit) => hit.text.split(" ")[0])).toEqual(
      Array.from({ length: 20 }, (_, i) => String(2097 - 3 * i))
    )
    expect(hits.every((hit) => hit.score === 2)).toBe(true)
    console.info(
      `search of ${results.total} messages: ${searchMs.toFixed(0)} ms, ${answered} chat round trips meanwhile`
    )
    client.ws.close()
  }, 60_000)

  it("gives the same answer inline (WORKERS=0) as on a worker thread", async () => {
    const answers: Array<ReadonlyArray<Hit>> = []
    for (const server of [threads, inline]) {
      const client = await open(server.port)
      await fill(client, "search-same", big.slice(0, 300))
      client.ws.send(search("haystack NEEDLE lorem"))
      const results = await client.next()
      expect(results).toMatchObject({ type: "results", total: 300 })
      answers.push(hitsOf(results))
      client.ws.close()
    }
    expect(answers[0]).toHaveLength(20)
    expect(answers[1]).toEqual(answers[0])
  }, 60_000)
})

describe("chat on two reactors (REACTORS=2)", () => {
  let two: ChatServer
  beforeAll(async () => {
    two = await startChat({ REACTORS: "2" })
  })
  afterAll(() => two?.stop())

  it("carries messages and presence between people on different reactors", async () => {
    // members are `<hub node>/<connection>`: join until two people are on different reactors (hubs)
    const nodeOf = (you: unknown) => String(you).split("/")[0]
    const people: Array<{ ws: WebSocket; next: () => Promise<Received>; you: string }> = []
    for (let i = 0; i < 100 && new Set(people.map((p) => nodeOf(p.you))).size < 2; i++) {
      const person = await open(two.port)
      person.ws.send(join("across", `p${i}`))
      const joined = await person.next()
      if (people.some((p) => nodeOf(p.you) === nodeOf(joined.you))) person.ws.close()
      else people.push({ ...person, you: String(joined.you) })
    }
    expect(people).toHaveLength(2)
    const [first, second] = people as [(typeof people)[0], (typeof people)[0]]
    // those who joined and left in between were announced too: skip to the second's join
    let event: Received
    do event = await first.next()
    while (!(event.type === "presence" && event.event === "joined" && event.id === second.you))
    second.ws.send(say("across reactors"))
    // presence now spans reactors: people who left on either reactor may still be announced first
    const nextMessage = async (person: (typeof people)[0]) => {
      let received: Received
      do received = await person.next()
      while (received.type === "presence")
      return received
    }
    const [toFirst, toSecond] = await Promise.all([nextMessage(first), nextMessage(second)])
    expect(toFirst).toMatchObject({ type: "message", from: second.you, text: "across reactors" })
    expect(toSecond).toMatchObject({ type: "message", from: second.you, text: "across reactors" })
    second.ws.close()
    let left: Received
    do left = await first.next()
    while (!(left.type === "presence" && left.id === second.you))
    expect(left).toMatchObject({ type: "presence", event: "left", id: second.you })
    first.ws.close()
  })
})
