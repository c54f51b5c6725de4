"""HTTP metrics and the /metrics exposition (multi-process aware for gunicorn)."""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "replybase_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "replybase_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# Collectors that read the database at scrape time (the same truth on every instance).
_scrape_time_collectors: list[Collector] = []


def register_scrape_time_collector(collector: Collector) -> None:
    """Expose `collector` in both single-process and gunicorn multi-process mode."""
    if any(type(c) is type(collector) for c in _scrape_time_collectors):
        return
    REGISTRY.register(collector)
    _scrape_time_collectors.append(collector)


def exposition() -> tuple[bytes, str]:
    """Render every metric; with several gunicorn workers, merge their files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _scrape_time_collectors:
            registry.register(collector)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
