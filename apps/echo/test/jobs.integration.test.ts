/**
 * The echo app's `/jobs` path, run as the real app in a child process: a
 * binary message is hashed on the worker pool and the digest comes back as
 * text, with worker threads and inline alike, while `/echo` keeps answering.
 */
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { hash } from "../src/jobs.ts"

const ROOT = Path.resolve(import.meta.dirname, "../../..")
const servers: Array<NodeProcess> = []

const start = async (env: Record<string, string>) => {
  const server = await startNodeProcess("apps/echo/src/main.ts", env, {
    cwd: ROOT,
    name: "the echo app",
    timeoutMs: 15_000,
    outputTail: 16_384
  })
  servers.push(server)
  return server
}

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()))
})

interface Client {
  readonly ws: WebSocket
  /** Every text message received, with when it arrived. */
  readonly texts: Array<{ readonly text: string; readonly at: number }>
  readonly nextText: () => Promise<string>
}

const open = (port: number, path: string): Promise<Client> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
    const texts: Array<{ text: string; at: number }> = []
    let read = 0
    let wake: (() => void) | undefined
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) texts.push({ text: data.toString(), at: performance.now() })
      wake?.()
    })
    const nextText = () =>
      new Promise<string>((done, fail) => {
        const timer = setTimeout(() => fail(new Error(`no message within 10 s on ${path}`)), 10_000)
        const check = () => {
          if (read < texts.length) {
            clearTimeout(timer)
            wake = undefined
            done(texts[read++]!.text)
          } else wake = check
        }
        check()
      })
    ws.once("open", () => resolve({ ws, texts, nextText }))
    ws.once("error", reject)
  })

describe.each([
  { workers: "1", where: "on a worker thread" },
  { workers: "0", where: "inline" }
])("the echo app's /jobs with WORKERS=$workers", ({ where, workers }) => {
  it(`hashes each binary message ${where} and answers with the digest as text`, async () => {
    const server = await start({ WORKERS: workers, JOB_ROUNDS: "500" })
    const client = await open(server.port, "/jobs")
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(64 * 1024).fill(9), new Uint8Array(0)]
    for (const payload of payloads) {
      client.ws.send(payload)
      expect(await client.nextText()).toBe(hash(payload, 500))
    }
    client.ws.send("text is echoed")
    expect(await client.nextText()).toBe("text is echoed")
    client.ws.close()
  })
})

describe("the echo app with a worker", () => {
  it("keeps answering /echo while a long job runs, and the job's own connection too", async () => {
    // about half a second of hashing on this machine
    const server = await start({ WORKERS: "1", JOB_ROUNDS: "200000" })
    const jobs = await open(server.port, "/jobs")
    const echo = await open(server.port, "/echo")
    jobs.ws.send(new Uint8Array([7]))
    for (let i = 0; i < 10; i++) {
      echo.ws.send(`ping ${i}`)
      expect(await echo.nextText()).toBe(`ping ${i}`)
      jobs.ws.send(`still here ${i}`)
      expect(await jobs.nextText()).toBe(`still here ${i}`)
    }
    const echoesDone = performance.now()
    const digest = await jobs.nextText()
    expect(digest).toBe(hash(new Uint8Array([7]), 200_000))
    const digestAt = jobs.texts.at(-1)!.at
    // every echo came back before the job finished: the loop was never blocked
    expect(echoesDone).toBeLessThan(digestAt)
    jobs.ws.close()
    echo.ws.close()
  })
})
