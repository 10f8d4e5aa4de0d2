"""Request latency of the API under concurrent load: p50 and p99 of a command and of the census.

`measure(base_url, ...)` drives a running server; `measure_served(database_url, ...)` starts
`continuum serve` on a free loopback port, makes its tokens, measures, and stops it. Both are
bounded by a request count and a deadline. From a shell:

    python -m bench.api_latency --database-url sqlite:///./continuum.db --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.broker import free_port
from bench.stats import percentile
from infra.config import Settings
from services.bootstrap import bootstrap
from services.tokens import Role, TokenStore


@dataclass(frozen=True)
class LatencyReport:
    name: str
    requests: int
    errors: int
    concurrency: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


Sample = tuple[float, int]  # milliseconds, status


def timed(call: Callable[[], httpx.Response]) -> Sample:
    started = time.perf_counter()
    response = call()
    return (time.perf_counter() - started) * 1000, response.status_code


def _run(name: str, work: Callable[[httpx.Client, int], list[Sample]], *, base_url: str, requests: int, concurrency: int,
         deadline: float) -> LatencyReport:
    """`work(client, i)` for i < `requests`, spread over `concurrency` threads, each with its own connection."""
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                measured = work(client, index)
                with lock:
                    samples.extend(ms for ms, _ in measured)
                    errors[0] += sum(status >= 400 for _, status in measured)  # noqa: PLR2004

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if not samples:
        msg = f"no {name} request finished within the deadline ({errors[0]} errors)"
        raise RuntimeError(msg)
    return LatencyReport(name, len(samples), errors[0], concurrency, round(seconds, 2), round(percentile(samples, 0.5), 2),
                         round(percentile(samples, 0.99), 2), round(max(samples), 2))


def measure(
    base_url: str, *, clinician_token: str, dashboard_token: str, site: str = "north", requests: int = 1000,
    concurrency: int = 8, max_seconds: float = 120.0,
) -> list[LatencyReport]:
    """Commands first (each request registers a new client, then admits it: two commands), then the census."""
    run = uuid.uuid4().hex[:8]
    occurred = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    clinician = {"Authorization": f"Bearer {clinician_token}"}
    dashboard = {"Authorization": f"Bearer {dashboard_token}"}
    deadline = time.monotonic() + max_seconds / 2

    def command(client: httpx.Client, index: int) -> list[Sample]:
        ref = f"L-{run}-{index}"
        register = {"client": ref, "occurred_at": occurred, "site": site}
        admit = {"client": ref, "occurred_at": occurred, "level": "2.1", "site": site, "track": "day"}
        return [timed(lambda: client.post("/commands/register", json=register, headers=clinician)),
                timed(lambda: client.post("/commands/admit", json=admit, headers=clinician))]

    commands = _run("command", command, base_url=base_url, requests=requests // 2, concurrency=concurrency, deadline=deadline)

    def census(client: httpx.Client, _: int) -> list[Sample]:
        return [timed(lambda: client.get("/census", headers=dashboard))]

    reads = _run("census", census, base_url=base_url, requests=requests, concurrency=concurrency,
                 deadline=time.monotonic() + max_seconds / 2)
    return [commands, reads]


@contextmanager
def served(database_url: str, *, startup_seconds: float = 60.0, log: Path | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """`continuum serve` on a free loopback port over `database_url`, with a clinician and a dashboard token
    (revoked afterwards); its JSON log goes to `log` if given."""
    wired = bootstrap(Settings(database_url=database_url))
    try:
        store, suffix = TokenStore(wired.views), uuid.uuid4().hex[:6]
        tokens = {"clinician": store.add(f"latency-clinician-{suffix}", Role.CLINICIAN, "north"),
                  "dashboard": store.add(f"latency-dashboard-{suffix}", Role.DASHBOARD, None)}
    finally:
        wired.close()
    port = free_port()
    continuum = Path(sys.executable).parent / "continuum"
    env = {**os.environ, "CONTINUUM_LOG_LEVEL": "info" if log else "warning"}
    sink = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        [str(continuum), "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", database_url],
        env=env, stdout=sink, stderr=sink,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, startup_seconds)
        yield base_url, tokens
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        if log:
            sink.close()  # type: ignore[union-attr]
        _revoke(database_url, tokens)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"continuum serve exited with code {process.returncode}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:  # noqa: PLR2004
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    msg = f"continuum serve was not ready within {seconds} s"
    raise RuntimeError(msg)


def _revoke(database_url: str, tokens: dict[str, str]) -> None:
    wired = bootstrap(Settings(database_url=database_url))
    try:
        store = TokenStore(wired.views)
        for token in tokens.values():
            principal = store.find(token)
            if principal is not None:
                store.revoke(principal.name)
    finally:
        wired.close()


def measure_served(database_url: str, *, requests: int = 1000, concurrency: int = 8, max_seconds: float = 120.0) -> list[LatencyReport]:
    with served(database_url) as (base_url, tokens):
        return measure(base_url, clinician_token=tokens["clinician"], dashboard_token=tokens["dashboard"], requests=requests,
                       concurrency=concurrency, max_seconds=max_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=Settings().database_url)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    reports = measure_served(args.database_url, requests=args.requests, concurrency=args.concurrency, max_seconds=args.max_seconds)
    for report in reports:
        sys.stdout.write(json.dumps({**asdict(report), "per_second": round(report.per_second, 1)}) + "\n")


if __name__ == "__main__":
    main()
