/**
 * The chat's history in Redis, shared by every server on that Redis: a
 * person who joins a room on server B sees what was said on server A.
 *
 * The same three limits as the in-memory history (`History.ts`) hold at
 * once, for all servers together: at most `maxRooms` rooms, `perRoom`
 * messages in each (oldest go first), `maxBytes` charged to the whole (least
 * recently used rooms go first, whole). Each change runs as one Lua script,
 * so servers never see a half-done eviction and never count twice.
 *
 * Keys, under `prefix` (default `switchboard:chat:`):
 * - `history:<room>`, a list of the room's messages as JSON, oldest first;
 * - `rooms`, a sorted set of room names by last use (a counter, `clock`, not
 *   a wall clock, so that servers whose clocks differ agree on the order);
 * - `bytes`, a hash of each room's charge, and `total`, the sum.
 *
 * What is charged: each stored message's UTF-8 bytes, plus a quarter, plus
 * `entryOverhead` (16); each room's name bytes plus `roomOverhead` (512:
 * the list key and the room's entries in the hash and the sorted set).
 * Measured with `INFO memory` on Redis 7.0 (`used_memory` before and after):
 * 1,000 rooms of 50 messages of 128 bytes took 7.6 MB for a charge of
 * 9.3 MB; 200 rooms of 50 messages of 2 KB took 24.2 MB for 26.1 MB; 1,000
 * rooms of one message took 0.65 MB for 0.71 MB. So the charge errs high,
 * and Redis's memory for the history stays within `maxBytes`.
 *
 * When Redis is away, `get` answers an empty history and `add` keeps
 * nothing (the message is still said to the room); the first failure after
 * a success is logged, not every one. A Redis that holds the connection but
 * answers nothing (a stopped process) costs one wait of `replyTimeout`
 * (1 s): after that, commands answer the same way at once, while one at a
 * time goes through, unawaited, to see whether Redis answers again; the
 * first reply ends it. A message whose `add` timed out may still be kept, once Redis
 * answers.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import { RedisClient } from "@switchboard/redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { type Entry, History, type Options as Limits } from "./History.ts"

/**
 * The limits, and where Redis is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Limits {
  readonly url?: string | Redacted.Redacted<string>
  /** Prefix of every key (default `switchboard:chat:`). */
  readonly prefix?: string
  /** How long a command waits for Redis before it counts as failed (default 1 s). */
  readonly replyTimeout?: Duration.Input
}

/**
 * Bytes charged per message besides its JSON's UTF-8 bytes and a quarter of them.
 *
 * @since 0.1.0
 * @category constants
 */
export const entryOverhead = 16

/**
 * Bytes charged per room besides its name's bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const roomOverhead = 512

/**
 * What a message is charged (the script computes the same).
 *
 * @since 0.1.0
 * @category accounting
 */
export const entryBytes = (entry: Entry): number => {
  const bytes = Buffer.byteLength(JSON.stringify(entry))
  return bytes + Math.floor(bytes / 4) + entryOverhead
}

/**
 * What a room is charged, without its messages.
 *
 * @since 0.1.0
 * @category accounting
 */
export const roomBytes = (room: string): number => Buffer.byteLength(room) + roomOverhead

// KEYS: list, rooms, bytes, total, clock. ARGV: entry, room, perRoom, maxRooms, maxBytes, list prefix, overheads
const addScript = `
local list, rooms, sizes, totalKey, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, room = ARGV[1], ARGV[2]
local perRoom, maxRooms, maxBytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local listPrefix, entryOverhead, roomOverhead = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local function cost(s) return #s + math.floor(#s / 4) + entryOverhead end
local charge, roomCharge = cost(entry), #room + roomOverhead
if maxRooms < 1 or perRoom < 1 or charge + roomCharge > maxBytes then return 0 end
local total = tonumber(redis.call('GET', totalKey) or '0')
if redis.call('EXISTS', list) == 0 then
  redis.call('HSET', sizes, room, roomCharge)
  total = redis.call('INCRBY', totalKey, roomCharge)
end
redis.call('RPUSH', list, entry)
redis.call('HINCRBY', sizes, room, charge)
total = redis.call('INCRBY', totalKey, charge)
redis.call('ZADD', rooms, redis.call('INCR', clock), room)
local function dropOldest()
  local old = redis.call('LPOP', list)
  if not old then return false end
  local c = cost(old)
  redis.call('HINCRBY', sizes, room, -c)
  total = redis.call('INCRBY', totalKey, -c)
  return true
end
if redis.call('LLEN', list) > perRoom then dropOldest() end
while redis.call('ZCARD', rooms) > maxRooms or total > maxBytes do
  local two = redis.call('ZRANGE', rooms, 0, 1)
  local oldest = two[1]
  if oldest == room then oldest = two[2] end
  if not oldest then
    while total > maxBytes and redis.call('LLEN', list) > 1 and dropOldest() do end
    break
  end
  local size = tonumber(redis.call('HGET', sizes, oldest) or '0')
  redis.call('DEL', listPrefix .. oldest)
  redis.call('HDEL', sizes, oldest)
  redis.call('ZREM', rooms, oldest)
  total = redis.call('INCRBY', totalKey, -size)
end
return 1
`

// KEYS: list, rooms, clock. ARGV: room
const getScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
return redis.call('LRANGE', KEYS[1], 0, -1)
`

// KEYS: rooms, total. ARGV: list prefix
const sizeScript = `
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
local messages = 0
for _, name in ipairs(names) do messages = messages + redis.call('LLEN', ARGV[1] .. name) end
return { #names, messages, tonumber(redis.call('GET', KEYS[2]) or '0') }
`

const sha1 = (script: string) => createHash("sha1").update(script).digest("hex")

const isEntry = (value: unknown): value is Entry =>
  typeof value === "object" &&
  value !== null &&
  "from" in value &&
  typeof value.from === "string" &&
  "nick" in value &&
  typeof value.nick === "string" &&
  "text" in value &&
  typeof value.text === "string" &&
  "at" in value &&
  typeof value.at === "number"

const parse = (raw: unknown): Entry | undefined => {
  if (typeof raw !== "string") return undefined
  try {
    const value: unknown = JSON.parse(raw)
    return isEntry(value) ? value : undefined
  } catch {
    return undefined
  }
}

/**
 * Makes the history on a connection of its own, closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function* () {
    const replyTimeout = Option.getOrElse(Duration.fromInput(options.replyTimeout ?? "1 second"), () =>
      Duration.seconds(1)
    )
    const redis = yield* RedisClient.make({
      ...(options.url === undefined ? {} : { url: options.url }),
      replyTimeout
    })
    const prefix = options.prefix ?? "switchboard:chat:"
    const listPrefix = `${prefix}history:`
    const keys = { rooms: `${prefix}rooms`, bytes: `${prefix}bytes`, total: `${prefix}total`, clock: `${prefix}clock` }

    /** EVALSHA, and EVAL when Redis does not know the script (a restart forgets them). */
    const run = async (script: string, sha: string, options: { keys: Array<string>; arguments: Array<string> }) => {
      try {
        return await redis.evalSha(sha, options)
      } catch (cause) {
        if (cause instanceof Error && cause.message.startsWith("NOSCRIPT")) return redis.eval(script, options)
        throw cause
      }
    }
    const scripts = { add: sha1(addScript), get: sha1(getScript), size: sha1(sizeScript) }

    let failing = false
    // a command got no reply in time: until one does, callers get the fallback at once
    let stalled = false
    let probing = false
    const failed = <A>(what: string, fallback: A, why: string): Effect.Effect<A> => {
      if (failing) return Effect.succeed(fallback)
      failing = true
      return Effect.as(
        Effect.logWarning(`chat history: could not ${what} in Redis (${why}); until it works again`),
        fallback
      )
    }
    const attempt = <A>(what: string, fallback: A, task: () => Promise<A>): Effect.Effect<A> =>
      Effect.suspend(() => {
        const reply = stalled ? undefined : task()
        if (reply === undefined) {
          // one command at a time goes to Redis to see whether it answers; no caller waits for it
          if (!probing) {
            probing = true
            task().then(
              () => {
                stalled = probing = false
              },
              () => {
                probing = false
              }
            )
          }
          return Effect.succeed(fallback)
        }
        // a reply, however late, means Redis answers again
        reply.then(
          () => {
            stalled = false
          },
          () => undefined
        )
        return Effect.tryPromise(() => reply).pipe(
          Effect.timeoutOption(replyTimeout),
          Effect.matchEffect({
            onFailure: (error) => failed(what, fallback, String(error.cause)),
            onSuccess: (answer) => {
              if (Option.isSome(answer)) {
                failing = false
                return Effect.succeed(answer.value)
              }
              stalled = true
              return failed(what, fallback, `no reply within ${Duration.format(replyTimeout)}`)
            }
          })
        )
      })

    return History.of({
      get: (room) =>
        attempt("read a room", [], async () => {
          const raw = await run(getScript, scripts.get, {
            keys: [listPrefix + room, keys.rooms, keys.clock],
            arguments: [room]
          })
          return Array.isArray(raw) ? raw.flatMap((item) => parse(item) ?? []) : []
        }),
      add: (room, entry) =>
        attempt("keep a message", undefined, async () => {
          await run(addScript, scripts.add, {
            keys: [listPrefix + room, keys.rooms, keys.bytes, keys.total, keys.clock],
            arguments: [
              JSON.stringify(entry),
              room,
              String(options.perRoom),
              String(options.maxRooms),
              String(options.maxBytes),
              listPrefix,
              String(entryOverhead),
              String(roomOverhead)
            ]
          })
        }),
      size: attempt("measure the history", { rooms: 0, messages: 0, bytes: 0 }, async () => {
        const raw = await run(sizeScript, scripts.size, { keys: [keys.rooms, keys.total], arguments: [listPrefix] })
        const [rooms, messages, bytes] = Array.isArray(raw) ? raw.map(Number) : []
        return { rooms: rooms ?? 0, messages: messages ?? 0, bytes: bytes ?? 0 }
      })
    })
  })

/**
 * The shared history as a layer; it fails when Redis cannot be reached as
 * the server starts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<History, RedisClient.RedisError> =>
  Layer.effect(History)(make(options))
