"""Backup and restore as docs/OPERATIONS.md tells an operator to do it: `pg_dump -Fc` of a
migrated, seeded database, `pg_restore` into a fresh database, and the restored copy is the
same system: every table has the same rows, the migration revision is the same, staff can
log in, and the audit trail is still append-only (its trigger comes back with the data)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import make_config, recreate_database

SRC_DB = "lis_backup_src"
DST_DB = "lis_backup_dst"
DEMO_PASSWORD = "backup-restore-pass-1"

PGSERVER_BIN = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" \
    / "site-packages" / "pgserver" / "pginstall" / "bin"


# --- choosing pg_dump / pg_restore --------------------------------------------------------

def _server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _tool_major(executable: str) -> int | None:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidate_dirs() -> list[Path]:
    dirs = []
    try:
        import pgserver  # the embedded server's own binaries

        dirs.append(Path(pgserver.__file__).resolve().parent / "pginstall" / "bin")
    except ImportError:
        dirs.append(PGSERVER_BIN)
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    return dirs


def pg_tools(server_major: int) -> tuple[str, str] | None:
    """pg_dump and pg_restore from one installation whose major version is >= the server's;
    the closest version wins (the same major as the server when there is one)."""
    found: list[tuple[int, str, str]] = []
    for directory in _candidate_dirs():
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if not (dump.exists() and restore.exists()):
            continue
        major = _tool_major(str(dump))
        if major is not None and major >= server_major and _tool_major(str(restore)) == major:
            found.append((major, str(dump), str(restore)))
    if not found:
        return None
    _, dump, restore = min(found, key=lambda item: item[0])
    return dump, restore


# --- fixtures -------------------------------------------------------------------------------

def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scratch_databases(base_urls) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    admin_url = base_urls["DATABASE_URL"]
    src = recreate_database(admin_url, SRC_DB)
    dst = recreate_database(admin_url, DST_DB)
    try:
        yield src, dst
    finally:
        for name in (SRC_DB, DST_DB):
            _drop(admin_url, name)


def _make_app(database_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app(make_config(database_url, redis_url))


def _dispose(app) -> None:  # type: ignore[no-untyped-def]
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


# --- what "the same database" means ---------------------------------------------------------

def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def _row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            for table in _tables(conn)
        }


def _sequences(url: str) -> dict[str, int | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")
        return dict(rows.fetchall())


def _alembic_version(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version ORDER BY 1")]


def _audit_triggers(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal "
            "AND tgenabled <> 'D'"
        )
        return {r[0] for r in rows}


# --- the test ------------------------------------------------------------------------------

def test_pg_dump_and_pg_restore_give_back_a_working_lab(base_urls, scratch_databases, tmp_path):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from app.extensions import db
    from app.services import auth as auth_service
    from app.services.seed import DEMO_USERS, seed_demo

    admin_url = base_urls["DATABASE_URL"]
    server_major = _server_major(admin_url)
    tools = pg_tools(server_major)
    if tools is None:
        pytest.skip(f"no pg_dump/pg_restore of major version >= {server_major} (the server's) found "
                    f"in {', '.join(str(d) for d in _candidate_dirs())}")
    pg_dump, pg_restore = tools
    src_url, dst_url = scratch_databases
    redis_url = base_urls["REDIS_URL"]

    # 1. A migrated database with the demo lab in it (what `flask db upgrade` + `lis seed-demo` leave).
    src_app = _make_app(src_url, redis_url)
    try:
        with src_app.app_context():
            upgrade()
            created = seed_demo(password=DEMO_PASSWORD)
            assert created is not None and set(created) == {u["username"] for u in DEMO_USERS}
            # A login writes to the user row and the audit trail: the dump carries live data.
            auth_service.authenticate("demo.admin", DEMO_PASSWORD, auth_service.LoginPolicy())
    finally:
        _dispose(src_app)

    # 2. Backup: custom format, as in the documented nightly job.
    dump_file = tmp_path / "lis.dump"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    subprocess.run([pg_dump, "-Fc", "--no-owner", f"--dbname={src_url}", "--file", str(dump_file)],
                   check=True, env=env, capture_output=True, timeout=300)
    assert dump_file.stat().st_size > 0
    listing = subprocess.run([pg_restore, "--list", str(dump_file)], check=True, env=env,
                             capture_output=True, text=True, timeout=60).stdout
    assert "audit_event_no_update_delete" in listing  # the trigger travels in the dump

    # 3. Restore into a fresh, empty database; any error fails the whole restore.
    result = subprocess.run(
        [pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", f"--dbname={dst_url}",
         str(dump_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr

    # 4. The same data, row for row, table by table; sequences continue where they were.
    src_counts, dst_counts = _row_counts(src_url), _row_counts(dst_url)
    assert dst_counts == src_counts
    assert src_counts["organization"] == 1
    assert src_counts["app_user"] == len(DEMO_USERS)
    assert src_counts["lab_test"] > 0 and src_counts["audit_event"] > 0
    assert _sequences(dst_url) == _sequences(src_url)

    # 5. The same schema revision (`flask db current` reads this table).
    assert _alembic_version(dst_url) == _alembic_version(src_url) != []

    # 6. The restored lab works: every demo user logs in (which also inserts an audit row,
    #    so the restored sequences do not collide), and a wrong password is still refused.
    dst_app = _make_app(dst_url, redis_url)
    try:
        with dst_app.app_context():
            policy = auth_service.LoginPolicy()
            for spec in DEMO_USERS:
                user = auth_service.authenticate(spec["username"], DEMO_PASSWORD, policy)
                assert user.username == spec["username"] and user.role == spec["role"].value
            with pytest.raises(auth_service.LoginFailed):
                auth_service.authenticate("demo.admin", "not-the-password", policy)
            db.session.rollback()
    finally:
        _dispose(dst_app)
    assert _row_counts(dst_url)["audit_event"] == src_counts["audit_event"] + len(DEMO_USERS) + 1

    # 7. The audit trail is still append-only after the restore: the trigger came back.
    assert _audit_triggers(dst_url) == {"audit_event_no_update_delete", "audit_event_no_truncate"}
    with psycopg.connect(dst_url) as conn:
        for statement in ("UPDATE audit_event SET action = 'tampered'",
                          "DELETE FROM audit_event",
                          "TRUNCATE audit_event"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        tampered = conn.execute("SELECT count(*) FROM audit_event WHERE action = 'tampered'").fetchone()[0]
        assert tampered == 0
