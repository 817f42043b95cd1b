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
 * Nicks and messages lose their invisible characters (`Sanitize.ts`); each
 * message carries its sender's member id (`from`), so two people with one
 * nick stay apart. The history is bounded as a whole (`History.ts`):
 * HISTORY_ROOMS (1000), HISTORY_MESSAGES per room (50), HISTORY_BYTES (8 MiB).
 * A search of the room's history (`Search.ts`) runs as a job on a pool of
 * WORKERS worker threads (cores − 1, at least 1; 0 runs it on the event
 * loop), one search per connection at a time, so that the connection, and
 * every other one, keeps chatting while it runs.
 *
 * REACTORS (default 1) runs the server as that many reactor threads on the
 * same port (`NodeReactors`), for more than one core: messages and presence
 * events cross between them, and a room's member list shows the people on
 * every reactor; each reactor keeps its own history and its own pool of
 * WORKERS threads.
 *
 * BACKPLANE=redis (default memory) spans servers: rooms, presence and the
 * history go through the Redis at REDIS_URL (`RedisHistory.ts`), so several
 * servers, on one machine or many, serve the same rooms. Each process (each
 * reactor thread, with REACTORS) is then one node on that Redis.
 * PRESENCE_TIMEOUT (5 s) is how long a silent server's members stay listed.
 */
import { readFileSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import { Behavior, type Connection, Hub, type RateLimit } from "@switchboard/core"
import { Job, type JobError, WorkerPool } from "@switchboard/core/jobs"
import { NodeReactors, NodeServer } from "@switchboard/node"
import { NodeWorkerPool } from "@switchboard/node/jobs"
import { RedisBackplane, RedisClient } from "@switchboard/redis"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as History from "./History.ts"
import * as RedisHistory from "./RedisHistory.ts"
import * as Sanitize from "./Sanitize.ts"
import * as Search from "./Search.ts"

// 1. The protocol. Client → server:
const Nick = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(24))
const RoomName = Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9-]{0,31}$/))
const Text = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2000))
const Inbound = Schema.fromJsonString(
  Schema.Union([
    Schema.Struct({ type: Schema.Literal("join"), room: RoomName, nick: Nick }),
    Schema.Struct({ type: Schema.Literal("say"), text: Text }),
    Schema.Struct({ type: Schema.Literal("search"), query: Search.Query })
  ])
)
const decodeInbound = Schema.decodeUnknownEffect(Inbound)

/** What is wrong with input that does not decode, in words a person can act on. */
export const explain = (raw: string): string => {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return 'not JSON: send an object such as {"type":"say","text":"hi"}'
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "send a JSON object with a type"
  const input = value as Record<string, unknown>
  const length = (field: string) => (typeof input[field] === "string" ? (input[field] as string).length : -1)
  switch (input.type) {
    case "join":
      if (typeof input.room !== "string" || !/^[a-z0-9][a-z0-9-]{0,31}$/.test(input.room))
        return "room: 1 to 32 lowercase letters, digits and dashes, not starting with a dash"
      if (length("nick") < 1) return "pick a nickname"
      if (length("nick") > 24) return "nickname longer than 24 characters"
      return "not a valid join"
    case "say":
      if (length("text") < 1) return "empty message"
      if (length("text") > 2000) return "message longer than 2000 characters"
      return "not a valid message"
    case "search":
      if (length("query") < 1) return "search for at least one word"
      if (length("query") > Search.limits.maxQueryChars)
        return `search longer than ${Search.limits.maxQueryChars} characters`
      return "not a valid search"
    default:
      return typeof input.type === "string"
        ? `unknown type "${input.type.slice(0, 32)}": join, say or search`
        : "missing type: join, say or search"
  }
}
/** Longer input is answered with an error before it is parsed (the socket limit, 64 KiB, closes with 1009). */
const maxInputChars = 4096

// Server → client: joined, message, presence, results, error. Entries (`from`, `nick`, `text`, `at`) are kept by History.
type Entry = History.Entry
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
  | {
      readonly type: "results"
      readonly room: string
      readonly query: string
      readonly total: number
      readonly results: ReadonlyArray<Search.Hit>
    }
  | { readonly type: "error"; readonly message: string }
const send = (conn: Connection.Connection<never>, message: Outbound) => conn.send(JSON.stringify(message))

// 2. The behaviour: state is who this connection is (member id and nick, once joined), where, and
//    the search it is waiting for (a connection has one at a time: the pool's maxJobsPerConnection).
interface State {
  readonly id: string
  readonly nick: string
  readonly room: string | undefined
  readonly search: { readonly id: number; readonly room: string; readonly query: string } | undefined
}
type Info = Hub.Presence | Job.JobResult<typeof Search.SearchHistory>
const memberId = (member: { readonly node: string; readonly id: string }) => `${member.node}/${member.id}`
const nickOf = (meta: unknown) =>
  typeof meta === "object" && meta !== null && "nick" in meta ? String(meta.nick) : "anonymous"

const Chat = Behavior.make({
  init: (_conn: Connection.Connection<Info>) =>
    Effect.succeed<State>({ id: "", nick: "", room: undefined, search: undefined }),

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
        return yield* Effect.as(send(conn, { type: "error", message: explain(raw) }), state)
      }
      const hub = yield* Hub.Hub
      const history = yield* History.History
      const command = input.value
      if (command.type === "join") {
        const id = memberId({ node: hub.node, id: conn.id })
        const nick = Sanitize.nick(command.nick)
        // joining the room it is in again only updates the nick (the hub tells the room once, if it changed)
        if (state.room !== undefined && state.room !== command.room) yield* Hub.unsubscribe(state.room, conn)
        yield* Hub.join(command.room, conn, { nick })
        const members = yield* Hub.members(command.room)
        yield* send(conn, {
          type: "joined",
          room: command.room,
          you: id,
          members: members.map((m) => ({ id: memberId(m), nick: nickOf(m.meta) })),
          history: yield* history.get(command.room)
        })
        return { ...state, id, nick, room: command.room }
      }
      if (state.room === undefined) {
        return yield* Effect.as(send(conn, { type: "error", message: "join a room first" }), state)
      }
      if (command.type === "search") {
        if (Search.terms(command.query).length === 0) {
          return yield* Effect.as(send(conn, { type: "error", message: "search for at least one word" }), state)
        }
        // the snapshot is the payload: messages said from now on are not searched; wait: false, so that a
        // busy pool answers "busy" instead of stalling this connection's mailbox
        const snapshot = { query: command.query, history: yield* history.get(state.room) }
        const submitted = yield* Effect.result(WorkerPool.submit(conn, Search.SearchHistory, snapshot, { wait: false }))
        if (submitted._tag === "Failure") {
          return yield* Effect.as(send(conn, { type: "error", message: searchError(submitted.failure) }), state)
        }
        return { ...state, search: { id: submitted.success, room: state.room, query: command.query } }
      }
      const text = Sanitize.text(command.text)
      if (text.trim() === "") return yield* Effect.as(send(conn, { type: "error", message: "empty message" }), state)
      const entry: Entry = { from: state.id, nick: state.nick, text, at: Date.now() }
      yield* history.add(state.room, entry)
      yield* Hub.broadcast(state.room, JSON.stringify({ type: "message", room: state.room, ...entry }))
      return state
    }),

  onInfo: (conn, info: Info, state: State) => {
    if (Job.isResultOf(info, Search.SearchHistory)) {
      const search = state.search
      if (search === undefined || search.id !== info.id) return Effect.succeed(state)
      const done = { ...state, search: undefined }
      if (Exit.isFailure(info.exit)) {
        const error = Cause.findErrorOption(info.exit.cause)
        const message = error._tag === "Some" ? searchError(error.value) : "search failed"
        return Effect.as(send(conn, { type: "error", message }), done)
      }
      const { total, hits } = info.exit.value
      return Effect.as(
        send(conn, { type: "results", room: search.room, query: search.query, total, results: hits }),
        done
      )
    }
    return Effect.as(
      send(conn, {
        type: "presence",
        event: info._tag === "Joined" ? "joined" : "left",
        room: info.topic,
        id: memberId(info.member),
        nick: nickOf(info.member.meta)
      }),
      state
    )
  }
})

// What a user is told when a search does not end with results.
const searchError = (error: JobError.JobError): string => {
  switch (error.reason._tag) {
    case "QueueFull":
    case "ConnectionLimit":
      return "search busy, try again"
    case "Timeout":
      return "search took too long"
    case "PoolClosed":
      return "search unavailable: the server is shutting down"
    default:
      return `search failed (${error.reason._tag})`
  }
}

// 3. The page: three static files, read once.
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

// 4. The server: one client may not flood a room (RATE_LIMIT messages a second, default 20, twice that
//    at once; the rest are dropped with one notice), hold more than MAX_CONNECTIONS_PER_IP connections
//    (64), fill the history (see History.ts for its bounds), or run more than one search at a time.
const rateLimitOf = (perSecond: number): RateLimit.Options | false =>
  perSecond === 0
    ? false
    : {
        messagesPerSecond: perSecond,
        burstMessages: 2 * perSecond,
        onExceed: "drop",
        notice: JSON.stringify({ type: "error", message: "sending too fast: messages are being dropped" })
      }
const count = (name: string, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), name).pipe(Config.withDefault(fallback))
const bytes = (name: string, fallback: number) =>
  count(name, fallback).pipe(Config.orElse(() => Config.ByteSize(name).pipe(Config.map(Number)))) // 8388608 or "8 MiB"
const ChatServer = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    const rateLimit = yield* count("RATE_LIMIT", 20)
    const workers = yield* count("WORKERS", NodeWorkerPool.defaultSize())
    const backplane = yield* Config.Literals(["memory", "redis"], "BACKPLANE").pipe(Config.withDefault("memory"))
    const presenceTimeout = yield* Config.Duration("PRESENCE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))
    const history: History.Options = {
      maxRooms: yield* count("HISTORY_ROOMS", History.defaults.maxRooms),
      perRoom: yield* count("HISTORY_MESSAGES", History.defaults.perRoom),
      maxBytes: yield* bytes("HISTORY_BYTES", History.defaults.maxBytes)
    }
    // with Redis, rooms, presence and history are shared by every server on it
    const redis = backplane === "redis" ? { url: yield* RedisClient.url } : undefined
    const where = redis === undefined ? "" : `; rooms shared over ${redactedHost(redis.url)}`
    yield* Effect.logInfo(
      `chat: open http://${host}:${port}/ (history: ${history.maxRooms} rooms, ` +
        `${history.perRoom} messages each, ${history.maxBytes} bytes; rate limit ${rateLimit || "off"}/s; ` +
        `${workers === 0 ? "search inline" : `search on ${workers} worker thread${workers === 1 ? "" : "s"}`}${where})`
    )
    return NodeServer.layer({
      port,
      host,
      routes: { "/chat": { behavior: Chat, maxMessageBytes: 64 * 1024, rateLimit: rateLimitOf(rateLimit) } },
      maxConnectionsPerIp: yield* count("MAX_CONNECTIONS_PER_IP", 64),
      onRequest: servePage,
      // Prometheus scrapes the same port
      metrics: { path: "/metrics" }
    }).pipe(
      Layer.provide(redis === undefined ? History.layer(history) : RedisHistory.layer({ ...history, url: redis.url })),
      // the pool outlives the server: connections close (cancelling their searches) before it shuts down.
      // Each queued search holds a history snapshot: a short queue, and a short timeout
      Layer.provide(
        NodeWorkerPool.layer({
          handlers: Search.Handlers,
          worker: new URL("./worker.ts", import.meta.url),
          size: workers,
          maxJobsPerConnection: 1,
          queueCapacity: 64,
          timeout: "10 seconds"
        })
      ),
      // heartbeats every second, or twice per timeout when it is shorter than 2 s
      Layer.provide(
        Hub.layer({
          presence: {
            timeout: presenceTimeout,
            heartbeat: Duration.min(Duration.seconds(1), Duration.divideUnsafe(presenceTimeout, 2))
          }
        })
      ),
      Layer.provide(redis === undefined ? NodeReactors.layerBackplane : RedisBackplane.layer({ url: redis.url }))
    )
  })
)

/** The host and port of a Redis URL, never its credentials. */
const redactedHost = (url: Redacted.Redacted<string>) => {
  try {
    const parsed = new URL(Redacted.value(url))
    return `${parsed.protocol}//${parsed.host}`
  } catch {
    return "Redis"
  }
}

// REACTORS (default 1): with more, this module runs once per reactor thread, all on PORT
NodeReactors.runMain(ChatServer)
