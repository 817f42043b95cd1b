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

/** Keyed by serial, so that a connection's id string is made only when something asks for it. */
const bySerial = new Map<number, ActorImpl>()
const suffix = `.${processTag}`

export const add = (actor: ActorImpl): void => {
  bySerial.set(actor.serial, actor)
}

export const remove = (actor: ActorImpl): void => {
  if (bySerial.get(actor.serial) === actor) bySerial.delete(actor.serial)
}

/** The connection of this process with this id (`c<serial>.<tag>`, exactly as `actor.id` spells it). */
export const get = (id: string): ActorImpl | undefined => {
  if (!id.startsWith("c") || !id.endsWith(suffix)) return undefined
  const digits = id.slice(1, id.length - suffix.length)
  const serial = Number(digits)
  // canonical digits only: "c01.tag" is no connection's id
  if (!Number.isSafeInteger(serial) || String(serial) !== digits) return undefined
  return bySerial.get(serial)
}
