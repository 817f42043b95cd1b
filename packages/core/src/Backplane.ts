/**
 * The backplane carries hub traffic between hubs: between processes on one
 * machine, between machines. A hub publishes every broadcast and every
 * join/leave through it and listens on it for the topics it has members in,
 * so a hub's fan-out does not care where a publisher runs.
 *
 * Two methods, so that a backplane is easy to write: `publish` an envelope on
 * a topic, and `subscribe` to a topic for as long as a scope lives.
 * `layerMemory` (one thread) is the default; `layerThreads` joins the
 * threads of one process (the reactors of `NodeReactors`, one per core);
 * `@switchboard/redis` spans machines. Every backplane passes the conformance suite in
 * `@switchboard/testing` (`BackplaneConformance`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as ChannelBackplane from "./internal/channelBackplane.ts"
import * as Settings from "./internal/settings.ts"
import * as Topics from "./internal/topics.ts"
import type { Message } from "./Message.ts"

/**
 * A member of a topic, as presence reports it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Member {
  /** The connection id (unique within its node). */
  readonly id: string
  /** The node (hub instance) the connection lives on. */
  readonly node: string
  /** What the member joined with (a nickname, a user id, …). */
  readonly meta: unknown
}

/**
 * A member of a topic on some node, as a presence `State` lists it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PresenceEntry {
  readonly topic: string
  readonly member: Member
}

/**
 * What hubs tell each other about presence (docs/adr/0006): a member
 * joined (or changed its metadata) or left a topic, a heartbeat, a request
 * for state (`to` one node, or everyone), a node's whole membership, and a
 * hub that stops.
 *
 * @since 0.1.0
 * @category models
 */
export type PresenceSignal =
  | { readonly _tag: "Joined"; readonly topic: string; readonly member: Member }
  | { readonly _tag: "Left"; readonly topic: string; readonly member: Member }
  | { readonly _tag: "Heartbeat" }
  | { readonly _tag: "Sync"; readonly to?: string }
  | { readonly _tag: "State"; readonly members: ReadonlyArray<PresenceEntry> }
  | { readonly _tag: "Bye" }

/**
 * What travels on a topic: a broadcast message, or a presence signal (on
 * the hubs' presence topic). `origin` is the publishing hub's node id;
 * `exclude` is a connection id on that node that must not receive the
 * message (`broadcastFrom`); `to` names the one connection that must
 * (`sendTo`); `version` counts the origin's presence changes.
 *
 * @since 0.1.0
 * @category models
 */
export type Envelope =
  | {
      readonly _tag: "Broadcast"
      readonly topic: string
      readonly origin: string
      readonly message: Message
      readonly exclude?: string
      /** A connection id on the receiving node: only it gets the message (`Hub.sendTo`, on the node's own topic). */
      readonly to?: string
    }
  | {
      readonly _tag: "Presence"
      readonly topic: string
      readonly origin: string
      readonly version: number
      readonly signal: PresenceSignal
    }

/**
 * A backplane could not publish or subscribe (its connection is down, a
 * message could not be encoded).
 *
 * @since 0.1.0
 * @category errors
 */
export class BackplaneError extends Data.TaggedError("BackplaneError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The backplane service.
 *
 * @since 0.1.0
 * @category services
 */
export class Backplane extends Context.Service<
  Backplane,
  {
    /**
     * Delivers `envelope` to every subscriber of `envelope.topic`, on every
     * node, the publisher's own included. Envelopes of one publisher arrive
     * in publish order.
     */
    readonly publish: (envelope: Envelope) => Effect.Effect<void, BackplaneError>
    /**
     * Calls `onEnvelope` for every envelope published on `topic` until the
     * scope closes. `onEnvelope` is synchronous and must not throw.
     */
    readonly subscribe: (
      topic: string,
      onEnvelope: (envelope: Envelope) => void
    ) => Effect.Effect<void, BackplaneError, Scope.Scope>
  }
>()("@switchboard/core/Backplane") {}

/**
 * The local half of a backplane, for writing one: the subscribers of each
 * topic on this instance and the synchronous delivery to them, with hooks
 * for a topic's first subscriber (subscribe on the wire; its failure fails
 * the subscription) and its last (unsubscribe). `deliver` calls the
 * subscribers of `envelope.topic` in subscription order.
 *
 * @example
 * ```ts
 * import { Backplane } from "@switchboard/core"
 * import * as Effect from "effect/Effect"
 *
 * const local = Backplane.makeLocal({
 *   onFirst: (topic) => Effect.log(`first subscriber of ${topic}`),
 *   onLast: (topic) => Effect.log(`no subscriber of ${topic} left`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLocal = (hooks?: LocalHooks): Local => Topics.make(hooks)

/**
 * The local half of a backplane (see `makeLocal`).
 *
 * @since 0.1.0
 * @category models
 */
export type Local = Topics.Topics

/**
 * What a backplane does when a topic gets its first local subscriber and
 * loses its last (see `makeLocal`).
 *
 * @since 0.1.0
 * @category models
 */
export type LocalHooks = Topics.Hooks

/**
 * A backplane within one process: `publish` calls the topic's subscribers
 * synchronously, in subscription order.
 *
 * @example
 * ```ts
 * import * as Layer from "effect/Layer"
 * import { Backplane, Hub } from "@switchboard/core"
 *
 * const HubLive = Hub.layer().pipe(Layer.provide(Backplane.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Backplane> = Layer.sync(Backplane)(() => {
  const topics = Topics.make()
  return Backplane.of({
    publish: (envelope) => Effect.sync(() => topics.deliver(envelope)),
    subscribe: topics.subscribe
  })
})

/**
 * Thread-backplane publishes that waited for a peer thread a whole window
 * behind (see `layerThreads`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const flowWaitsTotal = Metric.counter("switchboard_backplane_flow_waits_total", {
  description: "Thread-backplane publishes that waited for a peer thread a whole window behind"
})

/**
 * Peer threads no longer waited for: behind, and silent for the peer
 * timeout (a thread that died).
 *
 * @since 0.1.0
 * @category metrics
 */
export const peersDroppedTotal = Metric.counter("switchboard_backplane_peers_dropped_total", {
  description: "Thread-backplane peers that stopped acknowledging while behind (a thread that died)"
})

/**
 * The name of the channel that `layerThreads` uses by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultChannel = "switchboard:backplane"

/**
 * A backplane between the threads of one process, with no server: every
 * instance with the same `channel` name, in any thread, gets every
 * envelope (a `BroadcastChannel`). This is what joins the hubs of several
 * reactors on one port (`NodeReactors`).
 *
 * - The publisher's own subscribers are called synchronously; each other
 *   thread receives the envelope once (a structured clone), in publish
 *   order, and its hub frames a broadcast once for all its subscribers.
 * - What crosses must be cloneable: a member's metadata with a function in
 *   it fails the `join` with a `BackplaneError`, and reaches no one.
 * - Each thread receives every topic's envelopes and drops those it has no
 *   subscriber for, so this suits a handful of threads (a reactor per
 *   core), not hundreds.
 * - Flow control: every thread acknowledges what it delivered (once per
 *   event-loop turn), and a publish waits while another thread is `window`
 *   envelopes (default 256) or more behind, so fast publishers on one
 *   reactor slow to what the slowest reactor delivers instead of queueing
 *   without bound. At most `window` envelopes per peer are in flight. A thread
 *   that acknowledges nothing for `peerTimeout` (default 5 s) while behind
 *   (it died) is no longer waited for. Metrics:
 *   `switchboard_backplane_flow_waits_total`,
 *   `switchboard_backplane_peers_dropped_total`. A bad option fails the
 *   layer with a `BackplaneError`.
 *
 * @example
 * ```ts
 * import * as Layer from "effect/Layer"
 * import { Backplane, Hub } from "@switchboard/core"
 *
 * // in every reactor thread: their hubs share broadcasts and presence events
 * const HubLive = Hub.layer().pipe(Layer.provide(Backplane.layerThreads()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerThreads = (
  options: {
    readonly channel?: string
    /** Envelopes another thread may be behind before a publish waits for it (default 256). */
    readonly window?: number
    /** How long a thread that is behind may acknowledge nothing before it is no longer waited for (default 5 s). */
    readonly peerTimeout?: Duration.Input
  } = {}
): Layer.Layer<Backplane, BackplaneError> =>
  Layer.unwrap(
    Effect.try({
      try: () =>
        ChannelBackplane.layer({
          channel: options.channel ?? defaultChannel,
          window: Settings.positiveInteger(options.window ?? 256, "window"),
          peerTimeout: Settings.durationMillis(options.peerTimeout, 5_000, "peerTimeout")
        }),
      catch: (cause) =>
        new BackplaneError({
          message: `Backplane.layerThreads: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause
        })
    })
  )
