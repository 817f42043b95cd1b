/**
 * Certificates made at test time with openssl (Debian's, always there): a
 * private CA and a server certificate it signed for 127.0.0.1 and localhost,
 * valid for a day, for the TLS tests (Redis over `rediss://`, a `wss://`
 * server).
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** The PEM files of a TLS server. */
export interface Certificates {
  readonly ca: string
  readonly cert: string
  readonly key: string
}

/** A private CA and a server certificate it signed for 127.0.0.1 and localhost, valid for a day. */
export const makeCertificates = (directory: string): Certificates => {
  const file = (name: string) => Path.join(directory, name)
  const openssl = (args: ReadonlyArray<string>) => {
    try {
      execFileSync("openssl", args, { cwd: directory, stdio: ["ignore", "ignore", "pipe"] })
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? ""
      throw new Error(`openssl ${args[0]} failed: ${(error as Error).message}\n${stderr}`)
    }
  }
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=switchboard test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt")
  ])
  openssl([
    "req",
    "-new",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    file("server.key"),
    "-out",
    file("server.csr")
  ])
  // a CSR's extensions are not copied by `x509 -req`: they come from this file
  Fs.writeFileSync(
    file("server.ext"),
    [
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid"
    ].join("\n")
  )
  openssl([
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.crt"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.crt")
  ])
  return {
    ca: Fs.readFileSync(file("ca.crt"), "utf8"),
    cert: Fs.readFileSync(file("server.crt"), "utf8"),
    key: Fs.readFileSync(file("server.key"), "utf8")
  }
}

/** `makeCertificates` in a temporary directory that is removed at once: the PEM strings are all a test keeps. */
export const makeCertificatesInMemory = (): Certificates => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tls-test-"))
  try {
    return makeCertificates(directory)
  } finally {
    Fs.rmSync(directory, { recursive: true, force: true })
  }
}
