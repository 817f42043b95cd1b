/**
 * The outbound half of the reactor–actor boundary. A reactor (the Node `ws`
 * reactor, the in-memory test reactor, a future Bun reactor) implements one
 * `Transport` per connection; the actor and the hub write through it and
 * never touch a socket. The inbound half is `Supervisor.Actor`.
 *
 * A transport may coalesce writes: the Node reactor corks a socket on its
 * first write of an event-loop turn and flushes every corked socket once at
 * the end of the turn, so a batch of replies or a burst of broadcasts leaves
 * in one system call. `flush` pushes the buffered writes out at once.
 *
 * Every method is synchronous and must not throw: a reactor that cannot write
 * (the socket is gone) ignores the call and reports the close through
 * `Actor.closedUnsafe`.
 *
 * @since 0.1.0
 */
import type { Message } from "./Message.ts"
import type { PreparedMessage } from "./PreparedMessage.ts"

/**
 * What an actor needs from the socket it is attached to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  /** Writes a text (`string`) or binary (`Uint8Array`) message as one frame. */
  send(message: Message): void
  /** Writes a message that was framed once for many sockets (`prepared.bytes` as they are). */
  sendPrepared(prepared: PreparedMessage): void
  /** Sends a ping frame. */
  ping(): void
  /** Starts the close handshake: sends a close frame with this code and reason. */
  close(code: number, reason: string): void
  /** Destroys the TCP connection at once, without a close handshake. */
  terminate(): void
  /** Bytes written but not yet handed to the kernel. */
  readonly bufferedAmount: number
  /** Stops reading from the peer (TCP backpressure), while the mailbox is full. */
  pause(): void
  /** Reads from the peer again. */
  resume(): void
  /**
   * Hands coalesced writes to the socket now, and reports the next drain
   * through `Actor.drainUnsafe` (at once if nothing is buffered). The actor
   * calls it when `send` has to wait for the socket.
   */
  flush(): void
}
