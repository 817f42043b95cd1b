/**
 * Two real headless Chromium pages chat with each other through the chat
 * server (Debian's chromium driven by playwright-core), and one searches
 * its room's history.
 */
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../../test-support/net.ts"
import { type ChatServer, joinAt, launchChromium, members, messages, notices, say, startChat } from "./support.ts"

let server: ChatServer
let browser: Browser

beforeAll(async () => {
  server = await startChat()
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

const join = (page: Page, nick: string, room: string) => joinAt(page, server.url, nick, room)

describe("chat in two browsers", () => {
  it("lets two people join a room, see each other, and exchange messages", async () => {
    const ada = await browser.newPage()
    const bob = await browser.newPage()
    await join(ada, "ada", "lobby")
    await join(bob, "bob", "lobby")

    await expect.poll(() => members(ada)).toEqual(["ada", "bob"])
    await expect.poll(() => members(bob)).toEqual(["ada", "bob"])
    await expect.poll(() => notices(ada)).toContain("bob joined")

    await say(bob, "hello ada")
    await expect
      .poll(async () => (await messages(ada)).some((m) => m.includes("bob") && m.includes("hello ada")))
      .toBe(true)
    await say(ada, "hi bob!")
    await expect.poll(async () => (await messages(bob)).some((m) => m.includes("hi bob!"))).toBe(true)
    expect((await messages(ada)).filter((m) => m.includes("hi bob!"))).toHaveLength(1)

    await bob.close()
    await expect.poll(() => members(ada)).toEqual(["ada"])
    await expect.poll(() => notices(ada)).toContain("bob left")
    await ada.close()
  })

  it("shows the room's last messages to someone who joins later, and keeps rooms apart", async () => {
    const first = await browser.newPage()
    await join(first, "first", "history")
    await say(first, "one")
    await say(first, "two")
    await expect.poll(async () => (await messages(first)).length).toBe(2)

    const elsewhere = await browser.newPage()
    await join(elsewhere, "other", "elsewhere")
    const late = await browser.newPage()
    await join(late, "late", "history")
    await expect.poll(() => late.locator("#messages .msg.history .text").allInnerTexts()).toEqual(["one", "two"])
    expect(await messages(elsewhere)).toEqual([])
    await Promise.all([first.close(), elsewhere.close(), late.close()])
  })

  it("tells two members with one nick apart with a short tag, in the list and on their messages", async () => {
    const one = await browser.newPage()
    const two = await browser.newPage()
    await join(one, "ada", "twins")
    await join(two, "ada", "twins")
    await expect.poll(async () => (await members(one)).length).toBe(2)
    const labels = await members(one)
    expect(labels).toEqual(await members(two))
    expect(labels.every((label) => /^ada#[0-9a-f]{4}$/.test(label))).toBe(true)
    expect(labels[0]).not.toBe(labels[1])
    await say(two, "which ada?")
    await expect.poll(() => one.locator("#messages .msg .who").allInnerTexts()).toEqual([labels[1]])
    await two.close()
    await expect.poll(() => members(one)).toEqual(["ada"])
    // the message is still not the remaining ada's: it keeps its tag
    expect(await one.locator("#messages .msg .who").allInnerTexts()).toEqual([labels[1]])
    await one.close()
  })

  it("searches the room's history from the page and shows the matches as text, newest first", async () => {
    const page = await browser.newPage()
    await join(page, "ada", "search")
    for (const text of ["first <b>needle</b>", "no match here", "second needle", "third NEEDLE"]) await say(page, text)
    await expect.poll(async () => (await messages(page)).length).toBe(4)
    await page.fill("#query", "needle")
    await page.click("#search")
    await page.waitForSelector("#results:not([hidden])")
    expect(await page.locator("#results-title").textContent()).toBe("3 matches for “needle” in #search")
    // markup in a message is text, not elements
    expect(await page.locator("#results-list .text").allInnerTexts()).toEqual([
      "third NEEDLE",
      "second needle",
      "first <b>needle</b>"
    ])
    expect(await page.locator("#results-list b").count()).toBe(0)
    await expect.poll(() => page.locator("#search").isEnabled()).toBe(true)
    await page.click("#results-close")
    expect(await page.locator("#results").isHidden()).toBe(true)
    await page.close()
  })

  it("goes offline when the server goes away (greyed members, Send disabled, typed text kept), then reconnects and rejoins", async () => {
    const port = await freePort()
    let own = await startChat({ PORT: String(port) })
    const url = `http://127.0.0.1:${port}/`
    const page = await browser.newPage()
    try {
      await joinAt(page, url, "ada", "restart")
      await say(page, "before")
      await expect.poll(async () => (await messages(page)).some((m) => m.includes("before"))).toBe(true)

      await own.stop()
      await expect.poll(() => page.locator("body.offline").count()).toBe(1)
      expect(await page.locator("#send").isDisabled()).toBe(true)
      expect(
        await page.locator(".members").evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).opacity)
      ).toBe("0.45")
      expect(await page.locator("#status").textContent()).toMatch(/^offline/)
      // typing while offline: nothing is sent or lost, the text waits in the box
      await page.fill("#text", "written offline")
      await page.locator("#text").press("Enter")
      expect(await page.locator("#text").inputValue()).toBe("written offline")
      await expect
        .poll(() => page.locator("#messages .err").allInnerTexts())
        .toEqual([expect.stringMatching(/^Connection lost \(1001\); reconnecting/)])

      own = await startChat({ PORT: String(port) })
      await expect.poll(() => notices(page), { timeout: 15_000 }).toContain("Reconnected: back in #restart as ada")
      expect(await page.locator("body.offline").count()).toBe(0)
      expect(await members(page)).toEqual(["ada"])
      await page.click("#send")
      await expect.poll(async () => (await messages(page)).some((m) => m.includes("written offline"))).toBe(true)
    } finally {
      await page.close()
      await own.stop()
    }
  }, 40_000)

  it("wraps long unbroken text inside its bubble", async () => {
    const page = await browser.newPage()
    await join(page, "wide", "wrap")
    await say(page, "x".repeat(1500))
    const bubble = page.locator("#messages .msg").last()
    await bubble.waitFor()
    const [width, parent] = await bubble.evaluate((el) => [el.scrollWidth, el.parentElement!.clientWidth])
    expect(width).toBeLessThanOrEqual(parent!)
    await page.close()
  })
})
