/**
 * @switchboard/core: the connection actor runtime. Behaviours, connections,
 * mailboxes, supervision, lifecycle timers, close codes and errors. No
 * sockets: a reactor package (`@switchboard/node`, `@switchboard/testing`)
 * attaches actors to real or in-memory connections.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Admission from "./Admission.ts"
/** @since 0.1.0 */
export * as Backplane from "./Backplane.ts"
/** @since 0.1.0 */
export * as Behavior from "./Behavior.ts"
/** @since 0.1.0 */
export * as CloseCode from "./CloseCode.ts"
/** @since 0.1.0 */
export * as CloseReason from "./CloseReason.ts"
/** @since 0.1.0 */
export * as Compression from "./Compression.ts"
/** @since 0.1.0 */
export * as Connection from "./Connection.ts"
/** @since 0.1.0 */
export * as ConnectionError from "./ConnectionError.ts"
/** @since 0.1.0 */
export * as Handshake from "./Handshake.ts"
/** @since 0.1.0 */
export * as Hub from "./Hub.ts"
/** @since 0.1.0 */
export * as Keepalive from "./Keepalive.ts"
/** @since 0.1.0 */
export * as Message from "./Message.ts"
/** @since 0.1.0 */
export * as PreparedMessage from "./PreparedMessage.ts"
/** @since 0.1.0 */
export * as RateLimit from "./RateLimit.ts"
/** @since 0.1.0 */
export * as Reactor from "./Reactor.ts"
/** @since 0.1.0 */
export * as Route from "./Route.ts"
/** @since 0.1.0 */
export * as ServerError from "./ServerError.ts"
/** @since 0.1.0 */
export * as ServerMetrics from "./ServerMetrics.ts"
/** @since 0.1.0 */
export * as ServerOptions from "./ServerOptions.ts"
/** @since 0.1.0 */
export * as StreamedMessage from "./StreamedMessage.ts"
/** @since 0.1.0 */
export * as Subprotocol from "./Subprotocol.ts"
/** @since 0.1.0 */
export * as Supervisor from "./Supervisor.ts"
