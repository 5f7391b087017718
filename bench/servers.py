"""Gunicorn processes for the LIS and for the bare baseline, and their memory under load.

Both apps run under the exact gunicorn command line that `flask lis up` uses (taken from
app.supervisor, not copied), so the comparison is about the app, not the server settings.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.supervisor import PROCESS_ENV, _children
from config import PROJECT_ROOT

WEB_WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_argv(app_spec: str, bind: str) -> list[str]:
    """The supervisor's web command line, with `wsgi:app` swapped for `app_spec`."""
    web = next(child for child in _children(bind, WEB_WORKERS) if child.name == "web")
    argv = list(web.argv)
    argv[argv.index("wsgi:app")] = app_spec
    if app_spec != "wsgi:app" and "--config" in argv:  # the LIS's own hooks (PDF warm-up) are not the baseline's
        at = argv.index("--config")
        del argv[at:at + 2]
    return argv


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /healthz in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM to the gunicorn master (it stops its workers), SIGKILL if it hangs."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def gunicorn(name: str, app_spec: str, env: dict[str, str], log_dir: Path,
             pythonpath: Path | None = None) -> Iterator[Server]:
    """Start gunicorn serving `app_spec`, wait for /healthz, stop it on exit.

    Its output goes to a file: a pipe nobody reads would fill up and stall the workers,
    and the LIS writes one access-log line per request."""
    port = free_port()
    argv = gunicorn_argv(app_spec, f"127.0.0.1:{port}")
    if pythonpath:
        argv += ["--pythonpath", str(pythonpath)]
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        env = {**PROCESS_ENV, **env}  # the supervisor's process settings (MALLOC_ARENA_MAX), for both apps
        proc = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(name, proc, port, log_path)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@dataclass
class RssPeak:
    """Largest resident set sizes seen, in bytes."""

    worker: int = 0  # any single worker process
    master: int = 0
    total: int = 0  # master + all workers at one moment
    worker_pids: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, float | int]:
        mb = 1024 * 1024
        return {"max_worker_mb": round(self.worker / mb, 1), "master_mb": round(self.master / mb, 1),
                "max_total_mb": round(self.total / mb, 1), "worker_processes_seen": len(self.worker_pids)}


class ProcessSampler:
    """Samples a gunicorn master and its workers (RSS and CPU time), and the PostgreSQL
    backends serving them (CPU time), while one load runs.

    CPU seconds per request do not depend on what else the machine is doing, unlike req/s,
    so they tell where the time goes even on a shared, busy machine. Workers are looked up
    on every sample: gunicorn replaces them after --max-requests and a fresh worker (with
    its start-up) must be counted too."""

    def __init__(self, master_pid: int, peak: RssPeak, backend_pids: list[int], interval: float = 0.25):
        self.master = psutil.Process(master_pid)
        self.peak = peak
        self.backends = [p for p in (_process(pid) for pid in backend_pids) if p]
        self.interval = interval
        self.app_cpu = _CpuTally()
        self.db_cpu = _CpuTally()
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProcessSampler":
        self.sample()  # the starting point of every CPU counter
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        try:
            workers = self.master.children(recursive=True)
            master_rss = self.master.memory_info().rss
            self.app_cpu.read(self.master)
        except psutil.NoSuchProcess:
            return
        total = master_rss
        for worker in workers:
            try:
                rss = worker.memory_info().rss
                self.app_cpu.read(worker, new=self._started and worker.pid not in self.app_cpu.first)
            except psutil.NoSuchProcess:
                continue  # recycled between listing and reading
            total += rss
            self.peak.worker = max(self.peak.worker, rss)
            self.peak.worker_pids.add(worker.pid)
        self.peak.master = max(self.peak.master, master_rss)
        self.peak.total = max(self.peak.total, total)
        for backend in self.backends:
            try:
                self.db_cpu.read(backend)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


class _CpuTally:
    """User+system CPU seconds used by a set of processes since each was first read."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def read(self, proc: psutil.Process, new: bool = False) -> None:
        times = proc.cpu_times()
        used = times.user + times.system
        # A worker born during the load counts from zero: its start-up is part of the cost.
        self.first.setdefault(proc.pid, 0.0 if new else used)
        self.last[proc.pid] = used

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)
