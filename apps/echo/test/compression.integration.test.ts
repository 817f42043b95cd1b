/**
 * permessage-deflate conformance of the echo app run with `COMPRESSION=1`,
 * seen from the wire, after the Autobahn test suite's cases 12.x (compressed
 * messages of many sizes and kinds, whole and fragmented) and 13.x (the same
 * under each set of negotiated parameters), and the failures RFC 7692 asks
 * for. A raw TCP client (./rawClient.ts) negotiates, compresses with zlib as
 * a client would (context takeover unless negotiated away), and checks every
 * frame and byte that comes back.
 */
import { randomBytes } from "node:crypto"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { encodeFrame, type Frame, Opcode, RawClient, withTimeout } from "./rawClient.ts"

const HOST = "127.0.0.1"
const ROOT = Path.resolve(import.meta.dirname, "../../..")
const MiB = 1024 * 1024
const LIMIT = 16 * MiB
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

let server: NodeProcess | undefined
let port = 0
const clients = new Set<RawClient>()

beforeAll(async () => {
  server = await startNodeProcess(
    "apps/echo/src/main.ts",
    { MAX_MESSAGE_BYTES: String(LIMIT), COMPRESSION: "true" },
    { cwd: ROOT, name: "the echo app", timeoutMs: 10_000, outputTail: 16_384 }
  )
  port = server.port
})
afterEach(() => {
  for (const client of clients) client.destroy()
  clients.clear()
})
afterAll(async () => {
  await server?.stop()
})

/** The parameters of an accepted `permessage-deflate` response. */
interface Agreed {
  readonly serverNoContextTakeover: boolean
  readonly clientNoContextTakeover: boolean
  readonly serverMaxWindowBits: number
  readonly clientMaxWindowBits: number
}

const parseAgreed = (header: string | undefined): Agreed | undefined => {
  if (header === undefined) return undefined
  const [name, ...params] = header.split(";").map((part) => part.trim())
  if (name !== "permessage-deflate") return undefined
  const values = new Map(params.map((p) => p.split("=").map((x) => x.trim()) as [string, string | undefined]))
  return {
    serverNoContextTakeover: values.has("server_no_context_takeover"),
    clientNoContextTakeover: values.has("client_no_context_takeover"),
    serverMaxWindowBits: Number(values.get("server_max_window_bits") ?? 15),
    clientMaxWindowBits: Number(values.get("client_max_window_bits") ?? 15)
  }
}

/** Runs one zlib stream operation with a sync flush and collects what it wrote. */
const through = (stream: Zlib.DeflateRaw | Zlib.InflateRaw, data: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    const onData = (chunk: Buffer) => chunks.push(chunk)
    const onError = (error: Error) => reject(error)
    stream.on("data", onData)
    stream.once("error", onError)
    stream.write(data)
    stream.flush(Zlib.constants.Z_SYNC_FLUSH, () => {
      stream.off("data", onData)
      stream.off("error", onError)
      resolve(Buffer.concat(chunks))
    })
  })

/** A client's side of one compressed connection: its compressor and its decompressor. */
class Peer {
  readonly client: RawClient
  readonly agreed: Agreed
  private deflater: Zlib.DeflateRaw
  private readonly inflater: Zlib.InflateRaw
  constructor(client: RawClient, agreed: Agreed) {
    this.client = client
    this.agreed = agreed
    this.deflater = Zlib.createDeflateRaw({ windowBits: Math.max(9, agreed.clientMaxWindowBits) })
    this.inflater = Zlib.createInflateRaw({ windowBits: agreed.serverMaxWindowBits })
  }
  async compress(payload: Buffer): Promise<Buffer> {
    const out = await through(this.deflater, payload)
    if (this.agreed.clientNoContextTakeover) {
      this.deflater.close()
      this.deflater = Zlib.createDeflateRaw({ windowBits: Math.max(9, this.agreed.clientMaxWindowBits) })
    }
    expect(out.subarray(-4).equals(TAIL)).toBe(true)
    return out.subarray(0, -4)
  }
  decompress(payload: Buffer): Promise<Buffer> {
    return through(this.inflater, Buffer.concat([payload, TAIL]))
  }
  /** Sends `payload` compressed, whole or in fragments of `fragment` bytes (of the compressed data). */
  async send(opcode: number, payload: Buffer, fragment = 0): Promise<void> {
    const compressed = await this.compress(payload)
    if (fragment === 0 || compressed.length <= fragment) {
      this.client.send({ opcode, payload: compressed, rsv1: true })
      return
    }
    const frames = []
    for (let offset = 0; offset < compressed.length; offset += fragment) {
      const first = offset === 0
      frames.push({
        opcode: first ? opcode : Opcode.Continuation,
        payload: compressed.subarray(offset, offset + fragment),
        rsv1: first,
        fin: offset + fragment >= compressed.length
      })
    }
    this.client.sendAll(frames)
  }
  /** The next message, decompressed; the server never fragments its echoes. */
  async receive(): Promise<{ readonly frame: Frame; readonly payload: Buffer }> {
    const frame = await this.client.nextFrame(10_000)
    expect(frame.masked).toBe(false)
    expect([frame.rsv2, frame.rsv3]).toEqual([false, false])
    expect(frame.fin).toBe(true)
    return { frame, payload: frame.rsv1 ? await this.decompress(frame.payload) : frame.payload }
  }
  close(): void {
    this.deflater.close()
    this.inflater.close()
  }
}

const open = async (offer: string): Promise<Peer> => {
  const client = await RawClient.connect({ port, host: HOST, extensions: offer })
  clients.add(client)
  expect(client.handshake.status).toBe(101)
  const agreed = parseAgreed(client.handshake.headers.get("sec-websocket-extensions"))
  expect(agreed).toBeDefined()
  return new Peer(client, agreed!)
}

const repetitiveText = (size: number): Buffer => {
  const unit = '{"id":1,"name":"switchboard","tags":["a","b"]}'
  return Buffer.from(unit.repeat(Math.ceil(size / unit.length)).slice(0, size), "utf8")
}
const repetitiveBinary = (size: number): Buffer => {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = i % 17
  return bytes
}

/** Sends `count` messages (each checked when it comes back, with at most 32 in flight). */
const roundTrips = async (peer: Peer, opcode: number, make: (i: number) => Buffer, count: number, fragment = 0) => {
  const sent: Array<Buffer> = []
  let received = 0
  const check = async () => {
    const { frame, payload } = await peer.receive()
    expect(frame.opcode).toBe(opcode)
    expect(payload.equals(sent[received]!)).toBe(true)
    received++
  }
  for (let i = 0; i < count; i++) {
    const payload = make(i)
    sent.push(payload)
    await peer.send(opcode, payload, fragment)
    if (sent.length - received >= 32) await check()
  }
  while (received < count) await check()
}

const sizes = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]
const countFor = (size: number) => (size <= 4096 ? 1000 : size <= 32768 ? 200 : 50)

describe("12.x: compressed messages of every size and kind (default offer)", () => {
  const kinds: ReadonlyArray<[string, number, (size: number) => (i: number) => Buffer]> = [
    ["repetitive text", Opcode.Text, (size) => () => repetitiveText(size)],
    ["repetitive binary", Opcode.Binary, (size) => () => repetitiveBinary(size)],
    ["random binary (incompressible)", Opcode.Binary, (size) => () => randomBytes(size)],
    ["text that differs each time", Opcode.Text, (size) => (i) => repetitiveText(size).fill(48 + (i % 10), 0, 1)]
  ]
  for (const [kind, opcode, make] of kinds) {
    it(`${kind}: ${sizes.join(", ")} bytes`, { timeout: 60_000 }, async () => {
      const peer = await open("permessage-deflate; client_max_window_bits")
      for (const size of sizes) await roundTrips(peer, opcode, make(size), countFor(size))
      peer.close()
    })
  }

  it("fragmented compressed messages (fragments of 64, 256 and 4096 compressed bytes)", {
    timeout: 60_000
  }, async () => {
    const peer = await open("permessage-deflate; client_max_window_bits")
    for (const fragment of [64, 256, 4096]) {
      for (const size of [1024, 65536, 131072]) {
        await roundTrips(peer, Opcode.Binary, () => randomBytes(size), 20, fragment)
        await roundTrips(peer, Opcode.Text, () => repetitiveText(size), 20, fragment)
      }
    }
    peer.close()
  })

  it("compressed and uncompressed messages mixed on one connection", async () => {
    const peer = await open("permessage-deflate; client_max_window_bits")
    for (let i = 0; i < 200; i++) {
      const payload = repetitiveText(100 + i)
      if (i % 2 === 0) await peer.send(Opcode.Text, payload)
      else peer.client.send({ opcode: Opcode.Text, payload })
      const { payload: echoed } = await peer.receive()
      expect(echoed.equals(payload)).toBe(true)
    }
    peer.close()
  })
})

describe("13.x: each set of negotiated parameters", () => {
  const offers = [
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9",
    "permessage-deflate; server_max_window_bits=15",
    "permessage-deflate; client_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=15",
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; client_max_window_bits=9",
    // several offers: the server takes the first it can
    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10, permessage-deflate; client_no_context_takeover, permessage-deflate"
  ]
  for (const offer of offers) {
    it(`${offer}`, { timeout: 60_000 }, async () => {
      const peer = await open(offer)
      // the answer holds what was asked for
      if (offer.startsWith("permessage-deflate; server_no_context_takeover"))
        expect(peer.agreed.serverNoContextTakeover).toBe(true)
      const window = /^permessage-deflate; server_max_window_bits=(\d+)/.exec(offer)?.[1]
      if (window !== undefined) expect(peer.agreed.serverMaxWindowBits).toBe(Number(window))
      for (const size of [16, 256, 4096, 65536, 131072]) {
        await roundTrips(peer, Opcode.Text, () => repetitiveText(size), size <= 4096 ? 200 : 20)
        await roundTrips(peer, Opcode.Binary, () => randomBytes(size), size <= 4096 ? 200 : 20)
      }
      peer.close()
    })
  }

  it("refuses a malformed offer with 400 (ws's rule), and takes a connection that offers nothing uncompressed", async () => {
    const client = await RawClient.connect({
      port,
      host: HOST,
      extensions: "permessage-deflate; server_max_window_bits=99"
    })
    clients.add(client)
    expect(client.handshake.status).toBe(400)
    const plain = await RawClient.connect({ port, host: HOST })
    clients.add(plain)
    expect(plain.handshake.status).toBe(101)
    expect(plain.handshake.headers.get("sec-websocket-extensions")).toBeUndefined()
    plain.send({ opcode: Opcode.Text, payload: repetitiveText(5000) })
    const frame = await plain.nextFrame()
    expect(frame.rsv1).toBe(false)
    expect(frame.payload.equals(repetitiveText(5000))).toBe(true)
  })
})

describe("failures", () => {
  /** A close frame with `code`, then the TCP connection closes. */
  const expectFailure = async (client: RawClient, code: number) => {
    const frame = await client.nextFrame()
    expect(frame.opcode).toBe(Opcode.Close)
    expect(frame.payload.readUInt16BE(0)).toBe(code)
    await withTimeout(client.closed, 3_000, "the TCP connection closing")
  }

  it("fails a compressed control frame (RSV1 on a ping) with 1002", async () => {
    const peer = await open("permessage-deflate")
    peer.client.send({ opcode: Opcode.Ping, payload: "x", rsv1: true })
    await expectFailure(peer.client, 1002)
  })

  it("fails RSV1 on a continuation frame with 1002", async () => {
    const peer = await open("permessage-deflate")
    peer.client.sendAll([
      { opcode: Opcode.Text, payload: "a", fin: false },
      { opcode: Opcode.Continuation, payload: "b", rsv1: true }
    ])
    await expectFailure(peer.client, 1002)
  })

  it("fails data that is not deflate with 1007", async () => {
    const peer = await open("permessage-deflate")
    peer.client.send({ opcode: Opcode.Binary, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), rsv1: true })
    await expectFailure(peer.client, 1007)
  })

  it("fails compressed text that is not UTF-8 once inflated with 1007", async () => {
    const peer = await open("permessage-deflate")
    await peer.send(Opcode.Text, Buffer.from([0x68, 0xc3, 0x28]))
    await expectFailure(peer.client, 1007)
  })

  it("fails a decompression bomb with 1009 once it passes MAX_MESSAGE_BYTES (64 MiB of zeros in ~64 KiB)", async () => {
    const peer = await open("permessage-deflate")
    const bomb = Zlib.deflateRawSync(Buffer.alloc(64 * MiB), { finishFlush: Zlib.constants.Z_SYNC_FLUSH })
    expect(bomb.length).toBeLessThan(MiB)
    peer.client.send(encodeFrame({ opcode: Opcode.Binary, payload: bomb.subarray(0, -4), rsv1: true }))
    await expectFailure(peer.client, 1009)
    // the server goes on
    const next = await open("permessage-deflate")
    await roundTrips(next, Opcode.Text, () => repetitiveText(1000), 5)
    next.close()
  })
})
