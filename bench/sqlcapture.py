"""What SQL each LIS page sends, recorded from the LIS itself, for the bare app to replay.

The baseline must run the same SQL as the real page. Writing that SQL out by hand goes
stale as soon as a page or a query changes, silently making the comparison unfair. So the
bench renders each page once in-process, with the same session cookie wrk will send, and
records every statement and its parameters as SQLAlchemy hands them to psycopg. The bare
app replays exactly those (bench/bare_app.py).

The recording is a pickle written and read only by this bench, in its temporary directory.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from sqlalchemy import event

from sessions import COOKIE_NAME, USER_AGENT

Statement = tuple[str, object]  # SQL text in psycopg's paramstyle, and its parameters


def record_pages(env: dict[str, str], pages: list[tuple[str, str | None, str]]) -> dict[str, dict]:
    """For each (path, session cookie or None, marker): the statements one GET sends and
    the size of the page in bytes, as {path: {"statements": [...], "size": n}}."""
    from app import create_app
    from app.extensions import db
    from config import Config

    app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
    recorded: list[Statement] = []

    def keep(_conn, _cursor, statement, parameters, _context, _executemany):  # type: ignore[no-untyped-def]
        recorded.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        return {path: _record_one(app, path, cookie, marker, recorded) for path, cookie, marker in pages}
    finally:
        event.remove(engine, "before_cursor_execute", keep)
        engine.dispose()


def _record_one(app, path: str, cookie: str | None, marker: str,  # type: ignore[no-untyped-def]
                recorded: list[Statement]) -> dict:
    client = app.test_client()
    if cookie:
        client.set_cookie(COOKIE_NAME, cookie)
    recorded.clear()
    response = client.get(path, headers={"User-Agent": USER_AGENT})
    if response.status_code != 200 or marker not in response.text:
        raise RuntimeError(f"recording {path}: the LIS answered {response.status_code} without {marker!r}")
    writes = [sql for sql, _ in recorded if not sql.lstrip().upper().startswith(("SELECT", "WITH"))]
    if writes:
        raise RuntimeError(f"{path} writes on GET; the bare app would not replay that faithfully: {writes[0][:80]}")
    return {"statements": list(recorded), "size": len(response.data)}


def save(path: Path, pages: dict[str, dict]) -> None:
    """Pickle, not JSON: parameters are dates, decimals and the like, and must come back as
    the same Python values for psycopg to send them the same way (read by bare_app.py)."""
    path.write_bytes(pickle.dumps(pages))

