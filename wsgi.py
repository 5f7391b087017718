"""The WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`.

When DATABASE_URL / REDIS_URL are not set (a developer's machine, the demo), embedded
PostgreSQL and Redis are started here, before the app is created; create_app() itself
has no side effects.
"""
from app.embedded import ensure_environment

ensure_environment()

from app import create_app  # noqa: E402

app = create_app()
