/**
 * Merging the Prometheus texts of several reactors: one HELP and TYPE per
 * family, every sample labelled with its reactor, histograms' series kept
 * together under their family.
 */
import { describe, expect, it } from "@effect/vitest"
import { merge } from "../src/internal/metricsScrape.ts"

const reactor = (open: number, bucket: number) =>
  [
    "# HELP switchboard_connections_open Connections open",
    "# TYPE switchboard_connections_open gauge",
    `switchboard_connections_open{route="/a"} ${open}`,
    "# HELP switchboard_messages_received_total Messages",
    "# TYPE switchboard_messages_received_total counter",
    `switchboard_messages_received_total ${open * 10}`,
    "# TYPE switchboard_close_duration_seconds histogram",
    `switchboard_close_duration_seconds_bucket{le="0.1"} ${bucket}`,
    `switchboard_close_duration_seconds_sum 0.5`,
    `switchboard_close_duration_seconds_count ${bucket}`,
    ""
  ].join("\n")

describe("metricsScrape.merge", () => {
  it("labels each reactor's samples and keeps one HELP and TYPE per family", () => {
    const merged = merge(
      new Map([
        [1, reactor(3, 2)],
        [0, reactor(5, 4)]
      ])
    )
    expect(merged.split("\n")).toEqual([
      "# HELP switchboard_connections_open Connections open",
      "# TYPE switchboard_connections_open gauge",
      'switchboard_connections_open{reactor="0",route="/a"} 5',
      'switchboard_connections_open{reactor="1",route="/a"} 3',
      "# HELP switchboard_messages_received_total Messages",
      "# TYPE switchboard_messages_received_total counter",
      'switchboard_messages_received_total{reactor="0"} 50',
      'switchboard_messages_received_total{reactor="1"} 30',
      "# TYPE switchboard_close_duration_seconds histogram",
      'switchboard_close_duration_seconds_bucket{reactor="0",le="0.1"} 4',
      'switchboard_close_duration_seconds_sum{reactor="0"} 0.5',
      'switchboard_close_duration_seconds_count{reactor="0"} 4',
      'switchboard_close_duration_seconds_bucket{reactor="1",le="0.1"} 2',
      'switchboard_close_duration_seconds_sum{reactor="1"} 0.5',
      'switchboard_close_duration_seconds_count{reactor="1"} 2',
      ""
    ])
  })

  it("labels a sample with empty braces too", () => {
    expect(merge(new Map([[2, "x{} 1\n"]]))).toBe('x{reactor="2"} 1\n')
  })
})
