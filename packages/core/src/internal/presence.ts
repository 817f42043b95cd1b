/**
 * Presence replicated by every hub (docs/adr/0006): the members of every
 * topic on every node, kept by each hub from the presence signals that all
 * hubs publish on one backplane topic.
 *
 * - Each node is the authority for its own members and numbers its changes
 *   (`version`). Every signal carries the sender's version; a change is
 *   applied on top of the sender's last one, and a gap (a signal lost while
 *   the backplane was away) or a heartbeat whose version is not the one
 *   held makes the receiver ask that node for its `State`, which replaces
 *   what it held and is diffed into `Joined`/`Left` events.
 * - Presence signals of one hub are published one at a time, in version
 *   order (a semaphore), and a `State` is built at the moment it is
 *   published: what it lists is exactly what the changes before it made,
 *   plus changes still waiting to be published, which are idempotent when
 *   they follow.
 * - Liveness counts heartbeats, not wall time, so a callback never reads a
 *   clock: every `heartbeat` the tracker ticks, publishes its heartbeat and
 *   drops the nodes it has heard nothing from for `timeout` (their members
 *   leave, with one `Left` each).
 */
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Backplane from "../Backplane.ts"

/** The backplane topic presence travels on. */
export const topic = "switchboard:presence"

/** A change of membership, as the hub tells it to its local members. */
export type Change = Extract<Backplane.PresenceSignal, { readonly _tag: "Joined" | "Left" }>

export interface Options {
  readonly node: string
  /** Milliseconds between heartbeats. */
  readonly heartbeat: number
  /** Milliseconds of silence after which a node is down. */
  readonly timeout: number
  /** This node's members, for a `State`. */
  readonly localMembers: () => ReadonlyArray<Backplane.PresenceEntry>
  /** Tells the local members of `change.topic` (not the member itself when the change is this node's own). */
  readonly announce: (change: Change, own: boolean) => void
}

export interface Tracker {
  /** Publishes a change of this node's membership. */
  readonly publish: (change: Change) => Effect.Effect<void, Backplane.BackplaneError>
  /** The members of `topic` on the other nodes, node by node, each in the order they joined. */
  readonly members: (topic: string) => ReadonlyArray<Backplane.Member>
}

interface View {
  /** The tick this node was last heard at. */
  seen: number
  /** The version of the last change applied; -1 while unknown. */
  version: number
  /** The tick its state was last asked for, if it is awaited. */
  askedAt: number | undefined
  /** Its members, by topic and connection id. */
  rooms: Map<string, Map<string, Backplane.Member>>
}

/**
 * Other nodes heard from and not found down, by this hub.
 *
 * @internal
 */
export const nodesGauge = Metric.gauge("switchboard_presence_nodes", {
  description: "Other nodes a hub hears presence heartbeats from"
})

/** @internal */
export const nodesDownTotal = Metric.counter("switchboard_presence_nodes_down_total", {
  description: "Nodes found down (no presence signal for the timeout): their members left"
})

/** @internal */
export const syncsTotal = Metric.counter("switchboard_presence_syncs_total", {
  description: "Presence states asked of a node after a gap in its changes"
})

export const make = (
  options: Options
): Effect.Effect<Tracker, Backplane.BackplaneError, Backplane.Backplane | Scope.Scope> =>
  Effect.gen(function* () {
    const backplane = yield* Backplane.Backplane
    const context = yield* Effect.context<never>()
    const { node, announce } = options
    const ticksToDown = Math.max(1, Math.ceil(options.timeout / options.heartbeat))
    const permit = yield* Semaphore.make(1)
    const nodes = new Map<string, View>()
    let version = 0
    let tick = 0

    /** Publishes one signal in order; `change` numbers it as the next change. */
    const send = (signal: () => Backplane.PresenceSignal, change = false) =>
      permit.withPermit(
        Effect.suspend(() => {
          if (change) version++
          return backplane.publish({ _tag: "Presence", topic, origin: node, version, signal: signal() })
        })
      )

    // what the backplane callback wants sent: a State for whoever asked, and Syncs for the nodes with a gap
    let stateWanted = false
    const asks = new Set<string>()
    const outbox = yield* Queue.unbounded<void>()
    let woken = false
    const wake = () => {
      if (woken) return
      woken = true
      Queue.offerUnsafe(outbox, undefined)
    }
    const flushOutbox = Effect.suspend(() => {
      woken = false
      const effects: Array<Effect.Effect<void, Backplane.BackplaneError>> = []
      if (stateWanted) {
        stateWanted = false
        effects.push(send(() => ({ _tag: "State", members: options.localMembers() })))
      }
      for (const to of asks) {
        effects.push(send(() => ({ _tag: "Sync", to })))
        syncsTotal.updateUnsafe(1, context)
      }
      asks.clear()
      return Effect.ignore(Effect.all(effects, { discard: true }))
    })

    const ask = (origin: string, view: View) => {
      if (view.askedAt !== undefined && tick - view.askedAt < 1) return
      view.askedAt = tick
      asks.add(origin)
      wake()
    }

    const apply = (view: View, change: Change) => {
      const member = change.member
      let room = view.rooms.get(change.topic)
      if (change._tag === "Joined") {
        if (room === undefined) view.rooms.set(change.topic, (room = new Map()))
        const known = room.get(member.id)
        if (known !== undefined && Equal.equals(known.meta, member.meta)) return
        room.set(member.id, member)
        announce(change, false)
      } else if (room?.delete(member.id)) {
        if (room.size === 0) view.rooms.delete(change.topic)
        announce(change, false)
      }
    }

    const replace = (view: View, entries: ReadonlyArray<Backplane.PresenceEntry>) => {
      const rooms = new Map<string, Map<string, Backplane.Member>>()
      for (const { topic, member } of entries) {
        let room = rooms.get(topic)
        if (room === undefined) rooms.set(topic, (room = new Map()))
        room.set(member.id, member)
      }
      for (const [name, room] of view.rooms) {
        const now = rooms.get(name)
        for (const [id, member] of room) if (!now?.has(id)) announce({ _tag: "Left", topic: name, member }, false)
      }
      for (const [name, room] of rooms) {
        const before = view.rooms.get(name)
        for (const [id, member] of room) {
          const known = before?.get(id)
          if (known === undefined || !Equal.equals(known.meta, member.meta)) {
            announce({ _tag: "Joined", topic: name, member }, false)
          }
        }
      }
      view.rooms = rooms
    }

    const drop = (origin: string, view: View) => {
      nodes.delete(origin)
      nodesGauge.updateUnsafe(nodes.size, context)
      for (const [name, room] of view.rooms)
        for (const member of room.values()) announce({ _tag: "Left", topic: name, member }, false)
    }

    const onEnvelope = (envelope: Backplane.Envelope) => {
      if (envelope._tag !== "Presence") return
      const signal = envelope.signal
      if (envelope.origin === node) {
        if (signal._tag === "Joined" || signal._tag === "Left") announce(signal, true)
        return
      }
      if (signal._tag === "Bye") {
        const view = nodes.get(envelope.origin)
        if (view !== undefined) drop(envelope.origin, view)
        return
      }
      let view = nodes.get(envelope.origin)
      if (view === undefined) {
        view = { seen: tick, version: -1, askedAt: undefined, rooms: new Map() }
        nodes.set(envelope.origin, view)
        nodesGauge.updateUnsafe(nodes.size, context)
      }
      view.seen = tick
      switch (signal._tag) {
        case "Joined":
        case "Left": {
          apply(view, signal)
          if (view.version !== -1 && envelope.version === view.version + 1) view.version = envelope.version
          else ask(envelope.origin, view)
          return
        }
        case "Heartbeat":
        case "Sync": {
          if (view.version !== envelope.version) {
            // version 0: a node that never had a member; nothing to ask
            if (view.version === -1 && envelope.version === 0) view.version = 0
            else ask(envelope.origin, view)
          }
          if (signal._tag === "Sync" && (signal.to === undefined || signal.to === node)) {
            stateWanted = true
            wake()
          }
          return
        }
        case "State": {
          replace(view, signal.members)
          view.version = envelope.version
          view.askedAt = undefined
          return
        }
      }
    }

    const beat = Effect.suspend(() => {
      tick++
      const down: Array<string> = []
      for (const [origin, view] of nodes) {
        if (tick - view.seen > ticksToDown) {
          down.push(origin)
          drop(origin, view)
        }
      }
      const logged = Effect.forEach(
        down,
        (origin) =>
          Effect.andThen(
            Metric.update(nodesDownTotal, 1),
            Effect.logWarning(`presence: node ${origin} silent for ${options.timeout} ms; its members left`)
          ),
        { discard: true }
      )
      return Effect.andThen(logged, Effect.ignore(send(() => ({ _tag: "Heartbeat" }))))
    })

    yield* backplane.subscribe(topic, onEnvelope)
    yield* Effect.addFinalizer(() => Effect.ignore(send(() => ({ _tag: "Bye" }))))
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Queue.take(outbox), flushOutbox)))
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(options.heartbeat), beat)))
    // hello: everyone answers with its state; at version 0 it also tells them this node has no member yet
    yield* send(() => ({ _tag: "Sync" }))

    return {
      publish: (change) => send(() => change, true),
      members: (name) => {
        const out: Array<Backplane.Member> = []
        for (const view of nodes.values()) {
          const room = view.rooms.get(name)
          if (room !== undefined) for (const member of room.values()) out.push(member)
        }
        return out
      }
    }
  })
