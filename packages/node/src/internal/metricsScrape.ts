/**
 * A Prometheus scrape of every reactor. With `NodeReactors`, each reactor
 * thread counts its own connections in its own registry, and a scrape
 * reaches whichever reactor the kernel hands the TCP connection to. That
 * reactor asks the others for their text over a `BroadcastChannel`, waits
 * for their answers (at most `timeoutMs`), and merges them: each sample
 * gets a `reactor` label, each family keeps one `HELP` and `TYPE`. Sum over
 * `reactor` in PromQL for the process. Outside reactors (or with one) the
 * scrape is the thread's own text.
 */
import { BroadcastChannel } from "node:worker_threads"
import * as ReactorThread from "./reactorThread.ts"

type Wire =
  | { readonly _tag: "Scrape"; readonly id: string; readonly from: number }
  | { readonly _tag: "Text"; readonly id: string; readonly reactor: number; readonly text: string }

const channelName = "switchboard/metrics-scrape"

/** Answers other reactors' scrapes with `format()`, and scrapes them all; `close` when the server goes. */
export interface Scraper {
  /** The text at once with one reactor; with several, once the others answered. */
  readonly scrape: () => string | Promise<string>
  readonly close: () => void
}

export const make = (format: () => string, timeoutMs = 1_000): Scraper => {
  const reactor = ReactorThread.current
  if (reactor === undefined || reactor.reactors <= 1) {
    return { scrape: format, close: () => {} }
  }
  const channel = new BroadcastChannel(channelName)
  // the channel must not keep a reactor thread alive
  ;(channel as unknown as { unref?: () => void }).unref?.()
  const pending = new Map<string, { readonly texts: Map<number, string>; readonly done: () => void }>()
  let serial = 0
  channel.onmessage = (event) => {
    const message = (event as { readonly data: Wire }).data
    if (message._tag === "Scrape") {
      if (message.from !== reactor.index) {
        channel.postMessage({ _tag: "Text", id: message.id, reactor: reactor.index, text: format() } satisfies Wire)
      }
      return
    }
    const waiting = pending.get(message.id)
    if (waiting === undefined) return
    waiting.texts.set(message.reactor, message.text)
    if (waiting.texts.size >= reactor.reactors) waiting.done()
  }
  const scrape = () =>
    new Promise<string>((resolve) => {
      const id = `${reactor.index}:${++serial}`
      const texts = new Map<number, string>([[reactor.index, format()]])
      let timer: ReturnType<typeof setTimeout> | undefined
      const done = () => {
        if (!pending.delete(id)) return
        if (timer !== undefined) clearTimeout(timer)
        resolve(merge(texts))
      }
      pending.set(id, { texts, done })
      // a reactor that is restarting, or stuck, does not hold the scrape: it is left out
      timer = setTimeout(done, timeoutMs)
      channel.postMessage({ _tag: "Scrape", id, from: reactor.index } satisfies Wire)
    })
  return {
    scrape,
    close: () => {
      for (const waiting of [...pending.values()]) waiting.done()
      channel.close()
    }
  }
}

interface Family {
  readonly comments: Array<string>
  readonly samples: Array<string>
}

/** Merges reactors' texts: one `HELP`/`TYPE` per family, every sample labelled with its reactor. */
export const merge = (texts: ReadonlyMap<number, string>): string => {
  const families = new Map<string, Family>()
  const order = [...texts.keys()].sort((a, b) => a - b)
  for (const reactor of order) {
    let family: Family | undefined
    for (const line of texts.get(reactor)!.split("\n")) {
      if (line === "") continue
      if (line.startsWith("#")) {
        const [, kind, name] = line.split(" ", 3)
        if ((kind === "HELP" || kind === "TYPE") && name !== undefined) {
          family = families.get(name)
          if (family === undefined) {
            family = { comments: [], samples: [] }
            families.set(name, family)
          }
          if (!family.comments.some((comment) => comment.startsWith(`# ${kind} `))) family.comments.push(line)
        }
        continue
      }
      const sample = withReactor(line, reactor)
      if (family === undefined) {
        family = { comments: [], samples: [] }
        families.set(line.split(/[{ ]/, 1)[0]!, family)
      }
      family.samples.push(sample)
    }
  }
  let out = ""
  for (const family of families.values()) {
    for (const comment of family.comments) out += `${comment}\n`
    for (const sample of family.samples) out += `${sample}\n`
  }
  return out
}

/** `name{a="b"} 1` → `name{reactor="2",a="b"} 1`; `name 1` → `name{reactor="2"} 1`. */
const withReactor = (line: string, reactor: number): string => {
  const brace = line.indexOf("{")
  const space = line.indexOf(" ")
  if (brace >= 0 && (space < 0 || brace < space)) {
    const rest = line.slice(brace + 1)
    return `${line.slice(0, brace)}{reactor="${reactor}"${rest.startsWith("}") ? "" : ","}${rest}`
  }
  return space < 0 ? line : `${line.slice(0, space)}{reactor="${reactor}"}${line.slice(space)}`
}
