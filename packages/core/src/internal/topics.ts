/**
 * The local half of every backplane: the subscribers of each topic in this
 * instance, and the synchronous delivery to them. `layerMemory` is this
 * alone; the other backplanes add the wire.
 */
import { Effect, type Scope } from "effect"
import type * as Backplane from "../Backplane.ts"

export interface Topics {
  /** Calls the subscribers of `envelope.topic`, in subscription order. */
  readonly deliver: (envelope: Backplane.Envelope) => void
  readonly subscribe: (
    topic: string,
    onEnvelope: (envelope: Backplane.Envelope) => void
  ) => Effect.Effect<void, never, Scope.Scope>
}

export const make = (): Topics => {
  const topics = new Map<string, Set<(envelope: Backplane.Envelope) => void>>()
  return {
    deliver: (envelope) => {
      const handlers = topics.get(envelope.topic)
      if (handlers === undefined) return
      for (const handler of handlers) handler(envelope)
    },
    subscribe: (topic, onEnvelope) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          // a wrapper per subscription, so the same function can subscribe twice
          const handler = (envelope: Backplane.Envelope) => onEnvelope(envelope)
          let handlers = topics.get(topic)
          if (handlers === undefined) topics.set(topic, (handlers = new Set()))
          handlers.add(handler)
          return handler
        }),
        (handler) =>
          Effect.sync(() => {
            const handlers = topics.get(topic)
            handlers?.delete(handler)
            if (handlers?.size === 0) topics.delete(topic)
          })
      ).pipe(Effect.asVoid)
  }
}
