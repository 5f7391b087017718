"""gunicorn settings that need code (`gunicorn -c python:app.gunicorn_conf wsgi:app`).
The command-line flags (workers, threads, timeouts) stay where the supervisor and the
systemd unit show them."""
from __future__ import annotations

import os
from typing import Any

# The master imports the app once and forks every worker from it, warm. Workers are
# recycled every ~5000 requests (--max-requests); without this each new worker imported
# the whole app and warmed WeasyPrint again: about 2 s of CPU taken from requests, every
# few minutes per worker on a busy desk (docs/PERFORMANCE.md). The pages stay shared
# between master and workers until written. New code therefore needs a restart of the
# service, not a HUP (docs/OPERATIONS.md, Upgrades).
preload_app = True


def when_ready(server: Any) -> None:
    """Warm WeasyPrint in the master before the first fork, so the first label or receipt
    of the day comes back in milliseconds, not a second later, in every worker, recycled
    ones included. LIS_PDF_WARMUP=0 turns it off (a web host that never prints saves the
    memory). Synchronous and in the master's only thread: nothing is mid-flight at fork."""
    if os.environ.get("LIS_PDF_WARMUP", "1") == "0":
        return
    try:
        from app.services import documents

        documents.warm_up()
    except Exception:  # a warm-up failure only costs the first PDF its second
        server.log.warning("PDF warm-up failed", exc_info=True)
