/**
 * The counters behind `ServerMetrics`: plain numbers that the hot paths
 * (every message, every write, every callback) bump without an Effect or a
 * registry lookup, read by Effect's metric registry only when it is read
 * (a Prometheus scrape, `Metric.value`, an exporter's interval). Each
 * series is registered once per registry with `Metric.registerUnsafe`,
 * whose `get` computes the value from here; labelled series (by route, by
 * close reason) are registered as their labels first appear.
 *
 * The numbers are per process (per reactor thread with `NodeReactors`):
 * every server and client in it adds to them.
 */
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type * as CloseReason from "../CloseReason.ts"
import { closeCodeOf } from "../ConnectionError.ts"

/** Boundaries of the duration histograms, in seconds: 100 µs to 10 s. */
export const durationBoundaries: ReadonlyArray<number> = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/** A histogram as counts per bucket, cheap to observe. */
export class Histogram {
  private readonly counts = new Array<number>(durationBoundaries.length).fill(0)
  count = 0
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = Number.NEGATIVE_INFINITY

  observe(seconds: number): void {
    let i = 0
    while (i < durationBoundaries.length && seconds > durationBoundaries[i]!) i++
    if (i < durationBoundaries.length) this.counts[i]!++
    this.count++
    this.sum += seconds
    if (seconds < this.min) this.min = seconds
    if (seconds > this.max) this.max = seconds
  }

  state(): Metric.HistogramState {
    let cumulative = 0
    const buckets: Array<[number, number]> = durationBoundaries.map((boundary, i) => {
      cumulative += this.counts[i]!
      return [boundary, cumulative]
    })
    return {
      buckets,
      count: this.count,
      sum: this.sum,
      min: this.count === 0 ? 0 : this.min,
      max: this.count === 0 ? 0 : this.max
    }
  }
}

/** What a live connection contributes to the gauges and byte totals at read time. */
export interface Live {
  readonly bufferedAmount: number
  readonly bytesRead: number
  readonly bytesWritten: number
}

/** The process's counters. */
export const stats = {
  messagesReceived: 0,
  messagesSent: 0,
  /** Wire bytes of connections that have closed; live ones are added at read time. */
  bytesReadClosed: 0,
  bytesWrittenClosed: 0,
  sendSuspensions: 0,
  mailboxPauses: 0,
  /** Sockets whose reading is stopped now (a full mailbox, `pauseReading`, stream pieces waiting). */
  readingPaused: 0,
  behaviorFailures: 0,
  hubDeliveries: 0,
  backplanePublished: 0,
  backplaneReceived: 0,
  backplaneErrors: 0,
  behaviorDuration: new Histogram(),
  handshakeDuration: new Histogram(),
  closeDuration: new Histogram()
}

/** Every live connection of the process, by the supervisor that holds it. */
const liveSets = new Set<Iterable<Live>>()

/** A supervisor's connections, read for the gauges while it lives. */
export const track = (connections: Iterable<Live>): (() => void) => {
  liveSets.add(connections)
  return () => {
    liveSets.delete(connections)
  }
}

const sumLive = (pick: (live: Live) => number): number => {
  let total = 0
  for (const set of liveSets) for (const live of set) total += pick(live)
  return total
}

/** Counts by label value (a route, a close reason): registered as they first appear. */
class Labelled {
  readonly values = new Map<string, { readonly attributes: Record<string, string>; count: number }>()
  readonly metric: Metric.Metric<number, Metric.CounterState<number>> | Metric.Metric<number, Metric.GaugeState<number>>
  readonly kind: "counter" | "gauge"
  constructor(
    metric: Metric.Metric<number, Metric.CounterState<number>> | Metric.Metric<number, Metric.GaugeState<number>>,
    kind: "counter" | "gauge"
  ) {
    this.metric = metric
    this.kind = kind
  }

  add(key: string, attributes: () => Record<string, string>, delta: number): void {
    let entry = this.values.get(key)
    if (entry === undefined) {
      entry = { attributes: attributes(), count: 0 }
      this.values.set(key, entry)
      for (const context of registered) this.registerOne(context, entry)
    }
    entry.count += delta
  }

  registerOne(context: Context.Context<never>, entry: { readonly attributes: Record<string, string>; count: number }) {
    const series = Metric.withAttributes(this.metric as Metric.Metric<number, unknown>, entry.attributes)
    if (this.kind === "counter") {
      Metric.registerUnsafe(
        series as Metric.Metric<number, Metric.CounterState<number>>,
        context,
        counter(() => entry.count)
      )
    } else {
      Metric.registerUnsafe(
        series as Metric.Metric<number, Metric.GaugeState<number>>,
        context,
        gauge(() => entry.count)
      )
    }
  }
}

// ------------------------------------------------------------------ the metric definitions

export const connectionsOpen = Metric.gauge("switchboard_connections_open", {
  description: "WebSocket connections open now (including closing ones), by route"
})
export const connectionsOpenedTotal = Metric.counter("switchboard_connections_opened_total", {
  description: "WebSocket connections accepted (upgrades completed), by route",
  incremental: true
})
export const connectionsClosedTotal = Metric.counter("switchboard_connections_closed_total", {
  description: "WebSocket connections ended, by close reason (CloseReason tag) and close code",
  incremental: true
})
export const messagesReceivedTotal = Metric.counter("switchboard_messages_received_total", {
  description: "Messages received from peers (a streamed message counts once)",
  incremental: true
})
export const messagesSentTotal = Metric.counter("switchboard_messages_sent_total", {
  description: "Messages written to peers: send, sendStream (once per message) and hub deliveries",
  incremental: true
})
export const receivedBytesTotal = Metric.counter("switchboard_received_bytes_total", {
  description: "Bytes read from WebSocket sockets: the wire, framing and the upgrade request included",
  incremental: true
})
export const sentBytesTotal = Metric.counter("switchboard_sent_bytes_total", {
  description: "Bytes written to WebSocket sockets: the wire, framing and the 101 response included",
  incremental: true
})
export const mailboxPausesTotal = Metric.counter("switchboard_mailbox_pauses_total", {
  description: "Times a full mailbox stopped reading from a socket",
  incremental: true
})
export const readingPaused = Metric.gauge("switchboard_reading_paused", {
  description: "Sockets whose reading is stopped now (full mailbox, pauseReading, streamed pieces waiting)"
})
export const bufferedBytes = Metric.gauge("switchboard_outbound_buffered_bytes", {
  description: "Bytes written to connections and not yet handed to the kernel, over all connections"
})
export const sendSuspensionsTotal = Metric.counter("switchboard_send_suspensions_total", {
  description: "Sends that suspended their actor because more than highWaterMark bytes were buffered",
  incremental: true
})
export const behaviorDurationSeconds = Metric.histogram("switchboard_behavior_duration_seconds", {
  description:
    "Time in a behaviour callback (init, onMessage, onStream, onInfo, onPing, onDrain, onClose), waits included",
  boundaries: durationBoundaries
})
export const behaviorFailuresTotal = Metric.counter("switchboard_behavior_failures_total", {
  description: "Behaviour callbacks that failed or died (the connection closed with 1011)",
  incremental: true
})
export const handshakeDurationSeconds = Metric.histogram("switchboard_handshake_duration_seconds", {
  description:
    "From the TCP connection (or a keep-alive socket's next request) to the 101, for upgrades that completed (recorded while handshakeTimeout is on)",
  boundaries: durationBoundaries
})
export const closeDurationSeconds = Metric.histogram("switchboard_close_duration_seconds", {
  description: "From the close frame the server sent to the socket's close",
  boundaries: durationBoundaries
})
export const hubDeliveriesTotal = Metric.counter("switchboard_hub_deliveries_total", {
  description: "Hub broadcasts written to local subscribers (one per subscriber)",
  incremental: true
})
export const backplanePublishedTotal = Metric.counter("switchboard_backplane_published_total", {
  description: "Broadcasts the hub published to its backplane (presence signals are not counted)",
  incremental: true
})
export const backplaneReceivedTotal = Metric.counter("switchboard_backplane_received_total", {
  description: "Broadcast envelopes the hub received from its backplane (its own included)",
  incremental: true
})
export const backplaneErrorsTotal = Metric.counter("switchboard_backplane_errors_total", {
  description: "Backplane operations of the hub that failed (publish, subscribe)",
  incremental: true
})

export const openByRoute = new Labelled(connectionsOpen, "gauge")
export const openedByRoute = new Labelled(connectionsOpenedTotal, "counter")
export const closedByReason = new Labelled(connectionsClosedTotal, "counter")

const counter = (get: () => number): Metric.Metric.Hooks<number, Metric.CounterState<number>> => ({
  get: () => ({ count: get(), incremental: true }),
  update: () => {},
  modify: () => {}
})
const gauge = (get: () => number): Metric.Metric.Hooks<number, Metric.GaugeState<number>> => ({
  get: () => ({ value: get() }),
  update: () => {},
  modify: () => {}
})
const histogram = (h: Histogram): Metric.Metric.Hooks<number, Metric.HistogramState> => ({
  get: () => h.state(),
  update: () => {},
  modify: () => {}
})

/** The registries (one per context's `MetricRegistry`) the series are registered in. */
const registries = new WeakSet<object>()
const registered: Array<Context.Context<never>> = []

/** Registers every series in `context`'s metric registry, once per registry. */
export const registerUnsafe = (context: Context.Context<never>): void => {
  const registry = Context.get(context, Metric.MetricRegistry)
  if (registries.has(registry)) return
  registries.add(registry)
  registered.push(context)
  Metric.registerUnsafe(
    messagesReceivedTotal,
    context,
    counter(() => stats.messagesReceived)
  )
  Metric.registerUnsafe(
    messagesSentTotal,
    context,
    counter(() => stats.messagesSent)
  )
  Metric.registerUnsafe(
    receivedBytesTotal,
    context,
    counter(() => stats.bytesReadClosed + sumLive((live) => live.bytesRead))
  )
  Metric.registerUnsafe(
    sentBytesTotal,
    context,
    counter(() => stats.bytesWrittenClosed + sumLive((live) => live.bytesWritten))
  )
  Metric.registerUnsafe(
    mailboxPausesTotal,
    context,
    counter(() => stats.mailboxPauses)
  )
  Metric.registerUnsafe(
    readingPaused,
    context,
    gauge(() => stats.readingPaused)
  )
  Metric.registerUnsafe(
    bufferedBytes,
    context,
    gauge(() => sumLive((live) => live.bufferedAmount))
  )
  Metric.registerUnsafe(
    sendSuspensionsTotal,
    context,
    counter(() => stats.sendSuspensions)
  )
  Metric.registerUnsafe(behaviorDurationSeconds, context, histogram(stats.behaviorDuration))
  Metric.registerUnsafe(
    behaviorFailuresTotal,
    context,
    counter(() => stats.behaviorFailures)
  )
  Metric.registerUnsafe(handshakeDurationSeconds, context, histogram(stats.handshakeDuration))
  Metric.registerUnsafe(closeDurationSeconds, context, histogram(stats.closeDuration))
  Metric.registerUnsafe(
    hubDeliveriesTotal,
    context,
    counter(() => stats.hubDeliveries)
  )
  Metric.registerUnsafe(
    backplanePublishedTotal,
    context,
    counter(() => stats.backplanePublished)
  )
  Metric.registerUnsafe(
    backplaneReceivedTotal,
    context,
    counter(() => stats.backplaneReceived)
  )
  Metric.registerUnsafe(
    backplaneErrorsTotal,
    context,
    counter(() => stats.backplaneErrors)
  )
  for (const labelled of [openByRoute, openedByRoute, closedByReason]) {
    for (const entry of labelled.values.values()) labelled.registerOne(context, entry)
  }
}

/** The close code a reason stands for (the one the client saw, or 1006 when it saw none). */
export const closeCodeFor = (reason: CloseReason.CloseReason): number => {
  switch (reason._tag) {
    case "Peer":
    case "Local":
      return reason.code
    case "Shutdown":
      return 1001
    case "Timeout":
      return reason.timer === "idle" ? 1000 : 1006
    case "Error":
      return closeCodeOf(reason.error.reason)
    case "Crash":
      return 1011
    case "Lost":
      return 1006
  }
}

/** A connection was accepted on `route`. */
export const openedUnsafe = (route: string): void => {
  openByRoute.add(route, () => ({ route }), 1)
  openedByRoute.add(route, () => ({ route }), 1)
}

/** A connection of `route` left its supervisor, for `reason`, having moved these wire bytes. */
export const endedUnsafe = (
  route: string,
  reason: CloseReason.CloseReason,
  bytesRead: number,
  bytesWritten: number
): void => {
  openByRoute.add(route, () => ({ route }), -1)
  const code = closeCodeFor(reason)
  closedByReason.add(`${reason._tag} ${code}`, () => ({ reason: reason._tag, code: String(code) }), 1)
  stats.bytesReadClosed += bytesRead
  stats.bytesWrittenClosed += bytesWritten
}
