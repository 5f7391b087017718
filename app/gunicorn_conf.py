"""gunicorn settings that need code (`gunicorn -c python:app.gunicorn_conf wsgi:app`).
The command-line flags (workers, threads, timeouts) stay where the supervisor and the
systemd unit show them."""
from __future__ import annotations

import os
import threading
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Warm WeasyPrint in the background as each worker starts, so the first label or
    receipt of the day comes back in milliseconds, not a second later. LIS_PDF_WARMUP=0
    turns it off (a web host that never prints saves the memory)."""
    if os.environ.get("LIS_PDF_WARMUP", "1") == "0":
        return
    def warm() -> None:
        try:
            from app.services import documents
            documents.warm_up()
        except Exception:  # a warm-up failure only costs the first PDF its second
            worker.log.warning("PDF warm-up failed", exc_info=True)

    threading.Thread(target=warm, name="pdf-warm-up", daemon=True).start()
