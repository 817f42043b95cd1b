/**
 * The second baseline, "tuned ws": the plain-ws baseline (`baseline-ws.ts`)
 * with exactly two changes, the ceiling of a Node + ws server that issue 14
 * measures Switchboard against:
 *
 * 1. every write of a turn is corked on its socket, and the sockets are
 *    uncorked once, after the turn (`process.nextTick`), so the replies to
 *    one TCP read leave in one write;
 * 2. a broadcast is framed once (`Sender.frame`) and the same bytes are
 *    written to every subscriber's socket.
 *
 *   PORT=9003 HOST=127.0.0.1 node apps/bench/src/baseline-tuned.ts
 */
import * as Http from "node:http"
import type { Duplex } from "node:stream"
import * as Ws from "ws"
import WebSocket, { WebSocketServer } from "ws"

const port = Number(process.env.PORT ?? 9003)
const host = process.env.HOST ?? "127.0.0.1"

/** The parts of ws that the two changes use (not in its typings). */
interface Internals {
  readonly _socket: Duplex
}
const { Sender } = Ws as unknown as {
  readonly Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }
    ): Array<Buffer>
  }
}

const corked: Array<Duplex> = []
const uncorkAll = () => {
  for (const socket of corked.splice(0)) socket.uncork()
}
/** Change 1: cork the socket for the rest of this turn. */
const corkForTurn = (ws: WebSocket): Duplex => {
  const socket = (ws as unknown as Internals)._socket
  if (socket.writableCorked === 0) {
    socket.cork()
    corked.push(socket)
    if (corked.length === 1) process.nextTick(uncorkAll)
  }
  return socket
}

const server = Http.createServer((_req, res) => {
  res.writeHead(426).end()
})
const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false })
const broadcast = new WebSocketServer({ noServer: true, perMessageDeflate: false })
const subscribers = new Set<WebSocket>()

echo.on("connection", (ws) => {
  ws.on("message", (data: Buffer, isBinary) => {
    corkForTurn(ws)
    ws.send(data, { binary: isBinary })
  })
})
broadcast.on("connection", (ws) => {
  subscribers.add(ws)
  ws.on("close", () => subscribers.delete(ws))
  ws.on("message", (data: Buffer, isBinary) => {
    // change 2: one frame for every subscriber
    const [head, payload] = Sender.frame(data, {
      fin: true,
      opcode: isBinary ? 2 : 1,
      mask: false,
      readOnly: true,
      rsv1: false
    })
    for (const client of subscribers) {
      if (client.readyState !== WebSocket.OPEN) continue
      const socket = corkForTurn(client)
      socket.write(head!)
      if (payload !== undefined && payload.length > 0) socket.write(payload)
    }
  })
})
server.on("upgrade", (req, socket, head) => {
  const path = (req.url ?? "/").split("?")[0]
  const wss = path === "/echo" ? echo : path === "/broadcast" ? broadcast : undefined
  if (wss === undefined) return socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n")
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req))
})
server.listen(port, host, () => console.log(`tuned ws baseline listening on ws://${host}:${port}`))
const stop = () => process.exit(0)
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
