/**
 * The metrics of connections, messages and callbacks, on Effect's `Metric`:
 * read them with `Metric.value`, export them with any Effect exporter, or
 * serve them in the Prometheus format (`NodeServer.layer({ metrics: { path:
 * "/metrics" } })`). They count per process (per reactor thread with
 * `NodeReactors`, whose scrapes gather every reactor's, labelled `reactor`):
 * every server and client in it adds to them.
 *
 * The hot ones (one per message, write or callback) are plain counters read
 * when the registry is read, so counting costs the message path an
 * increment, not an Effect.
 *
 * | Metric | Type | Labels |
 * |---|---|---|
 * | `switchboard_connections_open` | gauge | `route` |
 * | `switchboard_connections_opened_total` | counter | `route` |
 * | `switchboard_connections_closed_total` | counter | `reason` (`CloseReason` tag), `code` |
 * | `switchboard_upgrades_rejected_total` | counter | `reason` (`Admission.upgradesRejectedTotal`) |
 * | `switchboard_messages_received_total`, `switchboard_messages_sent_total` | counter | |
 * | `switchboard_received_bytes_total`, `switchboard_sent_bytes_total` | counter | (wire bytes, framing included) |
 * | `switchboard_mailbox_pauses_total` | counter | |
 * | `switchboard_reading_paused` | gauge | (sockets not read now) |
 * | `switchboard_outbound_buffered_bytes` | gauge | (over all connections) |
 * | `switchboard_send_suspensions_total` | counter | |
 * | `switchboard_behavior_duration_seconds` | histogram | |
 * | `switchboard_behavior_failures_total` | counter | (closed with 1011) |
 * | `switchboard_handshake_duration_seconds`, `switchboard_close_duration_seconds` | histogram | |
 * | `switchboard_hub_deliveries_total`, `switchboard_hub_framed_total` | counter | |
 * | `switchboard_hub_slow_consumer_total` | counter | `policy` |
 * | `switchboard_backplane_published_total`, `_received_total`, `_errors_total` | counter | |
 *
 * The jobs, presence, Redis, TLS and reactor metrics are listed in their
 * modules and in docs/guide/operations.md.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
 * import { ServerMetrics } from "@switchboard/core"
 *
 * const report = Effect.gen(function* () {
 *   const received = yield* Metric.value(ServerMetrics.messagesReceivedTotal)
 *   const open = yield* Metric.value(Metric.withAttributes(ServerMetrics.connectionsOpen, { route: "/chat" }))
 *   yield* Effect.log(`${received.count} messages so far, ${open.value} connections on /chat`)
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Stats from "./internal/serverStats.ts"

/**
 * Connections open now, including closing ones, by `route`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpen = Stats.connectionsOpen

/**
 * Connections accepted (upgrades completed), by `route`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpenedTotal = Stats.connectionsOpenedTotal

/**
 * Connections ended, by `reason` (the `CloseReason` tag) and `code` (the
 * close code the client saw; 1006 when it saw none).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsClosedTotal = Stats.connectionsClosedTotal

/**
 * Messages received from peers; a streamed message counts once.
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesReceivedTotal = Stats.messagesReceivedTotal

/**
 * Messages written to peers: `send`, `sendStream` (once per message) and hub
 * deliveries.
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesSentTotal = Stats.messagesSentTotal

/**
 * Bytes read from WebSocket sockets, framing and the upgrade request included.
 *
 * @since 0.1.0
 * @category metrics
 */
export const receivedBytesTotal = Stats.receivedBytesTotal

/**
 * Bytes written to WebSocket sockets, framing and the 101 response included.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sentBytesTotal = Stats.sentBytesTotal

/**
 * Times a full mailbox stopped reading from a socket.
 *
 * @since 0.1.0
 * @category metrics
 */
export const mailboxPausesTotal = Stats.mailboxPausesTotal

/**
 * Sockets whose reading is stopped now: a full mailbox, `pauseReading`, or
 * streamed pieces waiting.
 *
 * @since 0.1.0
 * @category metrics
 */
export const readingPaused = Stats.readingPaused

/**
 * Bytes written and not yet handed to the kernel, over all connections.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferedBytes = Stats.bufferedBytes

/**
 * Sends that suspended their actor above `highWaterMark`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sendSuspensionsTotal = Stats.sendSuspensionsTotal

/**
 * Time in behaviour callbacks, waits included (seconds, 100 µs to 10 s buckets).
 *
 * @since 0.1.0
 * @category metrics
 */
export const behaviorDurationSeconds = Stats.behaviorDurationSeconds

/**
 * Behaviour callbacks that failed or died: each closed its connection with 1011.
 *
 * @since 0.1.0
 * @category metrics
 */
export const behaviorFailuresTotal = Stats.behaviorFailuresTotal

/**
 * From a socket's connection (or a keep-alive socket's next request) to the
 * 101, for upgrades that completed; recorded while `handshakeTimeout` is on
 * (the default).
 *
 * @since 0.1.0
 * @category metrics
 */
export const handshakeDurationSeconds = Stats.handshakeDurationSeconds

/**
 * From the close frame the server sent (or a protocol failure) to the
 * socket's close.
 *
 * @since 0.1.0
 * @category metrics
 */
export const closeDurationSeconds = Stats.closeDurationSeconds

/**
 * Hub broadcasts written to local subscribers, one per subscriber.
 *
 * @since 0.1.0
 * @category metrics
 */
export const hubDeliveriesTotal = Stats.hubDeliveriesTotal

/**
 * Broadcasts a hub published to its backplane.
 *
 * @since 0.1.0
 * @category metrics
 */
export const backplanePublishedTotal = Stats.backplanePublishedTotal

/**
 * Broadcasts a hub received from its backplane, its own included.
 *
 * @since 0.1.0
 * @category metrics
 */
export const backplaneReceivedTotal = Stats.backplaneReceivedTotal

/**
 * Backplane operations of a hub that failed (publish, subscribe).
 *
 * @since 0.1.0
 * @category metrics
 */
export const backplaneErrorsTotal = Stats.backplaneErrorsTotal
