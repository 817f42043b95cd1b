/**
 * Installs the system packages the test suite needs when they are missing:
 * Debian's Chromium for the chat page's browser tests, and Debian's
 * redis-server for the Redis backplane's tests (each test starts its own
 * server on a free loopback port; none is left running). Runs before
 * `pnpm test` so that the README's test command works on a fresh machine.
 * Uses apt-get (as root, or through sudo); anywhere else it says what to
 * install.
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

const redisServer = process.env.REDIS_SERVER_PATH ?? "redis-server"

const missing: Array<string> = []
if (!existsSync(chromium)) missing.push("chromium")
if (process.env.REDIS_SERVER_PATH === undefined ? !has("redis-server") : !existsSync(redisServer)) {
  missing.push("redis-server")
}

if (missing.length > 0) {
  if (!has("apt-get")) {
    console.error(
      `Missing ${missing.join(" and ")} and no apt-get: install them (and set CHROMIUM_PATH / REDIS_SERVER_PATH).`
    )
    process.exit(1)
  }
  const root = process.getuid?.() === 0
  const apt = (args: ReadonlyArray<string>) => (root ? run("apt-get", args) : run("sudo", ["apt-get", ...args]))
  console.log(`Installing Debian's ${missing.join(" and ")} for the tests (apt-get) …`)
  apt(["update", "-qq"])
  apt(["install", "-y", "-qq", "--no-install-recommends", ...missing])
}
