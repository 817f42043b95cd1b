/**
 * Two chat servers on different ports over one real Redis (BACKPLANE=redis),
 * a headless Chromium page on each: messages cross, both member lists show
 * both people, someone joining later on the other server sees the history,
 * and when one server is killed its member leaves the other's list within
 * the presence bound (PRESENCE_TIMEOUT plus a heartbeat).
 */
import type { Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RedisServer, startRedisServer } from "../../../test-support/redis.ts"
import { type ChatServer, joinAt, launchChromium, members, messages, notices, say, startChat } from "./support.ts"

let redis: RedisServer
let a: ChatServer
let b: ChatServer
let browser: Browser

/** 2 s of silence and a server's members are gone; heartbeats every second. */
const presenceTimeoutMs = 2_000
// the chat app's heartbeat for this timeout: min(1 s, timeout / 2)
const heartbeatMs = 1_000

beforeAll(async () => {
  redis = await startRedisServer()
  const env = {
    BACKPLANE: "redis",
    REDIS_URL: redis.url,
    PRESENCE_TIMEOUT: `${presenceTimeoutMs} millis`,
    WORKERS: "0"
  }
  ;[a, b, browser] = await Promise.all([startChat(env), startChat(env), launchChromium()])
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await Promise.all([a?.stop(), b?.stop()])
  await redis?.stop()
})

const sorted = async (list: Promise<Array<string>>) => (await list).sort()

describe("chat on two servers over Redis", () => {
  it("shares rooms, presence and history, and drops a killed server's members", async () => {
    expect(a.port).not.toBe(b.port)
    const ada = await browser.newPage()
    const bob = await browser.newPage()
    await joinAt(ada, a.url, "ada", "lobby")
    await joinAt(bob, b.url, "bob", "lobby")

    // both lists show both, whichever server each is on
    await expect.poll(() => sorted(members(ada))).toEqual(["ada", "bob"])
    await expect.poll(() => sorted(members(bob))).toEqual(["ada", "bob"])
    await expect.poll(() => notices(ada)).toContain("bob joined")

    await say(ada, "hello from server A")
    await expect.poll(async () => (await messages(bob)).some((m) => m.includes("hello from server A"))).toBe(true)
    await say(bob, "and back from B")
    await expect.poll(async () => (await messages(ada)).some((m) => m.includes("and back from B"))).toBe(true)
    // each message once, on both pages
    for (const page of [ada, bob]) {
      const shown = await messages(page)
      expect(shown.filter((m) => m.includes("hello from server A"))).toHaveLength(1)
      expect(shown.filter((m) => m.includes("and back from B"))).toHaveLength(1)
    }

    // the history is shared: someone joining on B sees what was said on A
    const cy = await browser.newPage()
    await joinAt(cy, b.url, "cy", "lobby")
    await expect.poll(async () => (await messages(cy)).length).toBe(2)
    const history = await messages(cy)
    expect(history[0]).toContain("hello from server A")
    expect(history[1]).toContain("and back from B")
    await expect.poll(() => sorted(members(ada))).toEqual(["ada", "bob", "cy"])

    // server A dies without a word: its member leaves the lists on B, once, within the bound
    const killedAt = Date.now()
    await a.kill()
    await expect
      .poll(() => sorted(members(bob)), { timeout: presenceTimeoutMs + 1_000 + 3_000, interval: 100 })
      .toEqual(["bob", "cy"])
    // dropped by the timeout, not by anything A said: B last heard A at most one heartbeat before the kill
    const gone = Date.now() - killedAt
    expect(gone).toBeGreaterThanOrEqual(presenceTimeoutMs - heartbeatMs - 100)
    expect(await sorted(members(cy))).toEqual(["bob", "cy"])
    expect((await notices(bob)).filter((n) => n === "ada left")).toHaveLength(1)

    // B carries on
    await say(cy, "still here")
    await expect.poll(async () => (await messages(bob)).some((m) => m.includes("still here"))).toBe(true)
    await Promise.all([ada.close(), bob.close(), cy.close()])
  }, 60_000)
})
