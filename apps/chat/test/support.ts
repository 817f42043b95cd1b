/** Starts the chat app as a child process on a free port of 127.0.0.1, as `pnpm start` would (with `env` added). */
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

const reachable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1", () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

export interface ChatServer {
  readonly port: number
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

export const startChat = async (env: Record<string, string> = {}): Promise<ChatServer> => {
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, ["src/main.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk) => (output += chunk))
  child.stderr?.on("data", (chunk) => (output += chunk))
  const deadline = Date.now() + 15_000
  while (!(await reachable(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`chat server did not start:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    url: `http://127.0.0.1:${port}/`,
    output: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        const kill = setTimeout(() => child.kill("SIGKILL"), 8_000)
        child.once("exit", () => {
          clearTimeout(kill)
          resolve()
        })
        child.kill("SIGTERM")
      })
  }
}
