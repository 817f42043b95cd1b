/**
 * Installs the system packages the test suite needs when they are missing:
 * Debian's Chromium for the chat page's browser test. Runs before `pnpm test`
 * so that the README's test command works on a fresh machine. Uses apt-get
 * (as root, or through sudo); anywhere else it says what to install.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"

const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

const run = (command: string, args: ReadonlyArray<string>) =>
  execFileSync(command, args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })

const has = (command: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

if (!existsSync(chromium)) {
  if (!has("apt-get")) {
    console.error(`No Chromium at ${chromium} and no apt-get: install Chromium and set CHROMIUM_PATH.`)
    process.exit(1)
  }
  const root = process.getuid?.() === 0
  const apt = (args: ReadonlyArray<string>) => (root ? run("apt-get", args) : run("sudo", ["apt-get", ...args]))
  console.log("Installing Debian's chromium for the browser tests (apt-get) …")
  apt(["update", "-qq"])
  apt(["install", "-y", "-qq", "chromium"])
}
