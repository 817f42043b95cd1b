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
 * - The channel is `unref`ed: a backplane alone keeps no thread alive.
 */
import { Effect, Layer } from "effect"
import * as Backplane from "../Backplane.ts"
import * as Topics from "./topics.ts"

const isEnvelope = (data: unknown): data is Backplane.Envelope =>
  typeof data === "object" &&
  data !== null &&
  "_tag" in data &&
  "topic" in data &&
  typeof data.topic === "string" &&
  (data._tag === "Broadcast" || data._tag === "Joined" || data._tag === "Left")

export const layer = (name: string): Layer.Layer<Backplane.Backplane> =>
  Layer.effect(Backplane.Backplane)(
    Effect.gen(function* () {
      const topics = Topics.make()
      const deliver = topics.deliver
      const channel = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const made = new BroadcastChannel(name)
          made.onmessage = (event: MessageEvent) => {
            if (isEnvelope(event.data)) deliver(event.data)
          }
          // `unref` is Node's (and Bun's); a runtime without it keeps the thread alive until the scope closes
          const unref = (made as { unref?: () => void }).unref
          unref?.call(made)
          return made
        }),
        (made) => Effect.sync(() => made.close())
      )
      return Backplane.Backplane.of({
        publish: (envelope) =>
          Effect.try({
            // posted first: an envelope that cannot cross (a DataCloneError) fails before anyone got it
            try: () => channel.postMessage(envelope),
            catch: (cause) =>
              new Backplane.BackplaneError({
                message: `could not post on the thread backplane "${name}": ${cause instanceof Error ? cause.message : String(cause)}`,
                cause
              })
          }).pipe(Effect.andThen(Effect.sync(() => deliver(envelope)))),
        subscribe: topics.subscribe
      })
    })
  )
