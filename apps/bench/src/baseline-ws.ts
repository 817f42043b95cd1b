/**
 * The baseline: the same two paths as the bench server on plain `ws`, written
 * the way the ws README does it — `ws.send` per reply, and the broadcast a
 * loop over the clients calling `send`.
 *
 *   PORT=9002 HOST=127.0.0.1 node apps/bench/src/baseline-ws.ts
 */
import * as Http from "node:http"
import { type WebSocket, WebSocketServer } from "ws"

const port = Number(process.env.PORT ?? 9002)
const host = process.env.HOST ?? "127.0.0.1"

const server = Http.createServer((_req, res) => {
  res.writeHead(426).end()
})
// COMPRESSION: off (default), on (ws's defaults), nocontext (no context takeover both ways), as the bench server
const compression = process.env.COMPRESSION ?? "off"
const perMessageDeflate =
  compression === "on"
    ? true
    : compression === "nocontext"
      ? { serverNoContextTakeover: true, clientNoContextTakeover: true }
      : false
const echo = new WebSocketServer({ noServer: true, perMessageDeflate })
const broadcast = new WebSocketServer({ noServer: true, perMessageDeflate })
const subscribers = new Set<WebSocket>()

echo.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
})
broadcast.on("connection", (ws) => {
  subscribers.add(ws)
  ws.on("close", () => subscribers.delete(ws))
  ws.on("message", (data, isBinary) => {
    for (const client of subscribers) client.send(data, { binary: isBinary })
  })
})
server.on("upgrade", (req, socket, head) => {
  const path = (req.url ?? "/").split("?")[0]
  const wss = path === "/echo" ? echo : path === "/broadcast" ? broadcast : undefined
  if (wss === undefined) return socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n")
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req))
})
server.listen(port, host, () => console.log(`baseline ws listening on ws://${host}:${port}`))
const stop = () => process.exit(0)
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
