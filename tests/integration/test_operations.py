"""Seeding, workers, the cron schedule, the listener process, metrics, compression, caching."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from app.extensions import redis_client
from app.models import Branch, LabTest, Organization, User
from config import PROJECT_ROOT


def test_seed_demo_is_idempotent(app, session):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["lis", "seed-demo", "--password", "demo password 123"])
    assert first.exit_code == 0 and "demo.admin" in first.output
    second = runner.invoke(args=["lis", "seed-demo"])
    assert "already present" in second.output
    org = session.execute(select(Organization).where(Organization.code == "demo")).scalar_one()
    counts = [session.execute(select(func.count(m.id)).where(m.org_id == org.id)
                              .execution_options(all_tenants=True)).scalar_one() for m in (Branch, User, LabTest)]
    assert counts[0] == 2 and counts[1] == 5 and counts[2] >= 8
    assert org.gstin == "29AAGCB7383J1Z4"


def test_worker_runs_the_heartbeat_job(app, db_conn):
    from workers.housekeeping import HEARTBEAT_KEY, heartbeat

    conn = redis_client()
    job = Queue("default", connection=conn).enqueue(heartbeat)
    SimpleWorker([Queue("default", connection=conn)], connection=conn).work(burst=True)
    job.refresh()
    assert job.is_finished, job.latest_result()
    assert abs(float(conn.get(HEARTBEAT_KEY)) - time.time()) < 30


def test_periodic_jobs_register_with_the_cron_scheduler(app, db_conn):
    from rq.cron import CronScheduler

    from workers.schedule import PERIODIC_JOBS

    scheduler = CronScheduler(connection=redis_client())
    for job in PERIODIC_JOBS:
        scheduler.register(job.func, queue_name=job.queue, interval=job.interval, cron=job.cron, name=job.name)
    enqueued = scheduler.enqueue_jobs()  # due at start
    assert {j.name for j in enqueued} >= {"worker-heartbeat"} or len(enqueued) == len(PERIODIC_JOBS)
    assert Queue("default", connection=redis_client()).count >= 1


def test_metrics_expose_requests_and_queue_depths(client):
    client.get("/healthz")
    client.get("/login")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'lis_http_requests_total{endpoint="auth.login",method="GET",status="200"}' in body
    assert "lis_http_request_duration_seconds_bucket" in body
    assert 'lis_rq_queue_depth{queue="ingest"}' in body


def test_metrics_label_unknown_methods_as_other(client):
    """Label values stay bounded whatever a client sends (each one is a time series)."""
    assert client.open("/login", method="PROPFIND").status_code == 405
    body = client.get("/metrics").get_data(as_text=True)
    assert 'method="OTHER",status="405"' in body and "PROPFIND" not in body


def test_metrics_report_the_worker_heartbeat_age(client, app):
    from workers.housekeeping import HEARTBEAT_KEY

    with app.app_context():
        redis_client().set(HEARTBEAT_KEY, time.time() - 90)
    body = client.get("/metrics").get_data(as_text=True)
    line = next(l for l in body.splitlines() if l.startswith("lis_worker_heartbeat_age_seconds "))
    assert 89 <= float(line.split()[1]) < 120


def test_responses_are_compressed_and_static_is_fingerprinted(client):
    page = client.get("/login", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in page.headers.get("Vary", "")
    html = page.get_data()
    import gzip
    text = gzip.decompress(html).decode() if page.headers.get("Content-Encoding") == "gzip" else html.decode()
    assert "/static/vendor/htmx-2.0.11.min.js?v=" in text
    js = client.get("/static/vendor/htmx-2.0.11.min.js?v=abc", headers={"Accept-Encoding": "br, gzip"})
    assert js.headers["Content-Encoding"] in {"br", "gzip"}
    assert "immutable" in js.headers["Cache-Control"]


def test_links_built_once_follow_the_script_root(client):
    """Links are built once per process (LisFlask.url_for), per script root: an app
    mounted under /lab (SCRIPT_NAME) gets /lab links, the same process at / gets its own."""
    client.application._urls.clear()
    at_root = client.get("/login").get_data(as_text=True)
    mounted = client.get("/login", base_url="http://localhost/lab").get_data(as_text=True)
    again = client.get("/login").get_data(as_text=True)
    assert 'href="/static/css/app.css?v=' in at_root and 'href="/static/css/app.css?v=' in again
    assert 'href="/lab/static/css/app.css?v=' in mounted


def test_request_id_is_echoed_and_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abcdef123456"}).headers["X-Request-ID"] == "abcdef123456"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id; drop table"}).headers["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated


def test_security_headers(client):
    headers = client.get("/login").headers
    assert headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin" and len(headers.get_all("Vary")) == 1 and "HX-Request" in headers["Vary"]
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/no/such/page", "/static/css/app.css", "/healthz"])
def test_every_answer_carries_the_security_headers_once(client, path):
    headers = client.get(path).headers
    for name in ("X-Frame-Options", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        assert len(headers.get_all(name)) == 1, name


def test_a_security_header_set_by_a_view_is_kept(app, client):
    from flask import Response

    app.view_functions["ops.healthz"] = lambda: Response("ok", headers={"X-Frame-Options": "SAMEORIGIN"})
    headers = client.get("/healthz").headers
    assert headers.get_all("X-Frame-Options") == ["SAMEORIGIN"] and headers["X-Content-Type-Options"] == "nosniff"


def test_logs_are_json_and_carry_no_query_string(client, caplog):
    import json
    import logging

    from app.observability import JsonFormatter

    with caplog.at_level(logging.INFO, logger="lis.access"):
        client.get("/login?next=/reception/patients?q=9876543210")
    record = next(r for r in caplog.records if r.name == "lis.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["endpoint"] == "auth.login" and line["status"] == 200 and line["method"] == "GET"
    assert len(line["request_id"]) == 32
    assert all("9876543210" not in r.getMessage() and "9876543210" not in json.dumps(r.__dict__, default=str)
               for r in caplog.records)


def test_other_log_formats_still_get_process_and_thread(app):
    """Gunicorn's log format prints %(process)d; the app's logging set-up must leave the
    record fields other formats use (it turns off only the caller lookup)."""
    import logging

    record = logging.getLogger("gunicorn.error").makeRecord("gunicorn.error", logging.INFO, "f", 1, "Listening at: %s (%s)",
                                                            ("http://127.0.0.1:8000", 1), None)
    line = logging.Formatter("%(asctime)s [%(process)d] [%(thread)d] [%(levelname)s] %(message)s").format(record)
    assert "Listening at: http://127.0.0.1:8000 (1)" in line and f"[{record.process}]" in line


def test_log_timestamps_follow_each_records_second():
    """The formatter formats a second's timestamp once; records of other seconds get theirs."""
    import json
    import logging

    from app.observability import JsonFormatter

    formatter = JsonFormatter()
    stamps = []
    for created in (1_765_000_000.1, 1_765_000_000.9, 1_765_000_001.2, 1_765_000_000.5):
        record = logging.makeLogRecord({"msg": "m", "created": created})
        stamps.append(json.loads(formatter.format(record))["ts"])
    assert stamps[0] == stamps[1] == stamps[3] != stamps[2]
    assert stamps[2] == formatter.formatTime(logging.makeLogRecord({"created": 1_765_000_001.2}), "%Y-%m-%dT%H:%M:%S%z")


def test_listener_process_starts_and_stops_cleanly_on_sigterm(base_urls):
    env = dict(os.environ, **base_urls)
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "lis", "listeners"], cwd=PROJECT_ROOT,
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        started = False
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "instrument listener process started" in line:
                started = True
                break
        assert started, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
