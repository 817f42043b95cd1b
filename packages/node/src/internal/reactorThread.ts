/**
 * The reactor thread's side of `NodeReactors`: how a thread knows it is a
 * reactor (its `workerData`), and what it tells the supervisor (the main
 * thread) over `parentPort`.
 *
 * The wire: supervisor → reactor `{ _tag: "Shutdown" }`; reactor →
 * supervisor `Listening` (once its `NodeServer` is bound, with the port
 * the next reactors must share and how long its shutdown may take) and
 * `Failed` (the app's layer failed: the cause, pretty-printed, for the
 * supervisor to log, since a thread's own console may not flush before it
 * ends).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads"

export interface ReactorData {
  readonly index: number
  readonly reactors: number
  /** The port every reactor binds when the app asks for port 0: the one the first reactor got. */
  readonly port: number | undefined
}

export type ToReactor = { readonly _tag: "Shutdown" }

export type ToSupervisor =
  | { readonly _tag: "Listening"; readonly port: number; readonly host: string; readonly shutdownTimeout: number }
  | { readonly _tag: "Failed"; readonly message: string }

/** What the supervisor puts in a reactor thread's `workerData`. */
export interface WorkerData {
  readonly switchboardReactor: ReactorData
}

const read = (): ReactorData | undefined => {
  if (isMainThread || typeof workerData !== "object" || workerData === null) return undefined
  const data = (workerData as Partial<WorkerData>).switchboardReactor
  return typeof data === "object" && data !== null && typeof data.index === "number" ? data : undefined
}

/** This thread's place among the reactors, or undefined outside a reactor thread. */
export const current: ReactorData | undefined = read()

export const tell = (message: ToSupervisor): void => {
  if (current !== undefined) parentPort?.postMessage(message)
}
