"""SIGKILL the real listener process at random points while an analyzer sends and resends
(bench/listener_kill.py runs the full 1,000-message round): every ACKed message is stored
exactly once and every result is attached once."""
from __future__ import annotations

import os

from bench.listener_kill import run
from tests.conftest import recreate_database

KILL_DB_NAME = os.environ.get("LIS_KILL_DATABASE", "lis_kill")


def test_nothing_acked_is_lost_or_doubled_when_the_listener_is_killed(base_urls):
    url = recreate_database(base_urls["DATABASE_URL"], KILL_DB_NAME)
    redis_url = base_urls["REDIS_URL"].rsplit("/", 1)[0] + "/7" if base_urls["REDIS_URL"].startswith("redis://") \
        else base_urls["REDIS_URL"]
    report = run(url, redis_url, messages=150, kills=5)
    assert report.kills == 5
    assert report.stored_rows == report.distinct_control_ids == report.messages == 150
    assert report.results_attached == 150
    assert report.order_tests_with_two_results == 0
    assert report.ok
