/**
 * A connection's finalizers (`conn.addFinalizer`): run once when it ends,
 * after `onClose`, last added first, like a `Scope`'s; one that fails is
 * logged and does not stop the others. Allocated on the first `addFinalizer`.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

export class Finalizers {
  private readonly list: Array<Effect.Effect<void>> = []

  get size(): number {
    return this.list.length
  }

  add(finalizer: Effect.Effect<void>): void {
    this.list.push(finalizer)
  }

  /** Runs and forgets every finalizer, logging the failures with `log`. */
  runAll(log: (message: string, cause: Cause.Cause<unknown>) => Effect.Effect<void>): Effect.Effect<void> {
    const finalizers = this.list.splice(0).reverse()
    return Effect.forEach(
      finalizers,
      (finalizer) => Effect.catchCause(finalizer, (cause) => log("connection finalizer failed", cause)),
      { discard: true }
    )
  }
}
