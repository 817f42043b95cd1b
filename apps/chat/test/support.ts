/** Starts the chat app as a child process on a free port of 127.0.0.1, as `pnpm start` would (with `env` added). */
import { startNodeProcess } from "../../../test-support/process.ts"

export interface ChatServer {
  readonly port: number
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

export const startChat = async (env: Record<string, string> = {}): Promise<ChatServer> => {
  const chat = await startNodeProcess("src/main.ts", env, {
    cwd: new URL("..", import.meta.url).pathname,
    name: "the chat server"
  })
  return {
    port: chat.port,
    url: `http://127.0.0.1:${chat.port}/`,
    output: chat.output,
    stop: async () => void (await chat.stop())
  }
}
