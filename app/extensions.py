"""Extensions, created without an app and wired in create_app() with init_app()."""
from __future__ import annotations

from flask import current_app
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
import redis as redis_lib

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


@limiter.request_filter
def _reads_are_not_limited() -> bool:
    """Portal pages that only read are not rate limited (the limits guard login, OTP and the
    API), so a GET skips Flask-Limiter's per-request evaluation: about a fifth of a small
    page's server time (docs/PERFORMANCE.md, "Where the time goes"). The public report
    verification page is limited on GET too: it is reached without logging in."""
    from flask import request

    return request.method in ("GET", "HEAD") and not request.path.startswith(("/api/", "/verify/"))
htmx = Htmx()
compress = Compress()


def redis_client() -> redis_lib.Redis:
    """One client (and connection pool) per app, created on first use."""
    client = current_app.extensions.get("lis_redis")
    if client is None:
        client = redis_lib.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )
        current_app.extensions["lis_redis"] = client
    return client
