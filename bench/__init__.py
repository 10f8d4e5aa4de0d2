"""Measurement tooling: `continuum bench` (every stage measured against its raw limit, in the same run,
on the same store), `python -m bench.kafka` (relay throughput and end-to-end latency),
`python -m bench.api_latency` (the API under concurrent load) and `python -m bench.markdown FILE`
(BENCHMARKS.md's tables from a result).

A top-level package beside the application's: it imports `services`, `infra` and `projections` to
measure them, and none of them imports it (the `continuum bench` command loads it when it runs).

The package itself imports none of its modules: `python -m bench.relay` (or any other) then runs a module the package
has not already imported (`bench.harness` imports most of them).
"""
