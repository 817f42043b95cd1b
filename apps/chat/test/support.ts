/** Starts the chat app as a child process on a free port of 127.0.0.1, as `pnpm start` would (with `env` added). */
import { existsSync } from "node:fs"
import { type Browser, chromium, type Page } from "playwright-core"
import { freePort, LOOPBACK } from "../../../test-support/net.ts"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"

export interface ChatServer {
  readonly port: number
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
  /** Kills the server at once, as a crash would (SIGKILL: no shutdown runs). */
  readonly kill: () => Promise<void>
}

export const startChat = async (env: Record<string, string> = {}): Promise<ChatServer> => {
  // several reactors: ready once all of them listen (the supervisor says so), on the port the first one got
  const reactors = Number(env.REACTORS ?? 1) > 1
  // a port of the caller's (a restart on the same port), or of our choosing with several reactors
  const fixed =
    env.PORT !== undefined ? { HOST: LOOPBACK } : reactors ? { PORT: String(await freePort()), HOST: LOOPBACK } : {}
  const chat = await startNodeProcess(
    "src/main.ts",
    { ...fixed, ...env },
    {
      cwd: new URL("..", import.meta.url).pathname,
      name: "the chat server",
      ...(reactors
        ? { readyWhen: /reactors listening on ws:\/\/127\.0\.0\.1:(\d+)/ }
        : env.PORT !== undefined
          ? { readyWhen: /switchboard listening on ws:\/\/127\.0\.0\.1:(\d+)/ }
          : {})
    }
  )
  return {
    port: chat.port,
    url: `http://127.0.0.1:${chat.port}/`,
    output: chat.output,
    stop: async () => void (await chat.stop()),
    kill: () => killed(chat)
  }
}

const killed = async (process: NodeProcess) => {
  process.kill("SIGKILL")
  await process.exited
}

const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** Debian's headless Chromium (`pnpm test` installs it when missing), through playwright-core. */
export const launchChromium = (): Promise<Browser> => {
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: .ci/run installs Debian's chromium (or set CHROMIUM_PATH)`)
  }
  return chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
}

/** Opens the page at `url`, picks a nick and joins a room. */
export const joinAt = async (page: Page, url: string, nick: string, room: string): Promise<void> => {
  await page.goto(url)
  await page.fill("#nick", nick)
  await page.fill("#room", room)
  await page.click("#join")
  await page.waitForSelector("#chat:not([hidden])")
}

export const say = async (page: Page, text: string): Promise<void> => {
  await page.fill("#text", text)
  await page.click("#send")
}

/** The messages on the page, as shown. */
export const messages = (page: Page): Promise<Array<string>> => page.locator("#messages .msg").allInnerTexts()
/** The notices (joined, left) on the page. */
export const notices = (page: Page): Promise<Array<string>> => page.locator("#messages .notice").allInnerTexts()
/** The member list, as shown. */
export const members = (page: Page): Promise<Array<string>> => page.locator("#members li").allInnerTexts()
