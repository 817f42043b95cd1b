/**
 * Waiting for what nothing signals: a port that opens, a counter that
 * settles, a process that exits. `pollUntil` checks a condition again every
 * few milliseconds and always gives up at a deadline, so no test or bench
 * script can hang on it; it answers with a boolean rather than failing, so
 * the caller decides what a timeout means (an assertion with the numbers, an
 * error of its own). Shared by the tests and the bench's scripts, which
 * import it by relative path.
 */

/** Whether `promise` settles within `ms` milliseconds (false if not; it is left running). */
export const within = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    void promise.then(() => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Checks `condition` until it holds (resolves `true`) or `timeoutMs` has
 * passed (resolves `false`, after one last check past the deadline). An
 * asynchronous condition is awaited before the next pause of `intervalMs`,
 * so checks never overlap. It rejects only if the condition throws.
 */
export const pollUntil = async (
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20
): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition()) return true
    if (Date.now() > deadline) return false
    await sleep(intervalMs)
  }
}
