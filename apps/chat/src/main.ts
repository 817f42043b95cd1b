/**
 * Chat rooms: a web page at `/` and the WebSocket at `/chat`. A person picks
 * a nickname, joins a room, sees who is there (and who comes and goes), the
 * room's last messages, and chats. Rooms are hub topics: a message is framed
 * once and written to every member.
 *
 *   PORT=8080 node apps/chat/src/main.ts     then open http://127.0.0.1:8080/
 *
 * The protocol is JSON, decoded with Schema. Input that does not decode, or
 * is too long, gets an `error` message back; the connection stays open.
 */
import { readFileSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Backplane, Behavior, type Connection, Hub } from "@switchboard/core"
import { NodeServer } from "@switchboard/node"
import { Config, Context, Effect, Layer, Schema } from "effect"

// 1. The protocol. Client → server:
const Nick = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(24))
const RoomName = Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9-]{0,31}$/))
const Text = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2000))
const Inbound = Schema.fromJsonString(
  Schema.Union([
    Schema.Struct({ type: Schema.Literal("join"), room: RoomName, nick: Nick }),
    Schema.Struct({ type: Schema.Literal("say"), text: Text })
  ])
)
const decodeInbound = Schema.decodeUnknownEffect(Inbound)
/** Longer input is answered with an error before it is parsed (the socket limit, 64 KiB, closes with 1009). */
const maxInputChars = 4096
const historySize = 50

// Server → client: joined, message, presence, error.
interface Entry {
  readonly nick: string
  readonly text: string
  readonly at: number
}
type Outbound =
  | {
      readonly type: "joined"
      readonly room: string
      readonly you: string
      readonly members: ReadonlyArray<{ id: string; nick: string }>
      readonly history: ReadonlyArray<Entry>
    }
  | ({ readonly type: "message"; readonly room: string } & Entry)
  | {
      readonly type: "presence"
      readonly event: "joined" | "left"
      readonly room: string
      readonly id: string
      readonly nick: string
    }
  | { readonly type: "error"; readonly message: string }
const send = (conn: Connection.Connection<never>, message: Outbound) => conn.send(JSON.stringify(message))

// 2. The last messages of each room (one process; a backplane would share it between processes).
class History extends Context.Service<History, Map<string, Array<Entry>>>()("chat/History") {
  static readonly layer = Layer.sync(History)(() => new Map())
}

// 3. The behaviour: state is who this connection is and where.
interface State {
  readonly nick: string
  readonly room: string | undefined
}
const memberId = (member: { readonly node: string; readonly id: string }) => `${member.node}/${member.id}`
const nickOf = (meta: unknown) =>
  typeof meta === "object" && meta !== null && "nick" in meta ? String(meta.nick) : "anonymous"

const Chat = Behavior.make({
  init: (_conn: Connection.Connection<Hub.Presence>) => Effect.succeed<State>({ nick: "", room: undefined }),

  onMessage: (conn, raw, state) =>
    Effect.gen(function* () {
      if (typeof raw !== "string")
        return yield* Effect.as(send(conn, { type: "error", message: "send JSON text" }), state)
      if (raw.length > maxInputChars) {
        return yield* Effect.as(
          send(conn, { type: "error", message: `message longer than ${maxInputChars} characters` }),
          state
        )
      }
      const input = yield* Effect.option(decodeInbound(raw))
      if (input._tag === "None") {
        return yield* Effect.as(send(conn, { type: "error", message: "not a valid message" }), state)
      }
      const hub = yield* Hub.Hub
      const history = yield* History
      const command = input.value
      if (command.type === "join") {
        const nick = command.nick.trim() || "anonymous"
        if (state.room !== undefined) yield* hub.unsubscribe(state.room, conn)
        yield* hub.join(command.room, conn, { nick })
        const members = yield* hub.members(command.room)
        yield* send(conn, {
          type: "joined",
          room: command.room,
          you: memberId({ node: hub.node, id: conn.id }),
          members: members.map((m) => ({ id: memberId(m), nick: nickOf(m.meta) })),
          history: history.get(command.room) ?? []
        })
        return { nick, room: command.room }
      }
      if (state.room === undefined) {
        return yield* Effect.as(send(conn, { type: "error", message: "join a room first" }), state)
      }
      const entry: Entry = { nick: state.nick, text: command.text, at: Date.now() }
      const log = history.get(state.room) ?? []
      log.push(entry)
      if (log.length > historySize) log.shift()
      history.set(state.room, log)
      yield* hub.broadcast(state.room, JSON.stringify({ type: "message", room: state.room, ...entry }))
      return state
    }),

  onInfo: (conn, event: Hub.Presence, state: State) =>
    Effect.as(
      send(conn, {
        type: "presence",
        event: event._tag === "Joined" ? "joined" : "left",
        room: event.topic,
        id: memberId(event.member),
        nick: nickOf(event.member.meta)
      }),
      state
    )
})

// 4. The page: three static files, read once.
const publicDir = new URL("../public/", import.meta.url)
const files: Record<string, { type: string; body: Buffer }> = {
  "/": { type: "text/html; charset=utf-8", body: readFileSync(new URL("index.html", publicDir)) },
  "/app.js": { type: "text/javascript; charset=utf-8", body: readFileSync(new URL("app.js", publicDir)) },
  "/style.css": { type: "text/css; charset=utf-8", body: readFileSync(new URL("style.css", publicDir)) }
}
const servePage = (req: IncomingMessage, res: ServerResponse) => {
  const file = req.method === "GET" ? files[(req.url ?? "/").split("?")[0] ?? "/"] : undefined
  if (file === undefined) return res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n")
  res.writeHead(200, { "Content-Type": file.type, "Cache-Control": "no-cache" }).end(file.body)
}

// 5. The server.
const ChatServer = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    yield* Effect.logInfo(`chat: open http://${host}:${port}/`)
    return NodeServer.layer({
      port,
      host,
      routes: { "/chat": { behavior: Chat, maxMessageBytes: 64 * 1024 } },
      onRequest: servePage
    })
  })
).pipe(Layer.provide(Hub.layer()), Layer.provide(Backplane.layerMemory), Layer.provide(History.layer))

NodeRuntime.runMain(Layer.launch(ChatServer))
