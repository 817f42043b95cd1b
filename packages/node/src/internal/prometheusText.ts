/**
 * Every metric of a context in the Prometheus text format (0.0.4): what
 * `effect/observability/PrometheusMetrics`'s `formatUnsafe` writes, line for
 * line, without loading that module, which imports Effect's whole HTTP stack
 * for its router layer (about 16 MB of RSS in a server that never serves
 * it through Effect's router; measured in docs/benchmarks.md).
 */
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"

/** The exposition text, one family per metric name, with a trailing newline when there is any. */
export const format = (context: Context.Context<never>): string => {
  const families = new Map<string, Array<Metric.Metric.Snapshot>>()
  for (const metric of Metric.snapshotUnsafe(context)) {
    const name = metricName(metric.id)
    const family = families.get(name)
    if (family === undefined) families.set(name, [metric])
    else family.push(metric)
  }
  const lines: Array<string> = []
  for (const [name, metrics] of families) {
    const first = metrics[0]!
    if (first.description)
      lines.push(`# HELP ${name} ${first.description.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`)
    lines.push(`# TYPE ${name} ${typeNames[first.type]}`)
    for (const metric of metrics) series(name, metric, lines)
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : ""
}

const typeNames: Record<Metric.Metric.Type, string> = {
  Counter: "counter",
  Gauge: "gauge",
  Histogram: "histogram",
  Summary: "summary",
  Frequency: "counter"
}

const series = (name: string, metric: Metric.Metric.Snapshot, lines: Array<string>): void => {
  const attributes = metric.attributes
  switch (metric.type) {
    case "Counter":
      lines.push(`${name}${labels(attributes)} ${value(metric.state.count)}`)
      return
    case "Gauge":
      lines.push(`${name}${labels(attributes)} ${value(metric.state.value)}`)
      return
    case "Histogram": {
      const state = metric.state
      for (const [boundary, count] of state.buckets) {
        if (boundary !== Number.POSITIVE_INFINITY) {
          lines.push(`${name}_bucket${labels(attributes, ["le", boundary.toString()])} ${count}`)
        }
      }
      lines.push(`${name}_bucket${labels(attributes, ["le", "+Inf"])} ${state.count}`)
      lines.push(`${name}_sum${labels(attributes)} ${value(state.sum)}`)
      lines.push(`${name}_count${labels(attributes)} ${state.count}`)
      return
    }
    case "Summary": {
      const state = metric.state
      for (const [quantile, q] of state.quantiles) {
        if (q !== undefined) lines.push(`${name}${labels(attributes, ["quantile", quantile.toString()])} ${value(q)}`)
      }
      lines.push(`${name}_sum${labels(attributes)} ${value(state.sum)}`)
      lines.push(`${name}_count${labels(attributes)} ${state.count}`)
      return
    }
    case "Frequency":
      for (const [key, count] of metric.state.occurrences)
        lines.push(`${name}${labels(attributes, ["key", key])} ${count}`)
      return
  }
}

const metricName = (id: string): string => {
  let name = id.replace(/[^a-zA-Z0-9_:]/g, "_")
  if (/^[0-9:]/.test(name)) name = `_${name}`
  return name.replace(/_+/g, "_").replace(/_$/, "")
}

const labelName = (key: string): string => {
  const name = key.replace(/[^a-zA-Z0-9_]/g, "_")
  return (/^[0-9]/.test(name) ? `_${name}` : name).replace(/_+/g, "_")
}

const labelValue = (text: string): string => text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const labels = (attributes: Metric.Metric.AttributeSet | undefined, extra?: readonly [string, string]): string => {
  const out: Array<string> = []
  if (attributes !== undefined) {
    for (const [key, text] of Object.entries(attributes)) {
      if (key !== "unit" && key !== "time_unit") out.push(`${labelName(key)}="${labelValue(text)}"`)
    }
  }
  if (extra !== undefined) out.push(`${labelName(extra[0])}="${labelValue(extra[1])}"`)
  return out.length > 0 ? `{${out.join(",")}}` : ""
}

const value = (n: number | bigint): string =>
  typeof n === "bigint"
    ? n.toString()
    : Number.isNaN(n)
      ? "NaN"
      : n === Number.POSITIVE_INFINITY
        ? "+Inf"
        : n === Number.NEGATIVE_INFINITY
          ? "-Inf"
          : n.toString()
