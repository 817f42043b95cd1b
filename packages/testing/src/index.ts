/**
 * @switchboard/testing: an in-memory reactor and `TestClient`, to test
 * behaviours with `TestClock` and no sockets.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as BackplaneConformance from "./BackplaneConformance.ts"
/** @since 0.1.0 */
export * as Frame from "./Frame.ts"
/** @since 0.1.0 */
export * as TestClient from "./TestClient.ts"
/** @since 0.1.0 */
export * as TestClientError from "./TestClientError.ts"
