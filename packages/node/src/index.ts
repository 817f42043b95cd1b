/**
 * @switchboard/node: the Node reactor. The `ws` bridge, the HTTP server
 * layer (routing, admission, shutdown).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeServer from "./NodeServer.ts"
