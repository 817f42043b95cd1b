/**
 * What the chat does to the text people send before anyone else sees it.
 * The page shows nicks and messages with `textContent`, so markup is not a
 * concern; invisible characters are. A bidi override (U+202E) turns
 * "admin" spelled backwards into "admin" on screen and reorders whatever
 * follows it on the line; a zero-width space makes "ada" and "a\u200Bda"
 * two nicks that look the same; a control character can ring a terminal's
 * bell or erase a line of a server log.
 *
 * Nicks lose every control character (C0, DEL, C1: `\p{Cc}`), every format
 * character (`\p{Cf}`: the bidi embeddings, overrides, isolates and marks
 * U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C, the zero-width
 * characters U+200B–U+200D, U+2060 and U+FEFF, the soft hyphen, tag
 * characters), line and paragraph separators and unpaired surrogates; runs
 * of white space become one space and the ends are trimmed. A nick that is
 * then empty is "anonymous". Emoji joined with U+200D fall apart into their
 * parts, a small price for nicks that cannot hide characters.
 *
 * Messages keep their words, line breaks (`\n`) and tabs: they lose the other
 * control characters, the bidi embeddings, overrides and isolates (U+202A–
 * U+202E, U+2066–U+2069, which reorder text after them), the byte order mark
 * and unpaired surrogates. They keep the bidi marks (U+200E, U+200F, U+061C)
 * and the zero-width joiners, which right-to-left scripts and emoji need and
 * which cannot reorder anything beyond their neighbours.
 *
 * @since 0.1.0
 */

const nickStrip = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu
const textStrip = /[[\p{Cc}--[\t\n]]\u202A-\u202E\u2066-\u2069\uFEFF\p{Cs}]/gv

/**
 * The nick others see: invisible characters removed, white space collapsed,
 * trimmed; "anonymous" when nothing is left.
 *
 * @example
 * ```ts
 * nick("\u202Eadmin\u0007") // "admin"
 * nick(" \u200B ") // "anonymous"
 * ```
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const nick = (raw: string): string => raw.replace(nickStrip, "").replace(/\s+/gu, " ").trim() || "anonymous"

/**
 * The message others see: control characters other than `\n` and `\t`, bidi
 * embeddings, overrides and isolates, and the byte order mark removed.
 * May be empty or blank: the caller decides what to do with that.
 *
 * @example
 * ```ts
 * text("hi\u202E there\r\nbye\u0007") // "hi there\nbye"
 * ```
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const text = (raw: string): string => raw.replace(textStrip, "")
