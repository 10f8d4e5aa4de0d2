"""Operation: JSON logs without clinical data, Prometheus metrics, and a last line of defence.

Logs name the route template (`/clients/{client}/history`), never the path or query, because a
path carries a client reference; journeys appear by journey id only. The middleware also turns
any exception that escaped the mapped handlers into a plain 500 that says nothing of its cause.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("continuum.api")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def configure_logging(level: str = "info") -> None:
    """structlog and the standard library (uvicorn) both write one JSON object per line to stderr."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # its lines carry raw paths; ours carry route templates


class Metrics:
    """One registry per app, so several apps (tests) never collide in the global one."""

    def __init__(self, *collectors: Collector) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double the output; no dashboard reads them
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "continuum_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "continuum_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.commands = Counter(
            "continuum_commands", "Commands received over HTTP", ["command", "outcome"], registry=self.registry,
        )
        for collector in collectors:
            self.registry.register(collector)


class StoreCollector(Collector):
    """Projection and relay lag, read from the database at scrape time."""

    def __init__(self, read: Callable[[], tuple[int, dict[str, int], dict[str, int]]]) -> None:
        self.read = read  # () -> (head, projection positions, relay positions)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("continuum_store_up", "1 when the event store answered this scrape")
        try:
            head, projections, relays = self.read()
        except Exception as problem:  # noqa: BLE001 - a scrape must answer even when the store does not
            log.warning("metrics could not read the store", error_type=type(problem).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("continuum_event_store_head", "Position of the last recorded event", value=head)
        for name, label, values in (("projection", "projection", projections), ("relay", "relay", relays)):
            position = GaugeMetricFamily(f"continuum_{name}_position", f"Last event position the {name} has handled", labels=[label])
            lag = GaugeMetricFamily(f"continuum_{name}_lag_events", f"Events recorded that the {name} has not handled", labels=[label])
            for key, value in values.items():
                position.add_metric([key], value)
                lag.add_metric([key], max(head - value, 0))
            yield position
            yield lag


class Observe:
    """Request ids, access lines, request metrics, and a generic 500 for anything unhandled."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as problem:
            log.exception("unhandled error", error_type=type(problem).__name__,
                      where=traceback.format_tb(problem.__traceback__)[-3:])
            status["code"] = 500
            if not status["started"]:
                body = json.dumps({"error": "internal_error", "detail": f"internal error (request {request_id})"}).encode()
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(scope["method"], route, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            log.info("request", method=scope["method"], route=route, status=status["code"], ms=round(elapsed * 1000, 2))
