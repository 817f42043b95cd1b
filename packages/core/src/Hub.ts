/**
 * The hub: topics (rooms) and their fan-out. A connection subscribes to a
 * topic; a broadcast on the topic reaches every subscriber, wherever it was
 * published, through the `Backplane`.
 *
 * - A broadcast is encoded and framed once per process (`PreparedMessage`);
 *   the same bytes are written to every subscriber's socket.
 * - The hub never waits on a subscriber: writes are synchronous and
 *   coalesced by the reactor. A subscriber whose socket has more than
 *   `maxBufferedBytes` unsent is a slow consumer: the message is dropped for
 *   it (`"drop"`), or it is closed with 1008 or 1013 (`{ close: code }`).
 *   Either way it is counted in the `switchboard_hub_slow_consumer_total`
 *   metric, and the memory it holds stays bounded.
 * - Messages of one publisher reach every subscriber in publish order.
 * - A connection holds at most one subscription per topic; `unsubscribe`
 *   releases it, and the end of the connection releases all of them. The hub
 *   keeps, per connection, the set of topics it is in and registers one
 *   connection finalizer per (hub, connection), the first time: switching
 *   rooms or re-joining costs no memory that outlives the subscriptions.
 * - `join` is `subscribe` with presence: the member's metadata is listed by
 *   `members`, and every other present member gets a `Presence` event
 *   (`Joined`/`Left`) in its `onInfo`. Presence work is one pass over the
 *   topic's local subscribers per event.
 * - Joining a topic again with equal metadata (Effect's `Equal.equals`:
 *   plain objects and arrays compare by content, so metadata must not be
 *   mutated once joined) is a no-op, with no presence event. With
 *   other metadata the member is updated in place (same position in
 *   `members`) and one `Joined` carrying the new metadata is published: a
 *   `Joined` for a member already known is an update. `join` after
 *   `subscribe` upgrades to a member with one `Joined`; `subscribe` after
 *   `join` is a no-op and keeps the membership. Leaving (`unsubscribe` or
 *   the end of the connection) announces one `Left`, once.
 * - Presence spans nodes: every hub keeps the members of every topic on
 *   every node, from the presence signals all hubs exchange on the
 *   backplane's `presenceTopic` (changes numbered per node, heartbeats, a
 *   state on request; docs/adr/0006). A hub that starts learns the members
 *   already there; a lost change heals within a heartbeat; a node that
 *   falls silent for `presence.timeout` is down and its members leave, one
 *   `Left` each; a hub whose scope closes says so and its members leave at
 *   once. Every hub holds every member of the cluster.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import * as Backplane from "./Backplane.ts"
import type * as CloseCode from "./CloseCode.ts"
import * as CloseReason from "./CloseReason.ts"
import type { Connection } from "./Connection.ts"
import { ActorImpl } from "./internal/actor.ts"
import * as Directory from "./internal/directory.ts"
import * as PresenceTracker from "./internal/presence.ts"
import { stats } from "./internal/serverStats.ts"
import * as Settings from "./internal/settings.ts"
import type { Message } from "./Message.ts"
import * as PreparedMessage from "./PreparedMessage.ts"

/**
 * A presence event, delivered to `onInfo` of the members that `join`ed a
 * topic when another member joins or leaves it (on any node). A `Joined` for
 * a member already present means it joined again with new metadata.
 *
 * @since 0.1.0
 * @category models
 */
export type Presence =
  | { readonly _tag: "Joined"; readonly topic: string; readonly member: Backplane.Member }
  | { readonly _tag: "Left"; readonly topic: string; readonly member: Backplane.Member }

/**
 * The backplane topic on which hubs exchange presence (reserved: do not
 * use it as a room).
 *
 * @since 0.1.0
 * @category constants
 */
export const presenceTopic: string = PresenceTracker.topic

/**
 * Options of the hub.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Unsent bytes a subscriber may hold before the slow-consumer policy applies. Default 1 MiB. */
  readonly maxBufferedBytes?: number
  /** `"drop"` (default) skips the message for that subscriber; `{ close }` closes it with 1008 or 1013. */
  readonly slowConsumer?: "drop" | { readonly close: typeof CloseCode.PolicyViolation | typeof CloseCode.TryAgainLater }
  /**
   * Presence across nodes: how often this hub says it is alive (default
   * 1 s), and how long another node may say nothing before it is down and
   * its members leave (default 5 s; at least the heartbeat). A dead node
   * drops out of every list within `timeout` plus one `heartbeat`.
   */
  readonly presence?: { readonly heartbeat?: Duration.Input; readonly timeout?: Duration.Input }
}

/**
 * Slow-consumer events, by `policy` attribute (`drop` or `close`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const slowConsumerTotal = Metric.counter("switchboard_hub_slow_consumer_total", {
  description: "Hub messages dropped for, or connections closed as, slow consumers"
})

/**
 * Broadcasts framed (once each, per process).
 *
 * @since 0.1.0
 * @category metrics
 */
export const framedTotal = Metric.counter("switchboard_hub_framed_total", {
  description: "Hub broadcasts encoded and framed; each is written to all local subscribers"
})

/**
 * Other nodes this hub hears presence from (a gauge).
 *
 * @since 0.1.0
 * @category metrics
 */
export const presenceNodes = PresenceTracker.nodesGauge

/**
 * Nodes found down: no presence signal for the timeout; their members left.
 *
 * @since 0.1.0
 * @category metrics
 */
export const presenceNodesDownTotal = PresenceTracker.nodesDownTotal

/**
 * Presence states asked of another node after a gap in its changes (a
 * message lost while the backplane was away).
 *
 * @since 0.1.0
 * @category metrics
 */
export const presenceSyncsTotal = PresenceTracker.syncsTotal

/**
 * The hub service. Behaviours usually reach it through the module's
 * accessors (`Hub.subscribe`, `Hub.broadcast`, …); `yield* Hub.Hub` gives
 * the service itself, with its `node` id.
 *
 * @since 0.1.0
 * @category services
 */
export class Hub extends Context.Service<
  Hub,
  {
    /** This hub's node id (unique per hub instance). */
    readonly node: string
    /** Subscribes `conn` to `topic` until it unsubscribes or ends. Subscribing twice (or after `join`) is a no-op. */
    readonly subscribe: (topic: string, conn: Connection<never>) => Effect.Effect<void, Backplane.BackplaneError>
    /**
     * Subscribes with presence: `meta` is listed by `members`, the room is
     * told (`Joined`), and `conn` is told when others join or leave. Joining
     * again with equal `meta` is a no-op; with other `meta` it updates the
     * member and tells the room once (`Joined` with the new `meta`).
     */
    readonly join: (
      topic: string,
      conn: Connection<Presence>,
      meta?: unknown
    ) => Effect.Effect<void, Backplane.BackplaneError>
    /** Ends a subscription (a member that joined is announced as `Left`). */
    readonly unsubscribe: (topic: string, conn: Connection<never>) => Effect.Effect<void, Backplane.BackplaneError>
    /** Sends `message` to every subscriber of `topic`. */
    readonly broadcast: (topic: string, message: Message) => Effect.Effect<void, Backplane.BackplaneError>
    /** Sends `message` to every subscriber of `topic` but `sender`. */
    readonly broadcastFrom: (
      topic: string,
      sender: Connection<never>,
      message: Message
    ) => Effect.Effect<void, Backplane.BackplaneError>
    /**
     * The members of `topic` that `join`ed, on every node, with their
     * metadata: this node's first, in join order, then each other node's.
     * Other nodes' members are as this hub last heard (see the module's
     * notes on presence).
     */
    readonly members: (topic: string) => Effect.Effect<ReadonlyArray<Backplane.Member>>
    /** Topics with at least one local subscriber. */
    readonly topics: Effect.Effect<ReadonlyArray<string>>
    /**
     * Where `sendTo` finds `conn` from any node: `<node>/<connection id>`
     * (a presence member's is `addressOf(member)`).
     */
    readonly address: (conn: Connection<never>) => string
    /**
     * Sends `message` to the one connection at `address`, on this node or
     * another: written at once if it is here, else through the backplane to
     * its node. A connection that is gone (or an address of no node) is
     * skipped, as a broadcast skips it; the slow-consumer policy applies.
     */
    readonly sendTo: (address: string, message: Message) => Effect.Effect<void, Backplane.BackplaneError>
    /** Files `conn` under `user` until it ends (`sendToUser`); a connection may be filed under several. */
    readonly identify: (conn: Connection<never>, user: string) => Effect.Effect<void, Backplane.BackplaneError>
    /** Sends `message` to every connection filed under `user`, on every node. */
    readonly sendToUser: (user: string, message: Message) => Effect.Effect<void, Backplane.BackplaneError>
  }
>()("@switchboard/core/Hub") {}

/**
 * The address of a presence member, for `sendTo`.
 *
 * @since 0.1.0
 * @category addressing
 */
export const addressOf = (member: { readonly node: string; readonly id: string }): string =>
  `${member.node}/${member.id}`

/** The topic of a node's direct messages (`sendTo`), and of a user's connections (`identify`). */
const nodeTopic = (node: string): string => `~node/${node}`
const userTopic = (user: string): string => `~user/${user}`

interface Subscription {
  /** Undefined for a plain subscriber; replaced when the member joins again with other metadata. */
  member: Backplane.Member | undefined
}

interface Topic {
  readonly subscribers: Map<ActorImpl, Subscription>
  readonly scope: Scope.Closeable
}

const actorOf = (conn: Connection<never>): ActorImpl => {
  if (conn instanceof ActorImpl) return conn
  throw new TypeError("Hub: not a connection of a Switchboard server")
}

let nodeCounter = 0

/**
 * Makes a hub on the current `Backplane`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Hub["Service"], Backplane.BackplaneError, Backplane.Backplane | Scope.Scope> =>
  Effect.gen(function* () {
    const backplane = yield* Backplane.Backplane
    const heartbeat = Settings.durationMillis(options.presence?.heartbeat, 1_000, "Hub presence.heartbeat")
    const timeout = Settings.durationMillis(options.presence?.timeout, 5_000, "Hub presence.timeout")
    if (timeout < heartbeat) {
      return yield* Effect.die(new RangeError("Hub presence.timeout: must be at least presence.heartbeat"))
    }
    const context = yield* Effect.context<never>()
    const layerScope = yield* Effect.scope
    const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024
    const policy = options.slowConsumer ?? "drop"
    const node = `${globalThis.crypto.randomUUID().slice(0, 8)}-${++nodeCounter}`
    const topics = new Map<string, Topic>()
    const drops = Metric.withAttributes(slowConsumerTotal, { policy: "drop" })
    const closes = Metric.withAttributes(slowConsumerTotal, { policy: "close" })

    /** A broadcast to the backplane, counted (and its failure too). */
    const publish = (envelope: Backplane.Envelope): Effect.Effect<void, Backplane.BackplaneError> =>
      Effect.onError(
        Effect.suspend(() => {
          stats.backplanePublished++
          return backplane.publish(envelope)
        }),
        () =>
          Effect.sync(() => {
            stats.backplaneErrors++
          })
      )

    /** One connection of this node gets `message`, under the slow-consumer policy; false if it is not here and open. */
    const writeTo = (id: string, message: Message): boolean => {
      const actor = Directory.get(id)
      if (actor === undefined || !actor.isOpen) return false
      if (actor.bufferedAmount > maxBufferedBytes) {
        if (policy === "drop") drops.updateUnsafe(1, context)
        else {
          closes.updateUnsafe(1, context)
          actor.closeWith(policy.close, "slow consumer", CloseReason.local(policy.close, "slow consumer"))
        }
        return false
      }
      framedTotal.updateUnsafe(1, context)
      return actor.sendPreparedUnsafe(PreparedMessage.make(message))
    }

    const deliver = (topic: Topic, envelope: Backplane.Envelope): void => {
      if (envelope._tag !== "Broadcast") return
      stats.backplaneReceived++
      const exclude = envelope.origin === node ? envelope.exclude : undefined
      let prepared: PreparedMessage.PreparedMessage | undefined
      for (const actor of topic.subscribers.keys()) {
        if (exclude !== undefined && actor.id === exclude) continue
        if (!actor.isOpen) continue
        if (prepared === undefined) {
          prepared = PreparedMessage.make(envelope.message)
          framedTotal.updateUnsafe(1, context)
        }
        if (actor.bufferedAmount > maxBufferedBytes) {
          if (policy === "drop") {
            drops.updateUnsafe(1, context)
          } else {
            closes.updateUnsafe(1, context)
            actor.closeWith(policy.close, "slow consumer", CloseReason.local(policy.close, "slow consumer"))
          }
          continue
        }
        actor.sendPreparedUnsafe(prepared)
      }
    }

    const announce = (change: PresenceTracker.Change, own: boolean): void => {
      const topic = topics.get(change.topic)
      if (topic === undefined) return
      const event: Presence = { _tag: change._tag, topic: change.topic, member: change.member }
      for (const [actor, subscription] of topic.subscribers) {
        if (subscription.member === undefined) continue
        if (own && actor.id === change.member.id) continue
        actor.tellUnsafe(event)
      }
    }

    const localMembers = (): ReadonlyArray<Backplane.PresenceEntry> => {
      const entries: Array<Backplane.PresenceEntry> = []
      for (const [name, topic] of topics) {
        for (const subscription of topic.subscribers.values()) {
          if (subscription.member !== undefined) entries.push({ topic: name, member: subscription.member })
        }
      }
      return entries
    }

    const tracker = yield* PresenceTracker.make({ node, heartbeat, timeout, localMembers, announce })
    // this node's direct messages (`sendTo` from other nodes)
    yield* backplane.subscribe(nodeTopic(node), (envelope) => {
      if (envelope._tag === "Broadcast" && envelope.to !== undefined) {
        stats.backplaneReceived++
        writeTo(envelope.to, envelope.message)
      }
    })

    const topicFor = (name: string): Effect.Effect<Topic, Backplane.BackplaneError> =>
      Effect.suspend(() => {
        const existing = topics.get(name)
        if (existing !== undefined) return Effect.succeed(existing)
        return Effect.gen(function* () {
          const scope = yield* Scope.fork(layerScope)
          const topic: Topic = { subscribers: new Map(), scope }
          topics.set(name, topic)
          yield* backplane
            .subscribe(name, (envelope) => deliver(topic, envelope))
            .pipe(
              Scope.provide(scope),
              Effect.onError(() =>
                Effect.andThen(
                  Effect.sync(() => {
                    stats.backplaneErrors++
                    topics.delete(name)
                  }),
                  Scope.close(scope, Exit.void)
                )
              )
            )
          return topic
        })
      })

    /** The topics each connection is in, in this hub: its one record, gone with its last topic. */
    const topicsOf = new Map<ActorImpl, Set<string>>()
    /** Connections that carry this hub's finalizer; weak, so that it holds no connection alive. */
    const finalized = new WeakSet<ActorImpl>()

    const leave = (name: string, actor: ActorImpl): Effect.Effect<void, Backplane.BackplaneError> =>
      Effect.suspend(() => {
        const names = topicsOf.get(actor)
        if (names?.delete(name) && names.size === 0) topicsOf.delete(actor)
        const topic = topics.get(name)
        const subscription = topic?.subscribers.get(actor)
        if (topic === undefined || subscription === undefined) return Effect.void
        topic.subscribers.delete(actor)
        const announced =
          subscription.member === undefined
            ? Effect.void
            : tracker.publish({ _tag: "Left", topic: name, member: subscription.member })
        if (topic.subscribers.size > 0) return announced
        topics.delete(name)
        return Effect.andThen(announced, Scope.close(topic.scope, Exit.void))
      })

    /** The connection ended: leave every topic it is still in (none after its last `unsubscribe`). */
    const leaveAll = (actor: ActorImpl): Effect.Effect<void> =>
      Effect.suspend(() => {
        const names = topicsOf.get(actor)
        if (names === undefined) return Effect.void
        return Effect.forEach([...names], (name) => Effect.ignore(leave(name, actor)), { discard: true })
      })

    /**
     * Records `name` for `actor`. The connection's finalizers cannot be
     * removed, so the hub adds one per connection, once, and it reads the
     * record when it runs: re-subscribing adds nothing to the connection.
     */
    const track = (name: string, actor: ActorImpl): Effect.Effect<void> => {
      let names = topicsOf.get(actor)
      if (names === undefined) topicsOf.set(actor, (names = new Set()))
      names.add(name)
      if (finalized.has(actor)) return Effect.void
      finalized.add(actor)
      return actor.addFinalizer(leaveAll(actor))
    }

    const add = (name: string, actor: ActorImpl, member: Backplane.Member | undefined) =>
      Effect.gen(function* () {
        if (!actor.isOpen) return
        let topic = yield* topicFor(name)
        // the topic was released while it was being subscribed (another member joined and left it
        // meanwhile): joining it would leave this member in a topic no one delivers to; take a fresh one
        while (topics.get(name) !== topic) {
          if (!actor.isOpen) return
          topic = yield* topicFor(name)
        }
        const existing = topic.subscribers.get(actor)
        if (existing !== undefined) {
          // subscribe after join keeps the membership; join again with equal meta changes nothing
          if (member === undefined) return
          if (existing.member !== undefined && Equal.equals(existing.member.meta, member.meta)) return
          existing.member = member
        } else if (!actor.isOpen) {
          // it closed while the topic was being subscribed: release a topic made for it alone
          if (topic.subscribers.size === 0 && topics.get(name) === topic) {
            topics.delete(name)
            yield* Scope.close(topic.scope, Exit.void)
          }
          return
        } else {
          topic.subscribers.set(actor, { member })
          yield* track(name, actor)
        }
        if (member !== undefined) yield* tracker.publish({ _tag: "Joined", topic: name, member })
      })

    return Hub.of({
      node,
      subscribe: (topic, conn) => Effect.suspend(() => add(topic, actorOf(conn), undefined)),
      join: (topic, conn, meta) =>
        Effect.suspend(() => {
          const actor = actorOf(conn as Connection<never>)
          return add(topic, actor, { id: actor.id, node, meta })
        }),
      unsubscribe: (topic, conn) => Effect.suspend(() => leave(topic, actorOf(conn))),
      broadcast: (topic, message) => publish({ _tag: "Broadcast", topic, origin: node, message }),
      broadcastFrom: (topic, sender, message) =>
        publish({ _tag: "Broadcast", topic, origin: node, message, exclude: sender.id }),
      members: (name) =>
        Effect.sync(() => {
          const members: Array<Backplane.Member> = []
          const topic = topics.get(name)
          if (topic !== undefined) {
            for (const subscription of topic.subscribers.values()) {
              if (subscription.member !== undefined) members.push(subscription.member)
            }
          }
          for (const member of tracker.members(name)) members.push(member)
          return members
        }),
      topics: Effect.sync(() => [...topics.keys()]),
      address: (conn) => `${node}/${conn.id}`,
      sendTo: (address, message) =>
        Effect.suspend(() => {
          const slash = address.indexOf("/")
          if (slash <= 0) return Effect.void
          const target = address.slice(0, slash)
          const id = address.slice(slash + 1)
          if (target === node) {
            writeTo(id, message)
            return Effect.void
          }
          return publish({ _tag: "Broadcast", topic: nodeTopic(target), origin: node, message, to: id })
        }),
      identify: (conn, user) => Effect.suspend(() => add(userTopic(user), actorOf(conn), undefined)),
      sendToUser: (user, message) => publish({ _tag: "Broadcast", topic: userTopic(user), origin: node, message })
    })
  })

/**
 * Subscribes `conn` to `topic` through the current `Hub` (see `Hub.subscribe`).
 *
 * @example
 * ```ts
 * import { Behavior, Hub } from "@switchboard/core"
 *
 * // every message goes to everyone else in the lobby
 * const Lobby = Behavior.make({
 *   init: (conn) => Hub.subscribe("lobby", conn),
 *   onMessage: (conn, message) => Hub.broadcastFrom("lobby", conn, message)
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const subscribe = (topic: string, conn: Connection<never>): Effect.Effect<void, Backplane.BackplaneError, Hub> =>
  Hub.use((hub) => hub.subscribe(topic, conn))

/**
 * Joins `topic` with presence through the current `Hub` (see `Hub.join`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const join = (
  topic: string,
  conn: Connection<Presence>,
  meta?: unknown
): Effect.Effect<void, Backplane.BackplaneError, Hub> => Hub.use((hub) => hub.join(topic, conn, meta))

/**
 * Ends `conn`'s subscription to `topic` through the current `Hub`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const unsubscribe = (
  topic: string,
  conn: Connection<never>
): Effect.Effect<void, Backplane.BackplaneError, Hub> => Hub.use((hub) => hub.unsubscribe(topic, conn))

/**
 * Sends `message` to every subscriber of `topic` through the current `Hub`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const broadcast = (topic: string, message: Message): Effect.Effect<void, Backplane.BackplaneError, Hub> =>
  Hub.use((hub) => hub.broadcast(topic, message))

/**
 * Sends `message` to every subscriber of `topic` but `sender`, through the current `Hub`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const broadcastFrom = (
  topic: string,
  sender: Connection<never>,
  message: Message
): Effect.Effect<void, Backplane.BackplaneError, Hub> => Hub.use((hub) => hub.broadcastFrom(topic, sender, message))

/**
 * The members of `topic` on every node, through the current `Hub` (see `Hub.members`).
 *
 * @since 0.1.0
 * @category accessors
 */
/**
 * Sends `message` to the one connection at `address` (`Hub.address`,
 * `addressOf`), on whatever node it is.
 *
 * @since 0.1.0
 * @category accessors
 */
export const sendTo = (address: string, message: Message): Effect.Effect<void, Backplane.BackplaneError, Hub> =>
  Hub.use((hub) => hub.sendTo(address, message))

/**
 * Files `conn` under `user` until it ends, for `sendToUser`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const identify = (conn: Connection<never>, user: string): Effect.Effect<void, Backplane.BackplaneError, Hub> =>
  Hub.use((hub) => hub.identify(conn, user))

/**
 * Sends `message` to every connection filed under `user`, on every node.
 *
 * @since 0.1.0
 * @category accessors
 */
export const sendToUser = (user: string, message: Message): Effect.Effect<void, Backplane.BackplaneError, Hub> =>
  Hub.use((hub) => hub.sendToUser(user, message))

export const members = (topic: string): Effect.Effect<ReadonlyArray<Backplane.Member>, never, Hub> =>
  Hub.use((hub) => hub.members(topic))

/**
 * The hub as a layer, on the `Backplane` it is given.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Hub, Backplane.BackplaneError, Backplane.Backplane> =>
  Layer.effect(Hub)(make(options))
