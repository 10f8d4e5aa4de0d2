"""`continuum bench`: every stage measured against its raw limit, in the same run, on the same store.

The harness lives under `services/` (not a top-level `bench/` package) because it is a shipped
command built from the services it measures (the importer, the runner, the queries), and so that
the type check CI already runs over `services` covers it too.
"""

from __future__ import annotations

from services.bench.harness import MODES, Mode, run_bench

__all__ = ["MODES", "Mode", "run_bench"]
