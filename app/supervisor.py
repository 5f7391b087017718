"""`flask lis up`: one command for the whole system on one machine.

Starts gunicorn, an RQ worker, the RQ cron scheduler and the instrument listeners as child
processes, restarts any that dies (with back-off), and stops them all cleanly on Ctrl-C or
SIGTERM. Production runs the same four commands under systemd instead (docs/OPERATIONS.md).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from flask import current_app

from config import PROJECT_ROOT


def prepare_database() -> None:
    """Apply migrations; seed the demo lab on the first run (prints its passwords once)."""
    from flask_migrate import upgrade

    from app.cli import print_demo_credentials
    from app.services.seed import seed_demo

    click.echo("Applying database migrations…")
    upgrade()
    created = seed_demo(password=os.environ.get("LIS_DEMO_PASSWORD") or None)
    if created:
        print_demo_credentials(created)
    else:
        click.echo("Demo lab present (data kept from earlier runs).")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        # Own process group: Ctrl-C reaches only the supervisor, which stops children in order.
        self.proc = subprocess.Popen(self.argv, env=env, cwd=PROJECT_ROOT, start_new_session=True)
        self.started_at = time.monotonic()


# glibc gives every thread that allocates its own malloc arena; with gthread workers and the
# PDF warm-up thread that cost ~30 MB per web worker for nothing (168.7 -> 136.9 MB under the
# dashboard bench). Two arenas keep the memory flat at no measurable speed cost. Read by glibc
# at process start, so it is set in the children's environment (and in the systemd units).
PROCESS_ENV = {"MALLOC_ARENA_MAX": "2"}


def _children(bind: str, web_workers: int) -> list[Child]:
    py = sys.executable
    flask = [py, "-m", "flask", "--app", "wsgi", "lis"]
    return [
        Child("web", [py, "-m", "gunicorn", "wsgi:app", "--config", "python:app.gunicorn_conf", "--bind", bind, "--workers", str(web_workers),
                      "--worker-class", "gthread", "--threads", "4", "--max-requests", "5000",
                      "--max-requests-jitter", "500", "--graceful-timeout", "20", "--timeout", "60",
                      "--no-control-socket"]),
        Child("worker", flask + ["worker"]),
        Child("cron", flask + ["cron"]),
        Child("listeners", flask + ["listeners"]),
    ]


def supervise(*, bind: str, web_workers: int) -> None:
    instance = Path(current_app.config["LIS_INSTANCE_PATH"])
    metrics_dir = instance / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PYTHONUNBUFFERED="1",
               MALLOC_ARENA_MAX=os.environ.get("MALLOC_ARENA_MAX", PROCESS_ENV["MALLOC_ARENA_MAX"]))
    children = _children(bind, web_workers)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for child in children:
        child.start(env)
    host, _, port = bind.rpartition(":")
    click.echo(f"\nLIS is running: http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/  "
               f"(web, worker, cron scheduler, listeners). Press Ctrl-C to stop.\n")
    while not stopping:
        time.sleep(0.5)
        now = time.monotonic()
        for child in children:
            if child.proc is None or child.proc.poll() is None:
                if child.proc is None and now >= child.next_start and not stopping:
                    child.start(env)
                continue
            code = child.proc.returncode
            # Back-off: 1, 2, 4 … 30 s; a child that ran a minute starts counting afresh.
            child.restarts = 0 if now - child.started_at > 60 else child.restarts + 1
            delay = min(30, 2 ** child.restarts) if child.restarts else 1
            click.echo(f"[supervisor] {child.name} exited with {code}; restarting in {delay}s", err=True)
            child.proc = None
            child.next_start = now + delay
    click.echo("\nStopping…")
    for child in reversed(children):  # listeners and workers first, web last
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 25
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"[supervisor] {child.name} did not stop in time; killing it", err=True)
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
    click.echo("Stopped.")
