/**
 * A real redis-server for the Redis backplane's tests: `startRedisServer`
 * runs Debian's binary on a free loopback port, configured on the command
 * line alone (nothing saved, no config file), optionally with a password, an
 * ACL user or TLS with a private CA made at start, and resolves once it
 * accepts connections. The server it hands back can be killed as in a crash
 * and restarted on the same port, which is what the outage tests need, and
 * it answers `clients()` and `publishRaw()` itself, over RESP on a socket of
 * its own, without redis-cli or a client library. A server never outlives what
 * started it: it is killed when it does not become ready, on `stop`, and, as
 * a last resort, when this process exits.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { freePort, LOOPBACK, waitForPort } from "./net.ts"
import { pollUntil, sleep, within } from "./poll.ts"
import { type Certificates, makeCertificates } from "./tls.ts"

export interface RedisServerOptions {
  /** Require this password for the default user (`requirepass`). */
  readonly password?: string
  /** An ACL user with full access: `user NAME on >PASSWORD ~* &* +@all`. */
  readonly user?: { readonly name: string; readonly password: string }
  /** Serve TLS only (tls-port, port 0) with a certificate made at start for 127.0.0.1 / localhost. */
  readonly tls?: boolean
}

export interface RedisServer {
  readonly port: number
  /** Always 127.0.0.1. */
  readonly host: string
  /** `redis://` or `rediss://` URL, without credentials. */
  readonly url: string
  /** The pid of the running server process (a restart makes a new one); undefined while it is down. */
  readonly pid: () => number | undefined
  /** The CA certificate (PEM) that signed the server's certificate, when `tls`. */
  readonly ca: string | undefined
  /** Stops the server (SIGTERM, then SIGKILL after 2 s); resolves once the process exited. Idempotent. */
  readonly stop: () => Promise<void>
  /** Kills the server at once (SIGKILL), as a crash; resolves once it exited. */
  readonly kill: () => Promise<void>
  /**
   * Starts it again on the same port with the same options and certificates
   * (after `stop` or `kill`; a running server is stopped first); resolves
   * once it accepts connections.
   */
  readonly restart: () => Promise<void>
  /** Stops the server's process (SIGSTOP): connections stay open, nothing is answered, as a hung Redis. */
  readonly freeze: () => void
  /** Lets a frozen server go on (SIGCONT): it answers what it was sent meanwhile. */
  readonly thaw: () => void
  /**
   * How many client connections the server has, not counting the one that
   * asks (`CLIENT LIST`, authenticated with the server's own credentials).
   */
  readonly clients: () => Promise<number>
  /**
   * Publishes `message`, bytes as they are, on `channel` from a connection
   * of its own (as a foreign publisher would); resolves once the server
   * has taken it.
   */
  readonly publishRaw: (channel: string, message: Uint8Array | string) => Promise<void>
}

/** The redis-server binary `startRedisServer` runs: `REDIS_SERVER_PATH`, else `redis-server` on PATH. */
export const redisServerPath = (): string => process.env.REDIS_SERVER_PATH ?? "redis-server"

const READY_MS = 10_000
const GRACE_MS = 2_000
// after SIGKILL the kernel ends a process at once; this only bounds a wait that should never be long
const EXIT_MS = 5_000
const TAIL_LINES = 50

// the servers still running and their directories, killed and removed if this process exits without stopping them
const running = new Set<ChildProcess>()
const directories = new Set<string>()
let guarding = false
const guard = () => {
  if (guarding) return
  guarding = true
  process.once("exit", () => {
    for (const each of running) each.kill("SIGKILL")
    for (const each of directories) Fs.rmSync(each, { recursive: true, force: true })
  })
}

const makeDirectory = (): string => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "redis-test-"))
  directories.add(directory)
  guard()
  return directory
}

const removeDirectory = (directory: string) => {
  Fs.rmSync(directory, { recursive: true, force: true })
  directories.delete(directory)
}

const writeCertificates = (directory: string, certificates: Certificates) => {
  Fs.writeFileSync(Path.join(directory, "ca.crt"), certificates.ca)
  Fs.writeFileSync(Path.join(directory, "server.crt"), certificates.cert)
  Fs.writeFileSync(Path.join(directory, "server.key"), certificates.key, { mode: 0o600 })
}

/**
 * The command line. Redis joins `--name value …` into one config line and
 * quotes each value, so a password with spaces or quotes stays one token,
 * and `""` is an empty value (no save points, log to stdout).
 */
const serverArgs = (
  port: number,
  directory: string,
  options: RedisServerOptions,
  tls: boolean
): ReadonlyArray<string> => [
  ...["--bind", LOOPBACK, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
  ...["--dir", directory, "--logfile", ""],
  ...(tls
    ? [
        ...["--port", "0", "--tls-port", String(port), "--tls-auth-clients", "no"],
        ...[
          "--tls-cert-file",
          Path.join(directory, "server.crt"),
          "--tls-key-file",
          Path.join(directory, "server.key")
        ],
        ...["--tls-ca-cert-file", Path.join(directory, "ca.crt")]
      ]
    : ["--port", String(port)]),
  ...(options.password === undefined ? [] : ["--requirepass", options.password]),
  ...(options.user === undefined
    ? []
    : ["--user", options.user.name, "on", `>${options.user.password}`, "~*", "&*", "+@all"])
]

/** One redis-server process. */
interface Run {
  readonly child: ChildProcess
  readonly exited: Promise<void>
  readonly hasExited: () => boolean
  /** Whether it has logged that it accepts connections. */
  readonly saidReady: () => boolean
  /** Its last lines of output, stdout and stderr interleaved, and how it ended. */
  readonly output: () => string
}

const spawnServer = (args: ReadonlyArray<string>): Run => {
  const child = spawn(redisServerPath(), args, { stdio: ["ignore", "pipe", "pipe"] })
  let lines: Array<string> = []
  let partial = ""
  let saidReady = false
  const ending: Array<string> = []
  // read both pipes whatever they carry, so that a chatty server never blocks on a full one
  const record = (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop() ?? ""
    if (!saidReady) saidReady = parts.some((line) => readyLine.test(line))
    lines.push(...parts)
    if (lines.length > TAIL_LINES) lines = lines.slice(-TAIL_LINES)
  }
  child.stdout?.setEncoding("utf8").on("data", record)
  child.stderr?.setEncoding("utf8").on("data", record)
  let done = false
  const exited = new Promise<void>((resolve) => {
    const end = (why: string) => {
      if (done) return
      done = true
      ending.push(why)
      running.delete(child)
      resolve()
    }
    child.once("exit", (code, signal) => end(`(exited: code ${code}, signal ${signal})`))
    child.on("error", (error) => {
      ending.push(`${error.message} (set REDIS_SERVER_PATH or install redis-server)`)
      // not spawned at all: there will be no "exit"
      if (child.pid === undefined) end("(not started)")
    })
  })
  if (child.pid !== undefined && !done) {
    running.add(child)
    guard()
  }
  return {
    child,
    exited,
    hasExited: () => done,
    saidReady: () => saidReady,
    output: () => [...lines, partial, ...ending].filter((line) => line !== "").join("\n")
  }
}

/** Ends a run: `signal`, then SIGKILL if it has not exited within the grace period. */
const end = async (run: Run, signal: NodeJS.Signals) => {
  if (run.hasExited()) return
  run.child.kill(signal)
  if (signal !== "SIGKILL" && (await within(run.exited, GRACE_MS))) return
  run.child.kill("SIGKILL")
  await within(run.exited, EXIT_MS)
}

const busy = /address already in use/i
const readyLine = /Ready to accept connections/

/**
 * Starts a server on the port `portFor` gives and waits until it accepts
 * connections. A port another process holds (one `freePort` handed out a
 * moment before someone took it, or the previous server's that the kernel
 * has not released yet) is tried again, up to `attempts` times; any other
 * failure rejects at once, with the server's output.
 */
const launch = async (
  portFor: () => Promise<number>,
  argsFor: (port: number) => ReadonlyArray<string>,
  attempts: number
): Promise<{ readonly run: Run; readonly port: number }> => {
  for (let attempt = 1; ; attempt++) {
    const port = await portFor()
    const deadline = Date.now() + READY_MS
    const run = spawnServer(argsFor(port))
    const listening = await waitForPort(port, { timeoutMs: READY_MS, intervalMs: 50, giveUp: run.hasExited })
    // whatever answered could be another listener on a port this server failed to bind: it must say it is ready too
    const ready =
      listening &&
      (await pollUntil(() => run.hasExited() || run.saidReady(), Math.max(0, deadline - Date.now()))) &&
      !run.hasExited()
    if (ready) return { run, port }
    await end(run, "SIGKILL")
    if (run.hasExited() && busy.test(run.output()) && attempt < attempts) {
      await sleep(200)
      continue
    }
    const why = run.hasExited()
      ? "exited before it was ready"
      : `did not accept connections on ${LOOPBACK}:${port} within ${READY_MS / 1000} s`
    throw new Error(`redis-server ${why}:\n${run.output()}`)
  }
}

const encode = (args: ReadonlyArray<string | Uint8Array>): Buffer =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((arg) => {
      const bytes = typeof arg === "string" ? Buffer.from(arg) : Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength)
      return [Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n")]
    })
  ])

/** The RESP2 reply that starts at `at` (simple, error, integer or bulk string), or undefined until it is complete. */
const parseReply = (
  buffer: Buffer,
  at: number
): { readonly reply: string | Error; readonly next: number } | undefined => {
  const eol = buffer.indexOf("\r\n", at)
  if (eol < 0) return undefined
  const line = buffer.toString("utf8", at + 1, eol)
  switch (String.fromCharCode(buffer[at]!)) {
    case "+":
    case ":":
      return { reply: line, next: eol + 2 }
    case "-":
      return { reply: new Error(line), next: eol + 2 }
    case "$": {
      const length = Number(line)
      if (length < 0) return { reply: "", next: eol + 2 }
      if (buffer.length < eol + 2 + length + 2) return undefined
      return { reply: buffer.toString("utf8", eol + 2, eol + 2 + length), next: eol + 2 + length + 2 }
    }
    default:
      return { reply: new Error(`unexpected reply: ${line}`), next: buffer.length }
  }
}

/**
 * Sends the commands, pipelined, on a connection of its own (TLS when the
 * server serves TLS) and resolves with their replies; rejects on the first
 * error reply, or when the server has not answered within 5 s.
 */
const ask = (
  port: number,
  ca: string | undefined,
  commands: ReadonlyArray<ReadonlyArray<string | Uint8Array>>
): Promise<ReadonlyArray<string>> =>
  new Promise((resolve, reject) => {
    const socket = ca === undefined ? Net.connect({ port, host: LOOPBACK }) : Tls.connect({ port, host: LOOPBACK, ca })
    const replies: Array<string> = []
    let received = Buffer.alloc(0)
    let at = 0
    const done = (error: Error | undefined) => {
      socket.destroy()
      if (error === undefined) resolve(replies)
      else reject(error)
    }
    socket.setTimeout(5_000, () => done(new Error(`redis-server on port ${port} did not answer within 5 s`)))
    socket.once("error", done)
    socket.once(ca === undefined ? "connect" : "secureConnect", () => {
      for (const command of commands) socket.write(encode(command))
    })
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      for (let parsed = parseReply(received, at); parsed !== undefined; parsed = parseReply(received, at)) {
        at = parsed.next
        if (parsed.reply instanceof Error) return done(new Error(`redis-server: ${parsed.reply.message}`))
        replies.push(parsed.reply)
        if (replies.length === commands.length) return done(undefined)
      }
    })
    socket.once("close", () => done(new Error(`redis-server on port ${port} closed the connection`)))
  })

/**
 * Runs a redis-server on a free port of 127.0.0.1 with a fresh temporary
 * directory (removed on `stop`) and resolves once it accepts connections. It
 * rejects, with the server's last output in the message, if the server
 * exits first or is not ready within 10 s (it is killed then).
 */
export const startRedisServer = async (options: RedisServerOptions = {}): Promise<RedisServer> => {
  const tls = options.tls ?? false
  let directory: string | undefined = makeDirectory()
  let certificates: Certificates | undefined
  let started: { readonly run: Run; readonly port: number }
  try {
    certificates = tls ? makeCertificates(directory) : undefined
    const where = directory
    // the first start may pick a new port each time: nobody knows this one yet
    started = await launch(freePort, (port) => serverArgs(port, where, options, tls), 3)
  } catch (error) {
    removeDirectory(directory)
    throw error
  }
  const port = started.port
  let current: Run | undefined = started.run

  // one operation at a time: a restart racing a stop would leave a server nobody stops
  let queue: Promise<unknown> = Promise.resolve()
  const serially = (operation: () => Promise<void>): Promise<void> => {
    const next = queue.then(operation, operation)
    queue = next.catch(() => {})
    return next
  }

  const stop = () =>
    serially(async () => {
      if (current !== undefined) await end(current, "SIGTERM")
      current = undefined
      if (directory !== undefined) removeDirectory(directory)
      directory = undefined
    })
  const kill = () =>
    serially(async () => {
      if (current !== undefined) await end(current, "SIGKILL")
      current = undefined
    })
  const restart = () =>
    serially(async () => {
      if (current !== undefined) await end(current, "SIGTERM")
      current = undefined
      if (directory === undefined) {
        // stopped: a new directory, with the same certificates so that `ca` still holds
        directory = makeDirectory()
        if (certificates !== undefined) writeCertificates(directory, certificates)
      }
      const where = directory
      // the port the previous server held may take a moment to be free again
      const again = await launch(
        () => Promise.resolve(port),
        (p) => serverArgs(p, where, options, tls),
        25
      )
      current = again.run
    })

  const auth: ReadonlyArray<ReadonlyArray<string>> =
    options.user !== undefined
      ? [["AUTH", options.user.name, options.user.password]]
      : options.password !== undefined
        ? [["AUTH", options.password]]
        : []
  const clients = async () => {
    const replies = await ask(port, certificates?.ca, [...auth, ["CLIENT", "LIST"]])
    const list = replies.at(-1) ?? ""
    // every line is a connection, this one among them
    return list.split("\n").filter((line) => line.trim() !== "").length - 1
  }
  const publishRaw = async (channel: string, message: Uint8Array | string) => {
    await ask(port, certificates?.ca, [...auth, ["PUBLISH", channel, message]])
  }

  return {
    port,
    host: LOOPBACK,
    url: `${tls ? "rediss" : "redis"}://${LOOPBACK}:${port}`,
    ca: certificates?.ca,
    pid: () => current?.child.pid,
    stop,
    kill,
    restart,
    freeze: () => void current?.child.kill("SIGSTOP"),
    thaw: () => void current?.child.kill("SIGCONT"),
    clients,
    publishRaw
  }
}
