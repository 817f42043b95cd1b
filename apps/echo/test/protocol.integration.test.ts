/**
 * RFC 6455 conformance of the echo app, seen from the wire: the real app runs
 * as a child process and a raw TCP client (./rawClient.ts) sends hand-built
 * frames, valid and invalid, and checks every byte the server sends back.
 *
 * Every case runs twice: on `/echo`, whose messages ws's receiver buffers
 * whole (and whose replies are single frames), and on `/stream`, whose
 * messages arrive as streams through Switchboard's own receive path and are
 * echoed as streams (a reply may then be fragmented, its fragments
 * interleaved with pongs, and a message the server fails part way may have
 * been echoed in part before the close frame).
 */
import { createHash, randomBytes } from "node:crypto"
import * as Path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type NodeProcess, startNodeProcess } from "../../../test-support/process.ts"
import { acceptFor, closePayload, encodeFrame, type Frame, Opcode, RawClient, withTimeout } from "./rawClient.ts"

const HOST = "127.0.0.1"
const ROOT = Path.resolve(import.meta.dirname, "../../..")
const MiB = 1024 * 1024
/** The limit the conformance cases need (16 MiB messages), set explicitly: the app's default is 1 MiB. */
const LIMIT = 16 * MiB

let server: NodeProcess | undefined
let port = 0
const clients = new Set<RawClient>()

beforeAll(async () => {
  server = await startNodeProcess(
    "apps/echo/src/main.ts",
    { MAX_MESSAGE_BYTES: String(LIMIT) },
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

const connect = async (path: string): Promise<RawClient> => {
  const client = await RawClient.connect({ port, host: HOST, path })
  clients.add(client)
  expect(client.handshake.status).toBe(101)
  return client
}

const bytes = (...values: ReadonlyArray<number>): Buffer => Buffer.from(values)
const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex")

/** A server frame is never masked and, for these messages, never uses RSV bits (RFC 6455 §5.1, §5.2). */
const expectServerFrame = (frame: Frame): void => {
  expect(frame.masked).toBe(false)
  expect([frame.rsv1, frame.rsv2, frame.rsv3]).toEqual([false, false, false])
}

/** True for the route that receives and echoes streams. */
const streams = (client: RawClient): boolean => client.path === "/stream"

/** The payload length's encoding a server must use: the shortest (RFC 6455 §5.2). */
const minimalLengthBits = (length: number): Frame["lengthBits"] => (length < 126 ? 7 : length < 65_536 ? 16 : 64)

/** On `/stream`: the fragments of a reply read while a pong was awaited, and pongs read while a reply was. */
const pendingData = new WeakMap<RawClient, Array<Frame>>()
const pendingControls = new WeakMap<RawClient, Array<Frame>>()

/**
 * The next reply is this message (or control frame), unmasked, each frame
 * with the minimal length encoding. On `/echo` it is a single FIN frame; on
 * `/stream` a data message may come in fragments, with control frames
 * between them (kept for the next control expected). Returns its frames.
 */
const expectEcho = async (client: RawClient, opcode: number, payload: Uint8Array): Promise<ReadonlyArray<Frame>> => {
  const frames: Array<Frame> = []
  if (opcode >= 0x8) {
    let frame = pendingControls.get(client)?.shift()
    while (frame === undefined) {
      const next = await client.nextFrame()
      if (streams(client) && next.opcode < 0x8)
        (pendingData.get(client) ?? pendingData.set(client, []).get(client)!).push(next)
      else frame = next
    }
    frames.push(frame)
  } else {
    frames.push(...(pendingData.get(client) ?? []))
    pendingData.delete(client)
    while (frames.at(-1)?.fin !== true) {
      const next = await client.nextFrame(15_000)
      if (streams(client) && next.opcode >= 0x8 && next.opcode !== Opcode.Close) {
        ;(pendingControls.get(client) ?? pendingControls.set(client, []).get(client)!).push(next)
      } else frames.push(next)
      if (!streams(client)) break
    }
  }
  if (!streams(client)) expect(frames).toHaveLength(1)
  for (const [i, frame] of frames.entries()) {
    expectServerFrame(frame)
    expect(frame.opcode).toBe(i === 0 ? opcode : Opcode.Continuation)
    expect(frame.fin).toBe(i === frames.length - 1)
    expect(frame.lengthBits).toBe(minimalLengthBits(frame.payload.length))
  }
  const received = Buffer.concat(frames.map((frame) => frame.payload))
  expect(received.length).toBe(payload.byteLength)
  expect(received.equals(payload)).toBe(true)
  return frames
}

/** The server closes TCP (its FIN arrives) and the socket ends, without sending anything more. */
const expectTcpClosed = async (client: RawClient): Promise<void> => {
  await withTimeout(client.ended, 3_000, "the server closing its side of the TCP connection")
  await withTimeout(client.closed, 3_000, "the TCP connection closing")
  expect(client.pendingFrames).toBe(0)
  expect(client.pendingBytes).toBe(0)
}

/**
 * The server fails the connection: a close frame with `code`, then the TCP
 * connection closes. On `/stream`, the fragments of an echo that had begun
 * (never its final one: the message did not end) may come first.
 */
const expectFailure = async (client: RawClient, code: number): Promise<void> => {
  let frame = await client.nextFrame()
  while (streams(client) && frame.opcode < 0x8 && !frame.fin) frame = await client.nextFrame(15_000)
  expectServerFrame(frame)
  expect(frame.opcode).toBe(Opcode.Close)
  expect(frame.fin).toBe(true)
  expect(frame.payload.length).toBeGreaterThanOrEqual(2)
  expect(frame.payload.readUInt16BE(0)).toBe(code)
  await expectTcpClosed(client)
}

describe.each(["/echo", "/stream"])("on %s", (path) => {
  describe("the opening handshake", () => {
    it("answers a valid upgrade with 101 and the Sec-WebSocket-Accept derived from the key", async () => {
      const client = await connect(path)
      const { headers, key, statusLine } = client.handshake
      expect(statusLine).toMatch(/^HTTP\/1\.1 101 /)
      expect(headers.get("upgrade")?.toLowerCase()).toBe("websocket")
      expect(
        headers
          .get("connection")
          ?.toLowerCase()
          .split(/\s*,\s*/)
      ).toContain("upgrade")
      expect(headers.get("sec-websocket-accept")).toBe(acceptFor(key))
      expect(headers.has("sec-websocket-extensions")).toBe(false)
    })
  })

  describe("framing", () => {
    it("echoes a short text message in one unmasked FIN text frame with a 7-bit length", async () => {
      const client = await connect(path)
      const payload = Buffer.from("hello, echo")
      client.send({ opcode: Opcode.Text, payload })
      await expectEcho(client, Opcode.Text, payload)
    })

    it("echoes an empty text message and an empty binary message", async () => {
      const client = await connect(path)
      client.sendAll([{ opcode: Opcode.Text }, { opcode: Opcode.Binary }])
      await expectEcho(client, Opcode.Text, Buffer.alloc(0))
      await expectEcho(client, Opcode.Binary, Buffer.alloc(0))
    })

    it("echoes a 125-byte binary message with a 7-bit length", async () => {
      const client = await connect(path)
      const payload = randomBytes(125)
      client.send({ opcode: Opcode.Binary, payload })
      await expectEcho(client, Opcode.Binary, payload)
    })

    it.each([126, 1000, 65_535])("echoes a %i-byte binary message with a 16-bit extended length", async (size) => {
      const client = await connect(path)
      const payload = randomBytes(size)
      client.send({ opcode: Opcode.Binary, payload })
      await expectEcho(client, Opcode.Binary, payload)
    })

    it.each([65_536, 300_000])("echoes a %i-byte binary message with a 64-bit extended length", async (size) => {
      const client = await connect(path)
      const payload = randomBytes(size)
      client.send({ opcode: Opcode.Binary, payload })
      await expectEcho(client, Opcode.Binary, payload)
    })

    it("echoes several messages sent in a single TCP write, in order and with their own opcodes", async () => {
      const client = await connect(path)
      const binary = randomBytes(300)
      client.sendAll([
        { opcode: Opcode.Text, payload: "one" },
        { opcode: Opcode.Binary, payload: binary },
        { opcode: Opcode.Text, payload: "three" }
      ])
      await expectEcho(client, Opcode.Text, Buffer.from("one"))
      await expectEcho(client, Opcode.Binary, binary)
      await expectEcho(client, Opcode.Text, Buffer.from("three"))
    })

    it("reassembles a frame whose header, extended length, mask and payload arrive in separate TCP chunks", async () => {
      const client = await connect(path)
      const payload = randomBytes(200)
      const frame = encodeFrame({ opcode: Opcode.Binary, payload })
      // 2 header bytes, 2 length bytes, 4 mask bytes, then the payload in two pieces
      await client.sendInPieces(frame, [1, 1, 1, 1, 1, 1, 1, 1, 50])
      await expectEcho(client, Opcode.Binary, payload)
    })

    it("accepts a frame masked with an all-zero key", async () => {
      const client = await connect(path)
      const payload = Buffer.from("zero mask")
      const frame = Buffer.concat([bytes(0x81, 0x80 | payload.length, 0, 0, 0, 0), payload])
      client.send(frame)
      await expectEcho(client, Opcode.Text, payload)
    })
  })

  describe("ping and pong", () => {
    it("answers a ping with a pong carrying the identical payload", async () => {
      const client = await connect(path)
      const payload = randomBytes(20)
      client.send({ opcode: Opcode.Ping, payload })
      await expectEcho(client, Opcode.Pong, payload)
    })

    it("answers an empty ping with an empty pong", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Ping })
      await expectEcho(client, Opcode.Pong, Buffer.alloc(0))
    })

    it("answers a ping with the largest allowed payload of 125 bytes", async () => {
      const client = await connect(path)
      const payload = randomBytes(125)
      client.send({ opcode: Opcode.Ping, payload })
      await expectEcho(client, Opcode.Pong, payload)
    })

    it("answers pings sent between the fragments of a message and still echoes the message whole", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Text, fin: false, payload: "Hello" })
      client.send({ opcode: Opcode.Ping, payload: "first" })
      await expectEcho(client, Opcode.Pong, Buffer.from("first"))
      client.send({ opcode: Opcode.Continuation, fin: false, payload: ", " })
      client.send({ opcode: Opcode.Ping, payload: "second" })
      await expectEcho(client, Opcode.Pong, Buffer.from("second"))
      client.send({ opcode: Opcode.Continuation, fin: true, payload: "world" })
      await expectEcho(client, Opcode.Text, Buffer.from("Hello, world"))
    })

    it("ignores an unsolicited pong and keeps the connection open", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Pong, payload: "unsolicited" },
        { opcode: Opcode.Text, payload: "still here" }
      ])
      await expectEcho(client, Opcode.Text, Buffer.from("still here"))
      expect(client.isOpen).toBe(true)
    })
  })

  describe("reserved bits", () => {
    it.each([
      ["RSV1", { rsv1: true }],
      ["RSV2", { rsv2: true }],
      ["RSV3", { rsv3: true }],
      ["all three RSV bits", { rsv1: true, rsv2: true, rsv3: true }]
    ] as const)(
      "fails the connection with 1002 when a text frame has %s set and no extension was negotiated",
      async (_, bits) => {
        const client = await connect(path)
        client.send({ opcode: Opcode.Text, payload: "reserved", ...bits })
        await expectFailure(client, 1002)
      }
    )

    it("fails the connection with 1002 when a ping has RSV1 set", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Ping, payload: "x", rsv1: true })
      await expectFailure(client, 1002)
    })

    it("fails the connection with 1002 when a continuation frame has RSV1 set", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: "frag" },
        { opcode: Opcode.Continuation, payload: "ment", rsv1: true }
      ])
      await expectFailure(client, 1002)
    })
  })

  describe("reserved opcodes", () => {
    it.each([0x3, 0x4, 0x5, 0x6, 0x7])("fails the connection with 1002 on reserved data opcode %i", async (opcode) => {
      const client = await connect(path)
      client.send({ opcode, payload: "reserved" })
      await expectFailure(client, 1002)
    })

    it.each([0xb, 0xc, 0xd, 0xe, 0xf])(
      "fails the connection with 1002 on reserved control opcode %i",
      async (opcode) => {
        const client = await connect(path)
        client.send({ opcode, payload: "reserved" })
        await expectFailure(client, 1002)
      }
    )

    it("fails the connection with 1002 on a reserved opcode sent between the fragments of a message", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: "frag" },
        { opcode: 0xb, payload: "reserved" }
      ])
      await expectFailure(client, 1002)
    })
  })

  describe("fragmentation", () => {
    it("echoes a text message split over three fragments as one message", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: "frag" },
        { opcode: Opcode.Continuation, fin: false, payload: "men" },
        { opcode: Opcode.Continuation, fin: true, payload: "ted" }
      ])
      await expectEcho(client, Opcode.Text, Buffer.from("fragmented"))
    })

    it("echoes a binary message whose fragments include empty ones, sent in separate TCP writes", async () => {
      const client = await connect(path)
      const parts = [randomBytes(1000), Buffer.alloc(0), randomBytes(70_000), Buffer.alloc(0)]
      parts.forEach((payload, i) => {
        client.send({ opcode: i === 0 ? Opcode.Binary : Opcode.Continuation, fin: i === parts.length - 1, payload })
      })
      await expectEcho(client, Opcode.Binary, Buffer.concat(parts))
    })

    it("fails the connection with 1002 on a continuation frame when no message is in progress", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Continuation, payload: "orphan" })
      await expectFailure(client, 1002)
    })

    it("fails the connection with 1002 on a continuation frame after a message has been completed", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Text, payload: "complete" })
      await expectEcho(client, Opcode.Text, Buffer.from("complete"))
      client.send({ opcode: Opcode.Continuation, payload: "orphan" })
      await expectFailure(client, 1002)
    })

    it.each([
      ["text", Opcode.Text],
      ["binary", Opcode.Binary]
    ] as const)(
      "fails the connection with 1002 on a new %s frame while a fragmented message is in progress",
      async (_, opcode) => {
        const client = await connect(path)
        client.sendAll([
          { opcode: Opcode.Text, fin: false, payload: "started" },
          { opcode, payload: "interloper" }
        ])
        await expectFailure(client, 1002)
      }
    )

    it.each([
      ["ping", Opcode.Ping],
      ["pong", Opcode.Pong],
      ["close", Opcode.Close]
    ] as const)("fails the connection with 1002 on a fragmented control frame (%s with FIN=0)", async (_, opcode) => {
      const client = await connect(path)
      client.send({ opcode, fin: false, payload: opcode === Opcode.Close ? closePayload(1000) : "x" })
      await expectFailure(client, 1002)
    })

    it.each([
      ["ping", Opcode.Ping],
      ["pong", Opcode.Pong],
      ["close", Opcode.Close]
    ] as const)("fails the connection with 1002 on a %s frame with a 126-byte payload", async (_, opcode) => {
      const client = await connect(path)
      const payload = opcode === Opcode.Close ? closePayload(1000, "r".repeat(124)) : randomBytes(126)
      expect(payload.length).toBe(126)
      client.send({ opcode, payload })
      await expectFailure(client, 1002)
    })
  })

  describe("UTF-8", () => {
    it("echoes valid text with 2-, 3- and 4-byte code points unchanged", async () => {
      const client = await connect(path)
      const payload = Buffer.from("héllo wörld — €100 你好 🌍🎉 \u{10FFFF}", "utf8")
      client.send({ opcode: Opcode.Text, payload })
      await expectEcho(client, Opcode.Text, payload)
    })

    it.each([
      ["a lone 0xFF byte", bytes(0x61, 0xff, 0x62)],
      ["an unexpected continuation byte", bytes(0x61, 0x80)],
      ["an overlong encoding of '/'", bytes(0xc0, 0xaf)],
      ["an overlong 3-byte encoding", bytes(0xe0, 0x80, 0xaf)],
      ["a UTF-16 surrogate (U+D800)", bytes(0xed, 0xa0, 0x80)],
      ["a code point above U+10FFFF", bytes(0xf4, 0x90, 0x80, 0x80)],
      ["a truncated 3-byte sequence at the end", bytes(0x61, 0xe2, 0x82)],
      ["a 2-byte lead followed by ASCII", bytes(0xc3, 0x28)]
    ])("fails the connection with 1007 on a text frame containing %s", async (_, payload) => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Text, payload })
      await expectFailure(client, 1007)
    })

    it("accepts and echoes valid UTF-8 split across fragments in the middle of code points", async () => {
      const client = await connect(path)
      const text = Buffer.from("κόσμε🌍€", "utf8")
      const globe = text.indexOf(Buffer.from("🌍"))
      const euro = text.indexOf(Buffer.from("€"))
      // split inside "ό" (2 bytes), inside "🌍" (4 bytes) and inside "€" (3 bytes)
      const cuts = [3, globe + 1, globe + 3, euro + 2]
      const pieces = [0, ...cuts].map((start, i) => text.subarray(start, cuts[i] ?? text.length))
      client.sendAll(
        pieces.map((payload, i) => ({
          opcode: i === 0 ? Opcode.Text : Opcode.Continuation,
          fin: i === pieces.length - 1,
          payload
        }))
      )
      await expectEcho(client, Opcode.Text, text)
    })

    it("fails the connection with 1007 when UTF-8 that is invalid only across fragments is sent", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: bytes(0x61, 0x62, 0xe2, 0x82) },
        { opcode: Opcode.Continuation, fin: true, payload: bytes(0x28, 0x63) }
      ])
      await expectFailure(client, 1007)
    })

    it("fails the connection with 1007 when a fragmented text message ends inside a code point", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: bytes(0x61, 0xf0, 0x9f) },
        { opcode: Opcode.Continuation, fin: true, payload: bytes(0x8c) }
      ])
      await expectFailure(client, 1007)
    })

    it("fails the connection with 1007 when the first fragment is already invalid, at the latest when the message ends", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Text, fin: false, payload: bytes(0x61, 0xff) },
        { opcode: Opcode.Continuation, fin: true, payload: "valid tail" }
      ])
      await expectFailure(client, 1007)
    })

    it("echoes a leading byte order mark unchanged instead of stripping it", async () => {
      const client = await connect(path)
      const payload = bytes(0xef, 0xbb, 0xbf, 0x61)
      client.send({ opcode: Opcode.Text, payload })
      await expectEcho(client, Opcode.Text, payload)
    })

    it("does not validate binary messages as UTF-8", async () => {
      const client = await connect(path)
      const payload = bytes(0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80)
      client.send({ opcode: Opcode.Binary, payload })
      await expectEcho(client, Opcode.Binary, payload)
    })
  })

  describe("the closing handshake", () => {
    it("answers a close with code 1000 and a reason with a close frame carrying 1000, then closes TCP", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Close, payload: closePayload(1000, "bye now") })
      const frame = await client.nextFrame()
      expectServerFrame(frame)
      expect(frame.opcode).toBe(Opcode.Close)
      expect(frame.fin).toBe(true)
      expect(frame.payload.length).toBeGreaterThanOrEqual(2)
      expect(frame.payload.readUInt16BE(0)).toBe(1000)
      await expectTcpClosed(client)
    })

    it("answers a close with an empty payload with an empty close or one carrying 1000, then closes TCP", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Close })
      const frame = await client.nextFrame()
      expectServerFrame(frame)
      expect(frame.opcode).toBe(Opcode.Close)
      expect(frame.fin).toBe(true)
      if (frame.payload.length > 0) expect(frame.payload.readUInt16BE(0)).toBe(1000)
      await expectTcpClosed(client)
    })

    it.each([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])(
      "accepts the valid close code %i and answers with a close frame, not a protocol error",
      async (code) => {
        const client = await connect(path)
        client.send({ opcode: Opcode.Close, payload: closePayload(code, "done") })
        const frame = await client.nextFrame()
        expectServerFrame(frame)
        expect(frame.opcode).toBe(Opcode.Close)
        expect(frame.payload.length).toBeGreaterThanOrEqual(2)
        expect([code, 1000]).toContain(frame.payload.readUInt16BE(0))
        await expectTcpClosed(client)
      }
    )

    it.each([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535])(
      "fails the connection with 1002 on the invalid close code %i",
      async (code) => {
        const client = await connect(path)
        client.send({ opcode: Opcode.Close, payload: closePayload(code) })
        await expectFailure(client, 1002)
      }
    )

    it("fails the connection with 1002 on a close frame with a 1-byte payload", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Close, payload: bytes(0x03) })
      await expectFailure(client, 1002)
    })

    it("fails the connection with 1007 on a close reason that is not valid UTF-8", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Close, payload: closePayload(1000, bytes(0x6f, 0x6b, 0xff, 0xfe)) })
      await expectFailure(client, 1007)
    })

    it("accepts a close reason of the largest size (123 bytes of multi-byte UTF-8)", async () => {
      const client = await connect(path)
      const reason = `${"é".repeat(61)}!`
      expect(Buffer.byteLength(reason)).toBe(123)
      client.send({ opcode: Opcode.Close, payload: closePayload(1000, reason) })
      const frame = await client.nextFrame()
      expect(frame.opcode).toBe(Opcode.Close)
      expect(frame.payload.readUInt16BE(0)).toBe(1000)
      await expectTcpClosed(client)
    })

    it("sends nothing after its close frame, even for data frames that followed the client's close", async () => {
      const client = await connect(path)
      client.sendAll([
        { opcode: Opcode.Close, payload: closePayload(1000) },
        { opcode: Opcode.Text, payload: "after close" },
        { opcode: Opcode.Ping, payload: "after close" }
      ])
      const frame = await client.nextFrame()
      expect(frame.opcode).toBe(Opcode.Close)
      expect(frame.payload.readUInt16BE(0)).toBe(1000)
      await expectTcpClosed(client)
    })
  })

  describe("message size and masking", () => {
    it("echoes a binary message of exactly the 16 MiB limit intact", async () => {
      const client = await connect(path)
      const payload = randomBytes(LIMIT)
      client.send({ opcode: Opcode.Binary, payload })
      const message = await client.nextMessage(15_000, 100_000)
      expect(message.opcode).toBe(Opcode.Binary)
      for (const frame of message.frames) expectServerFrame(frame)
      expect(message.controls).toEqual([])
      expect(message.payload.length).toBe(LIMIT)
      expect(sha256(message.payload)).toBe(sha256(payload))
    }, 25_000)

    it("fails the connection with 1009 on a single frame one byte over the 16 MiB limit", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Binary, payload: Buffer.alloc(LIMIT + 1, 0x2a) })
      await expectFailure(client, 1009)
    }, 20_000)

    it("fails the connection with 1009 when the fragments of one message add up to more than 16 MiB", async () => {
      const client = await connect(path)
      client.send({ opcode: Opcode.Binary, fin: false, payload: Buffer.alloc(LIMIT / 2, 0x2a) })
      client.send({ opcode: Opcode.Continuation, fin: true, payload: Buffer.alloc(LIMIT / 2 + 1, 0x2a) })
      await expectFailure(client, 1009)
    }, 20_000)

    it.each([
      ["text frame", Opcode.Text, Buffer.from("not masked")],
      ["binary frame", Opcode.Binary, randomBytes(300)],
      ["ping", Opcode.Ping, Buffer.from("not masked")],
      ["close frame", Opcode.Close, closePayload(1000)]
    ] as const)("fails the connection with 1002 on an unmasked client %s", async (_, opcode, payload) => {
      const client = await connect(path)
      client.send({ opcode, payload, masked: false })
      await expectFailure(client, 1002)
    })

    it("fails the connection when a 64-bit length has its most significant bit set", async () => {
      const client = await connect(path)
      // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. The RFC names no code for
      // this malformed header: 1002 (protocol error) and 1009 (too big) both fit; ws answers 1009.
      client.send(Buffer.concat([bytes(0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5), randomBytes(4), Buffer.alloc(5)]))
      const frame = await client.nextFrame()
      expectServerFrame(frame)
      expect(frame.opcode).toBe(Opcode.Close)
      expect([1002, 1009]).toContain(frame.payload.readUInt16BE(0))
      await expectTcpClosed(client)
    })
  })
})
