"""Measurement tooling: `continuum bench` (every stage measured against its raw limit, in the same run,
on the same store), `python -m bench.kafka` (relay throughput and end-to-end latency),
`python -m bench.api_latency` (the API under concurrent load) and `python -m bench.markdown FILE`
(BENCHMARKS.md's tables from a result).

A top-level package beside the application's: it imports `services`, `infra` and `projections` to
measure them, and none of them imports it (the `continuum bench` command loads it when it runs).
"""

from __future__ import annotations

from bench.harness import MODES, Mode, run_bench

__all__ = ["MODES", "Mode", "run_bench"]
