"""Fixtures: real PostgreSQL and Redis (embedded ones when DATABASE_URL / REDIS_URL are
not set), a fresh test database migrated once per run, and a transaction rolled back
after every test."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis as redis_lib

from app.embedded import ensure_environment

TEST_DB_NAME = os.environ.get("LIS_TEST_DATABASE", "lis_test")
TEST_REDIS_DB = int(os.environ.get("LIS_TEST_REDIS_DB", "15"))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _with_redis_db(url: str, db: int) -> str:
    if url.startswith("unix://"):
        return re.sub(r"db=\d+", f"db={db}", url) if "db=" in url else url + f"?db={db}"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create a database on the server of admin_url; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(admin_url, name)


@pytest.fixture(scope="session")
def base_urls() -> dict[str, str]:
    env = ensure_environment(dict(os.environ))
    return {"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]}


def make_config(database_url: str, redis_url: str, **overrides):  # type: ignore[no-untyped-def]
    from config import TestConfig

    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY="test-secret-key-" + "x" * 32)
    cfg = TestConfig.from_env(env)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(scope="session")
def app(base_urls):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from app import create_app

    database_url = recreate_database(base_urls["DATABASE_URL"], TEST_DB_NAME)
    redis_url = _with_redis_db(base_urls["REDIS_URL"], TEST_REDIS_DB)
    application = create_app(make_config(database_url, redis_url))
    with application.app_context():
        upgrade()
    return application


@pytest.fixture(autouse=True)
def _clean_redis(request):  # type: ignore[no-untyped-def]
    """Rate-limit counters and queues from one test never reach the next."""
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    client = redis_lib.Redis.from_url(application.config["REDIS_URL"])
    client.flushdb()
    _revive_rate_limiter()
    yield
    client.close()


def _revive_rate_limiter() -> None:
    """Flask-Limiter is one object per process and takes the storage of the last app that
    called init_app (the e2e live app, a test's app with Redis taken away...), so flushing the
    test database alone can leave counters carrying from test to test. Every test starts with
    the limiter's storage emptied, off any in-memory fallback, and that fallback emptied."""
    from app.extensions import limiter

    limiter._storage_dead = False
    setattr(limiter, "_Limiter__check_backend_count", 0)
    fallback = getattr(limiter, "_fallback_storage", None)
    if fallback is not None:
        fallback.reset()
    try:
        limiter.storage.reset()
    except Exception:  # the storage of a test that took Redis away: nothing to clear there
        pass


@pytest.fixture
def db_conn(app) -> Iterator:  # type: ignore[no-untyped-def]
    """Everything a test does in the database (through requests too) is rolled back.

    The test's connection stands in for the engine; sessions join its transaction with
    savepoints, so service code can commit as usual."""
    from app.extensions import db

    with app.app_context():
        engines = db._app_engines[app]
        engine = engines[None]
        conn = engine.connect()
        outer = conn.begin()
        engines[None] = conn
        original_session = db.session
        db.session = db._make_scoped_session({"join_transaction_mode": "create_savepoint"})
        try:
            yield conn
        finally:
            db.session.remove()
            db.session = original_session
            engines[None] = engine
            outer.rollback()
            conn.close()


@pytest.fixture
def session(db_conn):  # type: ignore[no-untyped-def]
    from app.extensions import db

    return db.session


@pytest.fixture
def client(app, db_conn):  # type: ignore[no-untyped-def]
    from tests.helpers import LisClient

    app.test_client_class = LisClient
    return app.test_client()


@pytest.fixture
def factory(session):  # type: ignore[no-untyped-def]
    from tests.factories import Factory

    return Factory(session)


@pytest.fixture
def auth(client):  # type: ignore[no-untyped-def]
    from tests.helpers import AuthActions

    return AuthActions(client)
