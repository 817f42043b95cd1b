/**
 * @switchboard/redis: the backplane between machines. Hub broadcasts and
 * presence over Redis pub/sub (node-redis), one subscriber connection per
 * backplane, binary kept binary, reconnecting by itself.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as RedisBackplane from "./RedisBackplane.ts"

/** @since 0.1.0 */
export * as RedisClient from "./RedisClient.ts"
