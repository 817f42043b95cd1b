/**
 * The backplane between threads of one process: a `BroadcastChannel` (a
 * web standard that Node and Bun both have), one per backplane name.
 *
 * - `publish` delivers to this instance's own subscribers synchronously
 *   (as `layerMemory` does), then posts the envelope once on the channel;
 *   every other instance with the same name, in any thread of the process,
 *   receives it and delivers it to its subscribers of that topic. So a
 *   broadcast crosses to each other reactor once, whatever its number of
 *   subscribers there, and is framed there once by its hub.
 * - One channel for every topic: each instance receives every envelope
 *   and drops the topics it has no subscriber for. With a reactor per core
 *   (a handful of threads), that costs one structured clone per reactor per
 *   envelope, against a channel per topic (a handle per topic per thread,
 *   kept alive while subscribed).
 * - Order: a channel delivers one sender's messages in the order they were
 *   posted, so one publisher's envelopes reach every subscriber in publish
 *   order.
 * - Flow control: a channel has no backpressure of its own, so a reactor
 *   whose publishers outrun another reactor would queue envelopes for it
 *   without bound (memory, and latency that only grows). Each instance
 *   acknowledges what it has delivered, once per event-loop turn per
 *   sender; a publish waits while some peer is `window` envelopes or more
 *   behind this instance, so the publishing actor (and through its mailbox,
 *   its socket) slows to what the slowest reactor delivers. A peer that
 *   acknowledges nothing for `peerTimeout` while behind (a thread that died)
 *   is no longer waited for; one that closes says so. A new instance says
 *   hello and the others acknowledge it at once, so it knows whom to wait
 *   for from (nearly) its first publish.
 * - Envelopes that arrive in one event-loop turn are delivered together at
 *   its end (`setImmediate`), not one by one as they arrive: Node runs
 *   `process.nextTick` after each message of a channel, and the reactor
 *   uncorks its sockets on the next tick, so delivering one by one would
 *   cost a write per envelope per subscriber instead of a write per
 *   subscriber per turn (measured: 0.15× one reactor's broadcast rate, against
 *   more than 1× once batched).
 * - The channel is `unref`ed: a backplane alone keeps no thread alive.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Backplane from "../Backplane.ts"
import * as Topics from "./topics.ts"

export interface Options {
  readonly channel: string
  /** Envelopes a peer may be behind this instance before a publish waits for it. */
  readonly window: number
  /** How long a peer that is behind may acknowledge nothing before it is no longer waited for (ms). */
  readonly peerTimeout: number
}

/**
 * On the wire: an envelope (from, its sequence number), an acknowledgement
 * (to, by, up to), a goodbye, and a hello (a new instance; every other one
 * acknowledges it at once, so that it waits for them from its first publish).
 */
type Wire =
  | readonly [0, string, number, Backplane.Envelope]
  | readonly [1, string, string, number]
  | readonly [2, string]
  | readonly [3, string]

const isEnvelope = (data: unknown): data is Backplane.Envelope =>
  typeof data === "object" &&
  data !== null &&
  "_tag" in data &&
  "topic" in data &&
  typeof data.topic === "string" &&
  (data._tag === "Broadcast" || data._tag === "Presence")

const isWire = (data: unknown): data is Wire =>
  Array.isArray(data) &&
  ((data[0] === 0 && data.length === 4 && typeof data[1] === "string" && typeof data[2] === "number") ||
    (data[0] === 1 && data.length === 4 && typeof data[1] === "string" && typeof data[2] === "string") ||
    ((data[0] === 2 || data[0] === 3) && data.length === 2 && typeof data[1] === "string"))

/** `setImmediate` where the runtime has it (Node, Bun): once per event-loop turn, after the turn's messages. */
const afterTurn: (f: () => void) => void =
  typeof globalThis.setImmediate === "function" ? (f) => globalThis.setImmediate(f) : (f) => setTimeout(f, 0)

export const layer = (options: Options): Layer.Layer<Backplane.Backplane> =>
  Layer.effect(Backplane.Backplane)(
    Effect.gen(function* () {
      const { channel: name, window, peerTimeout } = options
      const topics = Topics.make()
      const deliver = topics.deliver
      const id = crypto.randomUUID()
      let sent = 0
      /** Peers that acknowledged this instance, and how far. */
      const peers = new Map<string, { acked: number }>()
      /** Per sender, the last envelope delivered here, and whether it still needs acknowledging. */
      const delivered = new Map<string, number>()
      const toAck = new Set<string>()
      /** Envelopes received this turn, delivered together once it ends (see the module's notes). */
      let pending: Array<Backplane.Envelope> = []
      let flushing = false
      const wakers = new Set<() => void>()
      const wake = () => {
        // a woken publisher may wait again at once: it waits for the next acknowledgement, not this one
        const woken = [...wakers]
        wakers.clear()
        for (const waker of woken) waker()
      }

      const channel = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const made = new BroadcastChannel(name)
          const flush = () => {
            flushing = false
            const envelopes = pending
            pending = []
            for (const envelope of envelopes) deliver(envelope)
            for (const sender of toAck) made.postMessage([1, sender, id, delivered.get(sender) ?? 0] satisfies Wire)
            toAck.clear()
          }
          made.onmessage = (event: MessageEvent) => {
            const data: unknown = event.data
            if (!isWire(data)) return
            switch (data[0]) {
              case 0: {
                delivered.set(data[1], data[2])
                if (isEnvelope(data[3])) pending.push(data[3])
                toAck.add(data[1])
                if (!flushing) {
                  flushing = true
                  afterTurn(flush)
                }
                return
              }
              case 1: {
                if (data[1] !== id) return
                const peer = peers.get(data[2])
                if (peer === undefined) peers.set(data[2], { acked: data[3] })
                else if (data[3] > peer.acked) peer.acked = data[3]
                else return
                wake()
                return
              }
              case 2: {
                delivered.delete(data[1])
                toAck.delete(data[1])
                if (peers.delete(data[1])) wake()
                return
              }
              case 3: {
                made.postMessage([1, data[1], id, delivered.get(data[1]) ?? 0] satisfies Wire)
                return
              }
            }
          }
          // `unref` is Node's (and Bun's); a runtime without it keeps the thread alive until the scope closes
          const unref = (made as { unref?: () => void }).unref
          unref?.call(made)
          made.postMessage([3, id] satisfies Wire)
          return made
        }),
        (made) =>
          Effect.sync(() => {
            made.postMessage([2, id] satisfies Wire)
            made.close()
            wake()
          })
      )

      /** A peer `window` or more envelopes behind, if any. */
      const laggard = (): string | undefined => {
        for (const [peer, state] of peers) if (sent - state.acked >= window) return peer
        return undefined
      }

      const ackOrTimeout = Effect.callback<void>((resume) => {
        const waker = () => resume(Effect.void)
        wakers.add(waker)
        return Effect.sync(() => wakers.delete(waker))
      }).pipe(Effect.timeoutOption(peerTimeout))

      /** Waits until no peer is `window` behind; stops waiting for a peer silent for `peerTimeout`. */
      const room: Effect.Effect<void> = Effect.suspend(() => {
        const peer = laggard()
        const before = peer === undefined ? undefined : peers.get(peer)
        if (peer === undefined || before === undefined) return Effect.void
        const acked = before.acked
        return ackOrTimeout.pipe(
          Effect.flatMap((woken) => {
            const now = peers.get(peer)
            if (woken._tag === "Some" || now === undefined || now.acked !== acked) return Effect.void
            peers.delete(peer)
            return Metric.update(Backplane.peersDroppedTotal, 1).pipe(
              Effect.andThen(
                Effect.logWarning(
                  `thread backplane "${name}": a peer acknowledged nothing for ${peerTimeout} ms while ${sent - acked} envelopes behind; no longer waiting for it`
                )
              )
            )
          }),
          Effect.andThen(room)
        )
      })

      const post = (envelope: Backplane.Envelope) =>
        Effect.try({
          // posted first: an envelope that cannot cross (a DataCloneError) fails before anyone got it
          try: () => {
            channel.postMessage([0, id, sent + 1, envelope] satisfies Wire)
            sent++
          },
          catch: (cause) =>
            new Backplane.BackplaneError({
              message: `could not post on the thread backplane "${name}": ${cause instanceof Error ? cause.message : String(cause)}`,
              cause
            })
        }).pipe(Effect.andThen(Effect.sync(() => deliver(envelope))))

      return Backplane.Backplane.of({
        publish: (envelope) =>
          Effect.suspend(() =>
            laggard() === undefined
              ? post(envelope)
              : Metric.update(Backplane.flowWaitsTotal, 1).pipe(Effect.andThen(room), Effect.andThen(post(envelope)))
          ),
        subscribe: topics.subscribe
      })
    })
  )
