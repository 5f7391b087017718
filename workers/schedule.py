"""Periodic jobs, declared as data. The cron scheduler (`flask lis cron`) enqueues them;
the workers run them. Later issues add reconciliation, day-end closing, retries."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workers import einvoice, gateway, housekeeping, instruments, notify, reconciliation, refunds, reports


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: Callable
    queue: str = "default"
    interval: int | None = None  # seconds
    cron: str | None = None  # crontab syntax, UTC
    timeout: int = 300


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("worker-heartbeat", housekeeping.heartbeat, interval=60, timeout=30),
    # The listener wakes ingestion after each commit; this sweep covers a lost wake-up.
    PeriodicJob("instrument-ingestion-sweep", instruments.process_pending_messages, queue="ingest", interval=60,
                timeout=600),
    # Report versions left 'rendering' (a lost job, Redis restarted) are queued again.
    PeriodicJob("report-render-sweep", reports.sweep, queue="reports", interval=120, timeout=120),
    # Notifications due for a retry whose job was lost; rows a killed worker left 'sending'.
    PeriodicJob("notification-sweep", notify.sweep, queue="notify", interval=60, timeout=120),
    # E-invoices: taxable B2B invoices not yet enrolled, retries that are due, rows a killed
    # worker left 'submitting' (the IRP's duplicate answer makes a resend safe).
    PeriodicJob("einvoice-sweep", einvoice.sweep, queue="einvoice", interval=120, timeout=300),
    # Razorpay refunds whose answer was lost: looked up by our lis_refund_id note, adopted or sent once.
    PeriodicJob("refund-gateway-sweep", refunds.sweep, interval=300, timeout=300),
    # Razorpay events stored but not processed (the web process died after the commit), and
    # captured payments no event tied to a bill (to the exceptions queue after an hour).
    PeriodicJob("gateway-webhook-sweep", gateway.sweep, interval=120, timeout=120),
    # Statement imports whose job was lost (queued over a minute, processing over 20 minutes).
    PeriodicJob("recon-import-sweep", reconciliation.sweep, queue="recon", interval=300, timeout=120),
]
