"""Queueing RQ jobs for rows made in a transaction, only once that transaction commits.

A job must never look for a row that is not committed yet (or never will be): ids are kept
on the session and queued after COMMIT, and forgotten on ROLLBACK. If Redis is away at that
moment the row stays in its waiting state and the owning module's periodic sweep queues it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger(__name__)


def rq_queue(name: str):  # type: ignore[no-untyped-def]
    from rq import Queue

    from app.extensions import redis_client

    return Queue(name, connection=redis_client())


class AfterCommit:
    """`AfterCommit("reports", enqueue)`; then `.add(row_id)` inside a transaction."""

    def __init__(self, name: str, enqueue: Callable[[int], None]):
        self.key = f"lis_{name}_to_queue"
        self.name = name
        self.enqueue = enqueue
        event.listen(Session, "after_commit", self._committed)
        event.listen(Session, "after_soft_rollback", self._rolled_back)

    def add(self, row_id: int, session: Session | None = None) -> None:
        (session or db.session()).info.setdefault(self.key, []).append(row_id)

    def _committed(self, session: Session) -> None:
        for row_id in session.info.pop(self.key, None) or ():
            try:
                self.enqueue(row_id)
            except Exception:  # Redis away: the sweep queues it later
                log.warning("%s %s not queued; the sweep will pick it up", self.name, row_id, exc_info=True)

    def _rolled_back(self, session: Session, previous_transaction: Any) -> None:
        if not previous_transaction.nested:
            session.info.pop(self.key, None)
