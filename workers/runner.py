"""Running RQ workers and the cron scheduler inside the Flask app's context."""
from __future__ import annotations

import os

from flask import Flask
from rq import Queue, Worker
from rq.cron import CronScheduler

from app.extensions import redis_client


def run_worker(app: Flask, *, burst: bool = False) -> None:
    # The context is pushed once; RQ forks a child per job, which inherits it. Each job
    # opens its own DB session and sets its tenant (workers never see a request).
    with app.app_context():
        conn = redis_client()
        queues = [Queue(name, connection=conn) for name in app.config["LIS_QUEUES"]]
        if "reports" in app.config["LIS_QUEUES"] and os.environ.get("LIS_PDF_WARMUP", "1") != "0":
            # RQ forks a work-horse per job: load WeasyPrint and the Latin fonts once here, so
            # every report's work-horse inherits them instead of paying a second for them.
            from app.services import documents

            documents.warm_up()
        # Job arguments can carry personal data: RQ must not log them.
        worker = Worker(queues, connection=conn, log_job_description=False)
        worker.work(with_scheduler=True, burst=burst, logging_level=app.config["LIS_LOG_LEVEL"])


def run_cron(app: Flask) -> None:
    from workers.schedule import PERIODIC_JOBS

    with app.app_context():
        scheduler = CronScheduler(connection=redis_client(), logging_level=app.config["LIS_LOG_LEVEL"])
        for job in PERIODIC_JOBS:
            scheduler.register(job.func, queue_name=job.queue, interval=job.interval, cron=job.cron,
                               job_timeout=job.timeout, name=job.name)
        scheduler.start()
