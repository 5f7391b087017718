"""The baseline for bench/run.py: a bare Flask app that sends the same SQL as each LIS page
and answers a page of the same size, and does nothing else.

No extensions, no login, sessions or CSRF, no tenant scoping, no request logging, no ORM,
no file templates: the LIS's throughput divided by this app's is what everything around
the queries costs. For each page the statements are those the LIS sent for that page and
user (recorded by bench/sqlcapture.py: Flask-Login's user lookup, the page's own queries,
the lazy loads its template triggers), sent in the same order with the same parameters,
in one transaction on a pooled connection with pre-ping, as Flask-SQLAlchemy does.

Every value fetched is rendered into an HTML table by one Jinja template; the page is then
padded to the LIS page's size, so both send the same bytes.

Served by gunicorn with the LIS's settings: `gunicorn --pythonpath bench bare_app:app`,
with BENCH_PAGES naming the recording and DATABASE_URL the database.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ path }}</title></head>
<body data-page="{{ path }}">
<main>
{% for rows in results %}
<table>
{% for row in rows %}  <tr>{% for value in row %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endfor %}
</main>
</body>
</html>
"""


def _engine_url() -> str:
    return "postgresql+psycopg://" + os.environ["DATABASE_URL"].split("://", 1)[1]


# The LIS's pool: pre-ping on checkout, LIS_DB_POOL_SIZE (default 5) plus as many overflow.
_pool = int(os.environ.get("LIS_DB_POOL_SIZE", "5"))
engine = create_engine(_engine_url(), pool_pre_ping=True, pool_size=_pool, max_overflow=_pool)
app = Flask(__name__)
# Compiled once, as the LIS's file templates are (render_template_string would compile
# the source again on every request and make the baseline slower than it should be).
template = app.jinja_env.from_string(PAGE)
pages: dict[str, dict] = pickle.loads(Path(os.environ["BENCH_PAGES"]).read_bytes())


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def render(path: str) -> str:
    page = pages[path]
    results = []
    if page["statements"]:
        with engine.connect() as conn:
            for sql, params in page["statements"]:
                results.append(conn.exec_driver_sql(sql, params).all())
    body = template.render(path=path, results=results)
    missing = page["size"] - len(body.encode())
    return body + f"<!--{'.' * (missing - 7)}-->" if missing > 7 else body


for _path in pages:
    app.add_url_rule(_path, _path, lambda path=_path: render(path))
