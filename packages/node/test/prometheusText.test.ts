import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as PrometheusText from "../src/internal/prometheusText.ts"

describe("prometheusText", () => {
  it.effect("writes what Effect's PrometheusMetrics writes, for every kind of metric", () =>
    Effect.gen(function* () {
      const counter = Metric.counter("requests.total-1", { description: 'all "requests"\nback\\slash' })
      yield* Metric.update(counter, 3)
      yield* Metric.update(Metric.withAttributes(counter, { route: '/a"b\\c\nd', "9bad-key": "x", unit: "s" }), 2)
      yield* Metric.update(Metric.gauge("9_open__conns_"), 7.5)
      yield* Metric.update(Metric.gauge("big", { bigint: true }), 12345678901234567890n)
      const histogram = Metric.histogram("latency_seconds", {
        description: "latency",
        boundaries: Metric.linearBoundaries({ start: 0, width: 0.5, count: 4 })
      })
      for (const v of [0.1, 0.7, 3, Number.POSITIVE_INFINITY]) yield* Metric.update(histogram, v)
      const summary = Metric.summary("sizes", { maxAge: "1 minute", maxSize: 10, quantiles: [0.5, 0.99] })
      for (const v of [1, 2, 3]) yield* Metric.update(summary, v)
      yield* Metric.update(Metric.summary("empty_summary", { maxAge: "1 minute", maxSize: 10, quantiles: [0.5] }), 1)
      const frequency = Metric.frequency("codes")
      for (const code of ["1000", "1001", "1000"]) yield* Metric.update(frequency, code)
      yield* Metric.update(Metric.gauge("not_a_number"), Number.NaN)
      yield* Metric.update(Metric.gauge("minus_infinity"), Number.NEGATIVE_INFINITY)
      const context = yield* Effect.context<never>()
      const ours = PrometheusText.format(context)
      expect(ours).toBe(PrometheusMetrics.formatUnsafe(context))
      // the reference covers what was registered
      expect(ours).toContain('requests_total_1{route="/a\\"b\\\\c\\nd",_9bad_key="x"} 2')
      expect(ours).toContain('latency_seconds_bucket{le="+Inf"} 4')
      expect(ours).toContain('codes{key="1000"} 2')
      expect(ours).toContain("big 12345678901234567890")
    })
  )

  it("agrees with the reference on the default context", () => {
    expect(PrometheusText.format(Effect.runSync(Effect.context<never>()))).toBe(
      PrometheusMetrics.formatUnsafe(Effect.runSync(Effect.context<never>()))
    )
  })
})
