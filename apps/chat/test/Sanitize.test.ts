import { describe, expect, it } from "vitest"
import * as Sanitize from "../src/Sanitize.ts"

describe("Sanitize.nick", () => {
  it("removes bidi overrides and control characters", () => {
    expect(Sanitize.nick("\u202Eadmin\u0007")).toBe("admin")
    expect(Sanitize.nick("\u202Enimda")).toBe("nimda")
  })

  it("removes C0, DEL and C1 controls", () => {
    expect(Sanitize.nick("a\u0000b\u001Bc\u007Fd\u0080e\u009Ff")).toBe("abcdef")
  })

  it("removes bidi embeddings, overrides, isolates and marks", () => {
    const bidi = "\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u200E\u200F\u061C"
    expect(Sanitize.nick(`ad${bidi}a`)).toBe("ada")
  })

  it("removes zero-width characters, the byte order mark and the soft hyphen", () => {
    expect(Sanitize.nick("a\u200Bd\u200Ca\u200D\uFEFF\u2060\u00AD")).toBe("ada")
  })

  it("removes line separators and unpaired surrogates, keeps paired ones", () => {
    expect(Sanitize.nick("a\u2028d\u2029a\uD800")).toBe("ada")
    expect(Sanitize.nick("ada 👋")).toBe("ada 👋")
  })

  it("trims, collapses white space, and keeps ordinary letters of any script", () => {
    expect(Sanitize.nick("  ada \t  lovelace\n ")).toBe("ada lovelace")
    expect(Sanitize.nick("زهراء")).toBe("زهراء")
    expect(Sanitize.nick("Zoë 李")).toBe("Zoë 李")
  })

  it("answers anonymous when nothing is left", () => {
    expect(Sanitize.nick("")).toBe("anonymous")
    expect(Sanitize.nick(" \u200B\u202E\u0007 ")).toBe("anonymous")
  })
})

describe("Sanitize.text", () => {
  it("keeps newlines and tabs and removes other controls", () => {
    expect(Sanitize.text("line one\r\nline\ttwo\u0007\u001B[2K\u009B")).toBe("line one\nline\ttwo[2K")
  })

  it("removes bidi embeddings, overrides and isolates, and the byte order mark", () => {
    expect(Sanitize.text("\uFEFFhi \u202Eevil\u202C \u2066x\u2069 \u202A\u202B\u202D\u2067\u2068")).toBe("hi evil x ")
  })

  it("keeps bidi marks, zero-width joiners and emoji sequences", () => {
    const text = "שלום\u200F ok \u200E — می\u200Cخواهم 👩\u200D💻 \u061C"
    expect(Sanitize.text(text)).toBe(text)
  })
})
