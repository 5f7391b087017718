"""Jobs that keep the system observable."""
from __future__ import annotations

import time

HEARTBEAT_KEY = "lis:worker:heartbeat"


def heartbeat() -> float:
    """Proves the cron scheduler enqueues and a worker runs jobs: /metrics exposes the age
    of this timestamp (lis_worker_heartbeat_age_seconds), so an alert can fire when the
    background side of the system stops."""
    from app.extensions import redis_client

    now = time.time()
    redis_client().set(HEARTBEAT_KEY, now)
    return now
