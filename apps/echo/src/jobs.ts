/**
 * The echo app's one job, imported by the server (`main.ts`, which runs it
 * inline when `WORKERS=0`) and by the worker entry (`worker.ts`): hash a
 * binary message `rounds` times, as the classic engine's example did with
 * its thread workers. It is CPU-bound on purpose (about 20 ms at the default
 * 20,000 rounds on the 2-core machine of docs/benchmarks.md), so that
 * running it on the event loop shows what a job on a worker saves.
 */
import { hash as digestOf } from "node:crypto"
import { Job } from "@switchboard/core/jobs"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** SHA-256 of `data`, then of each digest, `rounds` times; the last digest in hex. */
export const Hash = Job.make("Hash", {
  payload: Schema.Struct({ data: Job.TransferredBytes, rounds: Schema.Int.check(Schema.isGreaterThan(0)) }),
  success: Schema.String
})

export const hash = (data: Uint8Array, rounds: number): string => {
  let digest: Uint8Array = data
  // one-shot `crypto.hash`, not `createHash`: each Hash object is a native handle whose clean-up
  // V8 defers to an idle-time young-generation GC, which then holds the worker 40 to 70 ms
  // between jobs (docs/benchmarks.md, "Jobs")
  for (let i = 0; i < rounds; i++) digest = digestOf("sha256", digest, "buffer")
  return Buffer.from(digest).toString("hex")
}

export const Handlers = Job.handlers([Hash], {
  Hash: ({ data, rounds }) => Effect.sync(() => hash(data, rounds))
})
