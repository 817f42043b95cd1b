/**
 * The chat's history: the last messages of each room, in memory, bounded as
 * a whole and not only per room. Room names are whatever clients send, so
 * without a bound on the number of rooms one client could grow the history
 * without end by saying one message in each of a million rooms.
 *
 * Three limits hold at once: at most `maxRooms` rooms, at most `perRoom`
 * messages in each (the oldest goes first), and at most `maxBytes` charged to
 * the whole. When a limit is passed, the least recently used room goes,
 * whole; a room is used when someone joins it, says something in it or
 * searches it (each is a `get` or an `add`). A room nobody said anything in
 * has no entry at all, so joining rooms costs the history nothing.
 *
 * The byte charge is an estimate of what V8 keeps, measured on Node 24
 * (64-bit, no pointer compression): each message is charged 2 bytes per
 * UTF-16 code unit of its sender id, nick and text plus `entryOverhead`
 * (the record, its timestamp, its array slot and three string headers);
 * each room 2 bytes per code unit of its name plus `roomOverhead` (the map
 * entry, the record, the array and its spare capacity). Strings that entries
 * share (a member's nick and id) are charged once per entry, so the charge
 * errs high: filled to its budget, the history measured 40–60% of it in heap.
 *
 * One process: a backplane spans processes, this history does not; with
 * BACKPLANE=redis the chat keeps its history in Redis instead (`RedisHistory.ts`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * One message as the history keeps it and sends it to someone who joins.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  /** The sender's member id (`node/connection`), unique while the sender is connected. */
  readonly from: string
  readonly nick: string
  readonly text: string
  /** Milliseconds since the epoch. */
  readonly at: number
}

/**
 * The three limits. Zero in any of them keeps no history at all.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Rooms kept (least recently used go first). */
  readonly maxRooms: number
  /** Messages kept per room (oldest go first). */
  readonly perRoom: number
  /** Bytes charged to the whole history (see the module comment for the charge). */
  readonly maxBytes: number
}

/**
 * 1,000 rooms of 50 messages, within 8 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: Options = { maxRooms: 1_000, perRoom: 50, maxBytes: 8 * 1024 * 1024 }

/**
 * Bytes charged per message besides its strings' code units.
 *
 * @since 0.1.0
 * @category constants
 */
export const entryOverhead = 128

/**
 * Bytes charged per room besides its name's code units.
 *
 * @since 0.1.0
 * @category constants
 */
export const roomOverhead = 640

/**
 * What a message is charged.
 *
 * @since 0.1.0
 * @category accounting
 */
export const entryBytes = (entry: Entry): number =>
  2 * (entry.from.length + entry.nick.length + entry.text.length) + entryOverhead

/**
 * What a room is charged, without its messages.
 *
 * @since 0.1.0
 * @category accounting
 */
export const roomBytes = (room: string): number => 2 * room.length + roomOverhead

/**
 * The history service.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const history = yield* History
 *   yield* history.add("lobby", { from: "n/c1", nick: "ada", text: "hi", at: Date.now() })
 *   return yield* history.get("lobby") // [{ from: "n/c1", nick: "ada", text: "hi", at: … }]
 * }).pipe(Effect.provide(layer(defaults)))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class History extends Context.Service<
  History,
  {
    /** The room's messages, oldest first; empty for a room with none. Marks the room as used. */
    readonly get: (room: string) => Effect.Effect<ReadonlyArray<Entry>>
    /**
     * Appends a message, marks the room as used, and evicts until the limits
     * hold again. A message that would not fit in an empty history (its charge
     * and its room's above `maxBytes`) is not kept, and evicts nothing.
     */
    readonly add: (room: string, entry: Entry) => Effect.Effect<void>
    /** What is kept now. */
    readonly size: Effect.Effect<{ readonly rooms: number; readonly messages: number; readonly bytes: number }>
  }
>()("chat/History") {}

interface Room {
  readonly entries: Array<Entry>
  /** The room's charge, its messages included. */
  bytes: number
}

/**
 * Makes a history. Rooms live in a `Map` in least-recently-used order (a use
 * moves the room to the end), so eviction takes from the front.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<History["Service"]> =>
  Effect.sync(() => {
    const { maxRooms, perRoom, maxBytes } = options
    const rooms = new Map<string, Room>()
    let bytes = 0
    let messages = 0

    const touch = (name: string, room: Room) => {
      rooms.delete(name)
      rooms.set(name, room)
    }
    const dropOldest = (room: Room) => {
      const entry = room.entries.shift()
      if (entry === undefined) return
      const charge = entryBytes(entry)
      room.bytes -= charge
      bytes -= charge
      messages -= 1
    }
    const evict = (name: string, room: Room) => {
      rooms.delete(name)
      bytes -= room.bytes
      messages -= room.entries.length
    }

    const add = (name: string, entry: Entry) => {
      const charge = entryBytes(entry)
      if (maxRooms < 1 || perRoom < 1 || charge + roomBytes(name) > maxBytes) return
      let room = rooms.get(name)
      if (room === undefined) {
        room = { entries: [], bytes: roomBytes(name) }
        bytes += room.bytes
        rooms.set(name, room)
      } else {
        touch(name, room)
      }
      room.entries.push(entry)
      room.bytes += charge
      bytes += charge
      messages += 1
      if (room.entries.length > perRoom) dropOldest(room)
      for (const [oldestName, oldest] of rooms) {
        if (rooms.size <= maxRooms && bytes <= maxBytes) break
        // the room just used is last: every other room goes before it is trimmed
        if (oldest === room) {
          while (bytes > maxBytes) dropOldest(room)
          break
        }
        evict(oldestName, oldest)
      }
    }

    return History.of({
      get: (name) =>
        Effect.sync(() => {
          const room = rooms.get(name)
          if (room === undefined) return []
          touch(name, room)
          return room.entries.slice()
        }),
      add: (name, entry) => Effect.sync(() => add(name, entry)),
      size: Effect.sync(() => ({ rooms: rooms.size, messages, bytes }))
    })
  })

/**
 * A history with these limits.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<History> => Layer.effect(History)(make(options))
