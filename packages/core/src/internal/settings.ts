/**
 * The checks every setting goes through: durations, counts and sizes. They
 * throw a `RangeError` naming the setting; `ServerOptions.resolve` turns it
 * into `ServerError` `InvalidOptions`, so a bad setting fails the layer
 * instead of a connection.
 */
import * as Duration from "effect/Duration"

/**
 * A setting's duration in milliseconds: `fallback` when absent, 0 for
 * `false` (off). Anything that is not a positive, finite duration throws.
 */
export const durationMillis = (input: Duration.Input | false | undefined, fallback: number, name: string): number => {
  if (input === undefined) return fallback
  if (input === false) return 0
  const duration = Duration.fromInput(input)
  if (duration._tag === "None") throw new RangeError(`${name}: not a duration: ${String(input)}`)
  const ms = Duration.toMillis(duration.value)
  if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`${name}: must be a positive, finite duration`)
  return ms
}

/** A positive integer, or `Infinity` where `infinite` allows it. */
export const positiveInteger = (value: number, name: string, infinite = false): number => {
  if ((infinite && value === Number.POSITIVE_INFINITY) || (Number.isInteger(value) && value > 0)) return value
  throw new RangeError(`${name}: must be a positive integer, got ${value}`)
}

/** A positive, finite number, or undefined when absent. */
export const positiveNumber = (value: number | undefined, name: string): number | undefined => {
  if (value === undefined) return undefined
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name}: must be a positive number, got ${value}`)
  return value
}
