/**
 * The wire format of the Redis backplane: one Redis message per envelope,
 * on the channel of its topic.
 *
 *   byte 0       kind: 0 broadcast of text, 1 broadcast of bytes, 2 presence
 *   bytes 1–4    length of the header (unsigned, big-endian)
 *   header       JSON: the sending instance (`i`), origin node (`o`), topic
 *                (`t`), and `x` (exclude) and `y` (to) for a broadcast or `v` (version)
 *                and `s` (signal) for presence
 *   rest         the broadcast's payload: UTF-8 text or the bytes as sent
 *
 * A payload is never JSON-encoded or base64'd: a binary broadcast crosses as
 * its own bytes, and a text one as its UTF-8. A message that is not in
 * this format (another program on the channel) decodes to `undefined`.
 */
import type { Backplane } from "@switchboard/core"

const Text = 0
const Bytes = 1
const Presence = 2

export interface Decoded {
  /** The backplane instance that published it (its own echo is dropped). */
  readonly instance: string
  readonly envelope: Backplane.Envelope
}

/** Encodes `envelope`; throws (a `TypeError`) when presence metadata cannot become JSON. */
export const encode = (instance: string, envelope: Backplane.Envelope): Buffer => {
  if (envelope._tag === "Presence") {
    const header = Buffer.from(
      JSON.stringify({ i: instance, o: envelope.origin, t: envelope.topic, v: envelope.version, s: envelope.signal })
    )
    return Buffer.concat([prefix(Presence, header.byteLength), header])
  }
  const fields: Record<string, string> = { i: instance, o: envelope.origin, t: envelope.topic }
  if (envelope.exclude !== undefined) fields.x = envelope.exclude
  if (envelope.to !== undefined) fields.y = envelope.to
  const header = Buffer.from(JSON.stringify(fields))
  const message = envelope.message
  const payload =
    typeof message === "string"
      ? Buffer.from(message)
      : Buffer.from(message.buffer, message.byteOffset, message.byteLength)
  return Buffer.concat([prefix(typeof message === "string" ? Text : Bytes, header.byteLength), header, payload])
}

const prefix = (kind: number, headerLength: number): Buffer => {
  const out = Buffer.allocUnsafe(5)
  out[0] = kind
  out.writeUInt32BE(headerLength, 1)
  return out
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/** Decodes a message of the channel; `undefined` for anything not in this format. */
export const decode = (data: Buffer): Decoded | undefined => {
  if (data.byteLength < 5) return undefined
  const kind = data[0]
  const headerLength = data.readUInt32BE(1)
  if (kind === undefined || kind > Presence || 5 + headerLength > data.byteLength) return undefined
  let header: unknown
  try {
    header = JSON.parse(data.toString("utf8", 5, 5 + headerLength))
  } catch {
    return undefined
  }
  if (!isRecord(header) || typeof header.i !== "string" || typeof header.o !== "string") return undefined
  if (typeof header.t !== "string") return undefined
  const base = { instance: header.i, origin: header.o, topic: header.t }
  if (kind === Presence) {
    if (typeof header.v !== "number" || !isSignal(header.s)) return undefined
    return {
      instance: base.instance,
      envelope: { _tag: "Presence", topic: base.topic, origin: base.origin, version: header.v, signal: header.s }
    }
  }
  const body = data.subarray(5 + headerLength)
  // the bytes get their own buffer: the subscriber's read buffer is reused by the client
  const message = kind === Text ? body.toString("utf8") : new Uint8Array(body)
  return {
    instance: base.instance,
    envelope: {
      _tag: "Broadcast",
      topic: base.topic,
      origin: base.origin,
      message,
      ...(typeof header.x === "string" ? { exclude: header.x } : {}),
      ...(typeof header.y === "string" ? { to: header.y } : {})
    }
  }
}

// `meta: undefined` does not survive JSON: a member without it had none
const isMember = (value: unknown): value is Backplane.Member =>
  isRecord(value) && typeof value.id === "string" && typeof value.node === "string"

const isSignal = (value: unknown): value is Backplane.PresenceSignal => {
  if (!isRecord(value)) return false
  switch (value._tag) {
    case "Joined":
    case "Left":
      return typeof value.topic === "string" && isMember(value.member)
    case "Heartbeat":
    case "Bye":
      return true
    case "Sync":
      return value.to === undefined || typeof value.to === "string"
    case "State":
      return (
        Array.isArray(value.members) &&
        value.members.every(
          (entry: unknown) => isRecord(entry) && typeof entry.topic === "string" && isMember(entry.member)
        )
      )
    default:
      return false
  }
}
