"""Running wrk against one URL and reading its figures back.

wrk (Debian package) rather than locust: on a 2-core machine the load generator must
use as little CPU as possible, or it measures itself instead of the server.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sessions import COOKIE_NAME, USER_AGENT

REPORT_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"


@dataclass(frozen=True)
class Load:
    duration: int  # seconds
    connections: int
    threads: int


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    return path


def run_wrk(url: str, load: Load, cookie: str | None = None, duration: int | None = None) -> dict:
    """One wrk run; returns the JSON printed by wrk_report.lua plus req/s."""
    argv = [wrk_path(), f"-t{load.threads}", f"-c{load.connections}", f"-d{duration or load.duration}s",
            "--timeout", "10s", "-s", str(REPORT_SCRIPT), "-H", f"User-Agent: {USER_AGENT}"]
    if cookie:
        argv += ["-H", f"Cookie: {COOKIE_NAME}={cookie}"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no report for {url}:\n{out}")
    result = json.loads(line[len("BENCH_JSON "):])
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    return result


def problems(result: dict) -> list[str]:
    """What makes a run untrustworthy: any answer other than 200, or socket errors."""
    found = [f"{n} answers with status {code}" for code, n in result["statuses"].items() if code != "200"]
    found += [f"{n} {kind} errors" for kind, n in result["errors"].items() if n and kind != "status"]
    return found
