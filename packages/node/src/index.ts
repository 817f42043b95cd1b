/**
 * @switchboard/node: the Node reactor. The `ws` bridge, the HTTP server
 * layer (routing, admission, shutdown). The worker-thread pool for jobs is
 * `@switchboard/node/jobs`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeClient from "./NodeClient.ts"
/** @since 0.1.0 */
export * as NodeClientError from "./NodeClientError.ts"
/** @since 0.1.0 */
export * as NodeReactors from "./NodeReactors.ts"
/** @since 0.1.0 */
export * as NodeServer from "./NodeServer.ts"
