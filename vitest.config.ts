import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // memory tests (a streamed message is never held whole) collect garbage before they measure
    execArgv: ["--expose-gc"],
    // CI reads the counts from the JSON report (see .ci/run)
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: { json: ".vitest/results.json" }
  }
})
