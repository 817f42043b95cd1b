/**
 * Switchboard on an `http.Server` that is not its own (`layerAttached`),
 * next to other listeners: an Effect `HttpRouter` app on `NodeHttpServer`,
 * Express, another Switchboard layer. Node emits each `upgrade` and
 * `request` event to every listener, so two handlers would both answer;
 * one dispatcher per server (its `emit`, wrapped once) hands each event
 * to whoever it is for before the other listeners see it:
 *
 * - an upgrade to a layer's route goes to that layer alone; an upgrade to
 *   no layer's route goes to the other listeners, or, when there are none,
 *   to the first layer (which answers 404);
 * - a request (or a `checkContinue`, a request with `Expect: 100-continue`)
 *   for a layer's metrics path goes to that layer alone; every other one
 *   is seen by every layer (it ends the socket's handshake timeout) and
 *   goes on to the other listeners.
 *
 * The last layer to leave restores the server's `emit`.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import type * as Https from "node:https"
import type { Socket } from "node:net"

export interface Claimant {
  /** True for an upgrade path this layer serves. */
  readonly servesPath: (path: string) => boolean
  readonly metricsPath: string | undefined
  readonly onUpgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => void
  /** A request for the metrics path: answered by this layer. */
  readonly onMetrics: (req: IncomingMessage, res: ServerResponse) => void
  /** Any other request the server got: for the handshake bookkeeping only. */
  readonly onRequestSeen: (req: IncomingMessage, res: ServerResponse) => void
}

type AnyServer = Server | Https.Server

interface Dispatcher {
  readonly claimants: Set<Claimant>
  readonly original: AnyServer["emit"]
  readonly patched: AnyServer["emit"]
  readonly placeholder: () => void
}

const dispatchers = new WeakMap<AnyServer, Dispatcher>()

export const pathOf = (url: string | undefined): string => {
  const target = url ?? "/"
  const query = target.indexOf("?")
  return query < 0 ? target : target.slice(0, query)
}

/** Adds `claimant` to `server`'s dispatcher (made on the first); returns its removal. */
export const share = (server: AnyServer, claimant: Claimant): (() => void) => {
  let dispatcher = dispatchers.get(server)
  if (dispatcher === undefined) {
    const claimants = new Set<Claimant>()
    const original = server.emit
    // Node emits `upgrade` only to a server with an `upgrade` listener: this one does nothing itself
    const placeholder = () => {}
    const foreignUpgradeListeners = () => server.listeners("upgrade").filter((l) => l !== placeholder).length
    const patched = function (this: AnyServer, event: string | symbol, ...args: Array<unknown>): boolean {
      if (event === "upgrade" && claimants.size > 0) {
        const req = args[0] as IncomingMessage
        const path = pathOf(req.url)
        let to: Claimant | undefined
        for (const claimant of claimants) {
          if (claimant.servesPath(path)) {
            to = claimant
            break
          }
        }
        if (to === undefined && foreignUpgradeListeners() === 0) to = claimants.values().next().value
        if (to !== undefined) {
          to.onUpgrade(req, args[1] as Socket, args[2] as Buffer)
          return true
        }
      } else if ((event === "request" || event === "checkContinue") && claimants.size > 0) {
        const req = args[0] as IncomingMessage
        const res = args[1] as ServerResponse
        const path = pathOf(req.url)
        for (const claimant of claimants) {
          if (claimant.metricsPath === path) {
            claimant.onMetrics(req, res)
            return true
          }
        }
        // a request listener of each layer sees `request` itself; `checkContinue` it would not
        if (event === "checkContinue") for (const claimant of claimants) claimant.onRequestSeen(req, res)
      }
      return Reflect.apply(original, this, [event, ...args]) as boolean
    } as AnyServer["emit"]
    dispatcher = { claimants, original, patched, placeholder }
    dispatchers.set(server, dispatcher)
    server.on("upgrade", placeholder)
    server.emit = patched
  }
  const current = dispatcher
  current.claimants.add(claimant)
  return () => {
    current.claimants.delete(claimant)
    if (current.claimants.size > 0) return
    dispatchers.delete(server)
    server.off("upgrade", current.placeholder)
    // a wrapper someone put on top of ours stays; ours then passes everything through
    if (server.emit === current.patched) server.emit = current.original
  }
}
