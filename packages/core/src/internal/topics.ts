/**
 * The local half of every backplane: the subscribers of each topic in this
 * instance, and the synchronous delivery to them. `layerMemory` is this
 * alone; the other backplanes add the wire, and may hook a topic's first
 * subscriber and its last (Redis subscribes to the topic's channel then,
 * and unsubscribes).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Backplane from "../Backplane.ts"

export interface Topics {
  /** Calls the subscribers of `envelope.topic`, in subscription order. */
  readonly deliver: (envelope: Backplane.Envelope) => void
  readonly subscribe: (
    topic: string,
    onEnvelope: (envelope: Backplane.Envelope) => void
  ) => Effect.Effect<void, Backplane.BackplaneError, Scope.Scope>
  /** Topics with at least one subscriber here. */
  readonly topics: () => IterableIterator<string>
}

export interface Hooks {
  /** Runs when `topic` gets its first subscriber; a failure undoes the subscription. */
  readonly onFirst?: (topic: string) => Effect.Effect<void, Backplane.BackplaneError>
  /** Runs when `topic` loses its last subscriber. */
  readonly onLast?: (topic: string) => Effect.Effect<void>
}

export const make = (hooks: Hooks = {}): Topics => {
  const topics = new Map<string, Set<(envelope: Backplane.Envelope) => void>>()
  const release = (topic: string, handler: (envelope: Backplane.Envelope) => void) =>
    Effect.suspend(() => {
      const handlers = topics.get(topic)
      if (handlers === undefined || !handlers.delete(handler) || handlers.size > 0) return Effect.void
      topics.delete(topic)
      return hooks.onLast === undefined ? Effect.void : hooks.onLast(topic)
    })
  return {
    deliver: (envelope) => {
      const handlers = topics.get(envelope.topic)
      if (handlers === undefined) return
      for (const handler of handlers) handler(envelope)
    },
    subscribe: (topic, onEnvelope) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          // a wrapper per subscription, so the same function can subscribe twice
          const handler = (envelope: Backplane.Envelope) => onEnvelope(envelope)
          let handlers = topics.get(topic)
          const first = handlers === undefined
          if (handlers === undefined) topics.set(topic, (handlers = new Set()))
          handlers.add(handler)
          if (first && hooks.onFirst !== undefined) {
            yield* restore(hooks.onFirst(topic)).pipe(Effect.onError(() => release(topic, handler)))
          }
          yield* Effect.addFinalizer(() => release(topic, handler))
        })
      ),
    topics: () => topics.keys()
  }
}
