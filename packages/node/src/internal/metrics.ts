/**
 * The Node reactor's counters: every limit that turns a client away is
 * counted, so an operator sees a limit trigger before users report it.
 */
import { Metric } from "effect"

/** Why an upgrade request was turned away: the `reason` attribute of `upgradesRejectedTotal`. */
export type RejectReason =
  | "shutting_down"
  | "malformed"
  | "not_found"
  | "origin"
  | "capacity"
  | "per_ip"
  | "rejected"
  | "auth_error"
  | "handshake_timeout"

export const upgradesRejectedTotal = Metric.counter("switchboard_upgrades_rejected_total", {
  description: "WebSocket upgrade requests turned away, by reason",
  incremental: true
})

export const acceptErrorsTotal = Metric.counter("switchboard_accept_errors_total", {
  description: "Failed TCP accepts (EMFILE, ENFILE, …) and connections dropped at the server's TCP connection cap",
  incremental: true
})
