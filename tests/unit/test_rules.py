"""Pure rules: money formatting, settings parsing, redirects, audit diffs."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from app.audit import _json_safe, changes
from app.formatting import format_local_datetime, format_paise
from app.portals.auth.routes import _safe_next
from config import Config, limiter_storage_url, sqlalchemy_url


@pytest.mark.parametrize("paise,shown", [
    (0, "₹0.00"), (5, "₹0.05"), (100, "₹1.00"), (123456, "₹1,234.56"), (12345678, "₹1,23,456.78"),
    (1234567890, "₹1,23,45,678.90"), (-15000, "-₹150.00"),
])
def test_rupees_use_indian_grouping(paise, shown):
    assert format_paise(paise) == shown


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_rupee_formatting_round_trips(paise):
    text = format_paise(paise)
    digits = text.replace("₹", "").replace(",", "").replace(".", "")
    assert int(digits) == paise


def test_times_are_shown_in_india():
    assert format_local_datetime(datetime(2026, 1, 1, 18, 45, tzinfo=timezone.utc)) == "02 Jan 2026, 00:15"


@pytest.mark.parametrize("url,expected", [
    ("postgresql://lis@db:5432/lis", "postgresql+psycopg://lis@db:5432/lis"),
    ("postgres://lis@db/lis", "postgresql+psycopg://lis@db/lis"),
    ("postgresql+psycopg://lis@db/lis", "postgresql+psycopg://lis@db/lis"),
])
def test_database_url_gets_the_psycopg_driver(url, expected):
    assert sqlalchemy_url(url) == expected


def test_only_postgresql_is_accepted():
    with pytest.raises(ValueError, match="PostgreSQL"):
        sqlalchemy_url("sqlite:///x.db")


def test_unix_socket_redis_for_the_limiter():
    assert limiter_storage_url("unix:///tmp/r.sock?db=0") == "redis+unix:///tmp/r.sock?db=0"
    assert limiter_storage_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_production_requires_a_secret_key():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Config.from_env({"LIS_ENV": "production", "DATABASE_URL": "postgresql://a@b/c", "REDIS_URL": "redis://x/0"})


def test_production_cookies_are_secure_and_proxy_trusted():
    cfg = Config.from_env({"LIS_ENV": "production", "SECRET_KEY": "k" * 40,
                           "DATABASE_URL": "postgresql://a@b/c", "REDIS_URL": "redis://x/0"})
    assert cfg.SESSION_COOKIE_SECURE is True and cfg.LIS_PROXY_COUNT == 1


@pytest.mark.parametrize("target,ok", [
    ("/reception/", True), ("/admin/users?x=1", True), ("https://evil.example/", False),
    ("//evil.example", False), ("/\\evil", False), ("javascript:alert(1)", False), ("", False), (None, False),
])
def test_next_parameter_is_same_site_only(target, ok):
    assert _safe_next(target) == (target if ok else None)


def test_audit_changes_keep_only_what_changed():
    before = {"role": "technician", "full_name": "A", "active": True}
    after = {"role": "pathologist", "full_name": "A", "active": True}
    assert changes(before, after) == ({"role": "technician"}, {"role": "pathologist"})


def test_audit_values_are_json_safe():
    from decimal import Decimal

    value = _json_safe({"at": datetime(2026, 1, 1, tzinfo=timezone.utc), "rate": Decimal("18.00"), "ids": (1, 2)})
    assert value == {"at": "2026-01-01T00:00:00+00:00", "rate": "18.00", "ids": [1, 2]}


def test_gunicorn_master_preloads_the_app_and_warms_the_pdf_engine_before_forking():
    """The first label of the day must not pay WeasyPrint's start-up, and a recycled worker
    must not import the app again: gunicorn preloads the app and warms WeasyPrint in the
    master (when_ready), so every worker is forked warm."""
    import logging

    from app import gunicorn_conf
    from app.services import documents

    class Arbiter:
        log = logging.getLogger("test")

    assert gunicorn_conf.preload_app is True
    documents._stylesheets.clear()
    gunicorn_conf.when_ready(Arbiter())
    assert frozenset() in documents._stylesheets  # the Latin fonts are loaded, synchronously


def test_upi_qr_is_generated_once_per_uri():
    from app.integrations import upi

    upi.qr_svg.cache_clear()
    first = upi.qr_svg("upi://pay?pa=lab@okaxis&am=10.00")
    second = upi.qr_svg("upi://pay?pa=lab@okaxis&am=10.00")
    assert first is second and upi.qr_svg.cache_info().hits == 1


def test_plain_amounts_come_from_integer_paise():
    from app.formatting import format_amount

    assert [format_amount(p) for p in (0, 5, 1005, 123456789, -250, None)] == \
        ["0.00", "0.05", "10.05", "1234567.89", "-2.50", ""]
