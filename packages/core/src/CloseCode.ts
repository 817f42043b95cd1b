/**
 * WebSocket close codes (RFC 6455 §7.4) as named constants, and the rules for
 * which codes may appear in a close frame.
 *
 * @example
 * ```ts
 * import { Behavior, CloseCode } from "@switchboard/core"
 *
 * const TextOnly = Behavior.make({
 *   onMessage: (conn, message) =>
 *     typeof message === "string" ? conn.send(message) : conn.close(CloseCode.UnsupportedData, "text only")
 * })
 * ```
 *
 * @since 0.1.0
 */
import { byteLength } from "./Message.ts"

/** Normal closure. @since 0.1.0 @category codes */
export const Normal = 1000
/** The endpoint is going away: server shutdown or a browser leaving the page. @since 0.1.0 @category codes */
export const GoingAway = 1001
/** The peer violated the protocol. @since 0.1.0 @category codes */
export const ProtocolError = 1002
/** The peer sent a data type the endpoint cannot accept. @since 0.1.0 @category codes */
export const UnsupportedData = 1003
/** No status code was present in the close frame (never sent on the wire). @since 0.1.0 @category codes */
export const NoStatus = 1005
/** The connection dropped without a close frame (never sent on the wire). @since 0.1.0 @category codes */
export const Abnormal = 1006
/** A text message was not valid UTF-8. @since 0.1.0 @category codes */
export const InvalidPayload = 1007
/** The message violates the endpoint's policy (also: a slow consumer closed by the hub). @since 0.1.0 @category codes */
export const PolicyViolation = 1008
/** A message exceeded the configured maximum size. @since 0.1.0 @category codes */
export const MessageTooBig = 1009
/** The client expected an extension the server did not negotiate. @since 0.1.0 @category codes */
export const MandatoryExtension = 1010
/** The server hit an unexpected condition: a behaviour failed. @since 0.1.0 @category codes */
export const InternalError = 1011
/** The service is restarting. @since 0.1.0 @category codes */
export const ServiceRestart = 1012
/** Try again later (also: a slow consumer closed by the hub). @since 0.1.0 @category codes */
export const TryAgainLater = 1013

/**
 * True when `code` may be sent in a close frame: 1000–1003, 1007–1014 and
 * 3000–4999 (RFC 6455 §7.4.1 and the IANA registry). 1004–1006 and 1015 are
 * reserved and never sent.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSendable = (code: number): boolean =>
  Number.isInteger(code) &&
  ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))

/**
 * The longest close reason, in bytes of UTF-8: a control frame carries at
 * most 125 bytes, two of which are the code (RFC 6455 §5.5).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxReasonBytes = 123

/**
 * True when `reason` fits in a close frame (`maxReasonBytes` of UTF-8).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSendableReason = (reason: string): boolean => byteLength(reason) <= maxReasonBytes
