"""Request ids, structured logs without personal data, health checks and Prometheus metrics."""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any

from app.logformat import JsonFormatter
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

from app.extensions import db, redis_client

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID_ENVIRON_KEY = "lis.request_id"

REQUESTS = Counter(
    "lis_http_requests_total", "HTTP requests", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "lis_http_request_duration_seconds", "HTTP request latency", ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = g.get("request_id")
            except RuntimeError:  # outside a request
                record.request_id = None
        return True


def configure_logging(app: Flask) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_lis", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._lis = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    if app.config.get("LIS_LOG_JSON", True):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(app.config.get("LIS_LOG_LEVEL", "INFO"))
    # Neither format shows the calling function or line, so the logging module need not
    # walk the stack for them on every record, an access-log line per request (the Logging
    # HOWTO's "Optimization" section); nor the multiprocessing process name. Process and
    # thread ids stay: gunicorn's own log format prints the process id. A traceback still
    # carries every frame.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logMultiprocessing = False
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl call
    # WeasyPrint logs every rendering step at INFO ("Step 4 - Creating formatting structure").
    logging.getLogger("weasyprint").setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.WARNING)


access_log = logging.getLogger("lis.access")


def init_request_tracking(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        # From the environ: a header lookup that misses raises and catches inside Werkzeug.
        environ = request.environ
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_globals = g._get_current_object()  # one proxy lookup, not two
        # 32 random hex digits, as uuid4().hex gave, without building a UUID object.
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else os.urandom(16).hex()
        request_globals.request_id = request_id
        request_globals.started = time.perf_counter()
        # The answer's X-Request-ID header is written from here by web._AnswerHeaders.
        environ[REQUEST_ID_ENVIRON_KEY] = request_id

    @app.after_request
    def _finish(response: Response) -> Response:
        req, request_globals = request._get_current_object(), g._get_current_object()
        endpoint = req.endpoint or "unmatched"
        method = req.method if req.method in _METHODS else "OTHER"  # bounded label values
        request_id = request_globals.get("request_id", "")
        elapsed = time.perf_counter() - request_globals.get("started", time.perf_counter())
        if endpoint not in {"ops.metrics", "static"}:
            _request_metrics(endpoint, method, response.status_code, elapsed)
        # The path is not logged: it can carry a search term (a mobile number, a name).
        access_log.info(
            "request",
            extra={
                "request_id": request_id,
                "endpoint": endpoint,
                "method": method,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_COUNTERS: dict[tuple[str, str, int], Any] = {}
_HISTOGRAMS: dict[tuple[str, str], Any] = {}


def _request_metrics(endpoint: str, method: str, status: int, elapsed: float) -> None:
    """Count the request and observe its latency. The labelled children are kept here:
    prometheus_client's labels() validates and looks them up under a lock on every call.
    Endpoints are the app's own route names (unmatched paths are one label), so both maps
    stay small."""
    counter = _COUNTERS.get((endpoint, method, status))
    if counter is None:
        counter = _COUNTERS[(endpoint, method, status)] = REQUESTS.labels(endpoint, method, str(status))
    histogram = _HISTOGRAMS.get((endpoint, method))
    if histogram is None:
        histogram = _HISTOGRAMS[(endpoint, method)] = LATENCY.labels(endpoint, method)
    counter.inc()
    histogram.observe(elapsed)


class QueueDepthCollector:
    """RQ queue depths, read from Redis at scrape time."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):  # type: ignore[no-untyped-def]
        gauge = GaugeMetricFamily("lis_rq_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        heartbeat = GaugeMetricFamily(
            "lis_worker_heartbeat_age_seconds",
            "Seconds since the cron scheduler and a worker last ran the heartbeat job (alert when large)",
        )
        with self.app.app_context():
            try:
                from rq import Queue

                from workers.housekeeping import HEARTBEAT_KEY

                conn = redis_client()
                for name in self.app.config["LIS_QUEUES"]:
                    gauge.add_metric([name], Queue(name, connection=conn).count)
                last = conn.get(HEARTBEAT_KEY)
                if last is not None:
                    heartbeat.add_metric([], max(0.0, time.time() - float(last)))
            except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
                logging.getLogger(__name__).warning("queue depth unavailable")
        yield gauge
        yield heartbeat


ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """The process is up. Says nothing about its dependencies (that is /readyz)."""
    return {"status": "ok"}, 200


@ops.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready to serve: PostgreSQL and Redis both answer. 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception:  # noqa: BLE001
        db.session.rollback()
        checks["postgres"] = "unreachable"
    try:
        redis_client().ping()
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unreachable"
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503


@ops.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # gunicorn: every worker writes its samples to files; aggregate them here
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry) + generate_latest(_queue_registry(current_app))
    return Response(output, mimetype=CONTENT_TYPE_LATEST)


def _queue_registry(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(app))
    return registry
