"""A fresh, migrated and seeded database for one benchmark run, dropped at the end.

The benchmark never touches a database someone else uses: it creates `lis_bench` on the
server named by DATABASE_URL (or the local server, or the embedded one as a last resort)
and drops it afterwards, so every run starts from the same known data.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from collections.abc import Iterator

import psycopg
from sqlalchemy.engine import make_url

BENCH_DB = "lis_bench"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# Redis database 15 belongs to the test suite; the bench keeps to its own.
LOCAL_REDIS = "redis://127.0.0.1:6379/14"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def server_urls() -> tuple[str, str]:
    """(postgres URL, redis URL): from the environment, else the local servers, else the
    embedded ones (started by app.embedded, which keeps them up while this process lives)."""
    env = {
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or (LOCAL_POSTGRES if _reachable("127.0.0.1", 5432) else ""),
        "REDIS_URL": os.environ.get("REDIS_URL") or (LOCAL_REDIS if _reachable("127.0.0.1", 6379) else ""),
    }
    if not env["DATABASE_URL"] or not env["REDIS_URL"]:
        from app.embedded import ensure_environment

        ensure_environment(env)  # fills only what is missing
    return env["DATABASE_URL"], env["REDIS_URL"]


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (keeps ?host= for unix sockets)."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _libpq_url(url: str) -> str:
    """psycopg wants a plain postgresql:// URL, without SQLAlchemy's +driver suffix."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_database(server_url: str, *, keep: bool = False, name: str = BENCH_DB) -> Iterator[str]:
    """Create an empty database (`lis_bench` unless named), yield its URL, drop it afterwards."""
    admin_url = _libpq_url(with_database(server_url, "postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _libpq_url(with_database(server_url, name))
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_and_seed(env: dict[str, str], password: str, audit_rows: int = 0) -> None:
    """Apply the real migrations and seed the demo lab with a known password, through the
    app itself, so the schema and data are exactly what production would have."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.services.seed import seed_demo
    from config import Config

    app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
    with app.app_context():
        upgrade()
        seed_demo(password=password)
        if audit_rows:
            _pad_audit_trail(db, audit_rows)
        db.session.remove()
        db.engine.dispose()


def _pad_audit_trail(db, rows: int) -> None:  # type: ignore[no-untyped-def]
    """Add `rows` system audit events to the demo lab: a lab's audit trail grows by
    thousands of rows a day, and the dashboards read its newest rows on every load."""
    from sqlalchemy import text

    db.session.execute(text("""
        INSERT INTO audit_event (at, org_id, actor_user_id, actor_label, action, entity_type, entity_id, after)
        SELECT now() - make_interval(secs => n), org.id, NULL, 'system:bench-padding', 'bench.padding',
               'sample', n::text, jsonb_build_object('n', n, 'note', repeat('x', 200))
        FROM generate_series(1, :rows) AS n, (SELECT id FROM organization WHERE code = 'demo') AS org
    """), {"rows": rows})
    db.session.commit()
    db.session.execute(text("ANALYZE audit_event"))
    db.session.commit()


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes connected to the bench database (both apps' pools),
    so their CPU time can be charged to the load that keeps them busy."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchall()
    return [pid for (pid,) in rows]
