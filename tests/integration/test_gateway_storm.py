"""Webhook reliability against a real gunicorn, killed midway (bench/webhook_storm.py, small):
50 payments' events, each delivered 10 times in a shuffled order from several threads, the web
process SIGKILLed once and started again. Every bill ends with exactly its paid amount and no
gateway payment is applied twice. Uses its own database (dropped afterwards)."""
from __future__ import annotations

import os

import pytest

from bench import webhook_storm


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="needs a PostgreSQL server (DATABASE_URL)")
def test_fifty_payments_ten_deliveries_each_with_a_crash():
    db_name = os.environ.get("LIS_TEST_DATABASE", "lis_test") + "_storm"
    result = webhook_storm.run(payments=50, times=10, restarts=1, threads=6, db_name=db_name, quiet=True)
    assert webhook_storm.failures(result) == [], result
    assert result["web_starts"] == 2 and result["payments_expected"] >= 50
    assert result["deliveries_acknowledged"] == result["deliveries_planned"] >= 50 * 10
