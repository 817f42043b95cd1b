/**
 * The callbacks behind a behaviour, for the actor runtime: `Behavior.make`
 * keeps them under its type id, out of sight of users.
 */
import { type Behavior, type Handlers, TypeId } from "../Behavior.ts"

export const handlersOf = <I, R, A>(behavior: Behavior<I, R, A>): Handlers<unknown, I, unknown, R, A> =>
  (behavior as unknown as { readonly [TypeId]: Handlers<unknown, I, unknown, R, A> })[TypeId]
