/** Starts the chat app as a child process on a free port of 127.0.0.1, as `pnpm start` would (with `env` added). */
import { freePort, LOOPBACK } from "../../../test-support/net.ts"
import { startNodeProcess } from "../../../test-support/process.ts"

export interface ChatServer {
  readonly port: number
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

export const startChat = async (env: Record<string, string> = {}): Promise<ChatServer> => {
  // several reactors: ready once all of them listen (the supervisor says so), on the port the first one got
  const reactors = Number(env.REACTORS ?? 1) > 1
  const fixed = reactors ? { PORT: String(await freePort()), HOST: LOOPBACK } : {}
  const chat = await startNodeProcess(
    "src/main.ts",
    { ...fixed, ...env },
    {
      cwd: new URL("..", import.meta.url).pathname,
      name: "the chat server",
      ...(reactors ? { readyWhen: /reactors listening on ws:\/\/127\.0\.0\.1:(\d+)/ } : {})
    }
  )
  return {
    port: chat.port,
    url: `http://127.0.0.1:${chat.port}/`,
    output: chat.output,
    stop: async () => void (await chat.stop())
  }
}
