/** The echo app's worker entry: each worker thread runs this module and answers the pool's jobs. */
import { NodeWorkerPool } from "@switchboard/node/jobs"
import { Handlers } from "./jobs.ts"

NodeWorkerPool.runWorker(Handlers)
