/**
 * Every open connection of the process by id, for the hub's `sendTo` (a
 * message to one connection, from anywhere): the supervisors add their
 * actors on accept and remove them when they leave.
 *
 * Ids are unique across processes: `c<serial>.<process tag>`, the tag
 * random per process, so a connection named in a log line, a presence
 * member or an address is never another process's.
 */
import type { ActorImpl } from "./actor.ts"

/** Random per process: 8 base-36 characters. */
export const processTag: string = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), (b) =>
  (b % 36).toString(36)
).join("")

const byId = new Map<string, ActorImpl>()

export const add = (actor: ActorImpl): void => {
  byId.set(actor.id, actor)
}

export const remove = (actor: ActorImpl): void => {
  if (byId.get(actor.id) === actor) byId.delete(actor.id)
}

export const get = (id: string): ActorImpl | undefined => byId.get(id)
