/**
 * The callbacks behind a behaviour, for the actor runtime: `Behavior.make`
 * keeps them under its type id, out of sight of users.
 */
import { type Behavior, type Handlers, TypeId } from "../Behavior.ts"

export const handlersOf = <I, R>(behavior: Behavior<I, R>): Handlers<unknown, I, unknown, R> =>
  (behavior as unknown as { readonly [TypeId]: Handlers<unknown, I, unknown, R> })[TypeId]
