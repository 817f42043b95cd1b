/** The chat's worker entry: each worker thread of the pool runs this module and answers search jobs (`Search.ts`). */
import { NodeWorkerPool } from "@switchboard/node/jobs"
import { Handlers } from "./Search.ts"

NodeWorkerPool.runWorker(Handlers)
