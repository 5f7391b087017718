"""Extensions, created without an app and wired in create_app() with init_app()."""
from __future__ import annotations

from functools import partial
from typing import Any

import click
from flask import Flask, current_app, g
from flask.globals import request_ctx
from flask.cli import with_appcontext
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_login.utils import _create_identifier
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
import redis as redis_lib

from app.models.base import Base

db = SQLAlchemy(model_class=Base)


class _LoginManager(LoginManager):
    """Flask-Login, with two steps of every request made cheap; what they decide is the same.

    - "strong" session protection compares the session's identifier with a SHA-512 of the
      client's address and User-Agent, computed afresh on every request. It is computed
      once per address and browser here (`_session_identifier`).
    - The remember-me cookie hook looks at the session and the configuration on every
      answer although only a login or logout asks it to act ("_remember" in the session).
    Together ~3 % of a dashboard (docs/PERFORMANCE.md, "Per-call costs")."""

    def __init__(self) -> None:
        super().__init__()
        self._session_identifier_generator = _session_identifier

    def _update_remember_cookie(self, response: Any) -> Any:
        if ("_remember" not in request_ctx._get_current_object().session
                and not current_app.config.get("REMEMBER_COOKIE_REFRESH_EACH_REQUEST")):
            return response
        return super()._update_remember_cookie(response)


_session_identifiers: dict[tuple[str | None, ...], str] = {}


def _session_identifier() -> str:
    """Flask-Login's identifier of the client (its own function), remembered per the
    inputs it reads: the forwarded-for header, the address and the User-Agent."""
    environ = request_ctx._get_current_object().request.environ
    key = (environ.get("HTTP_X_FORWARDED_FOR"), environ.get("REMOTE_ADDR"), environ.get("HTTP_USER_AGENT"))
    identifier = _session_identifiers.get(key)
    if identifier is None:
        if len(_session_identifiers) >= 4096:
            _session_identifiers.clear()
        identifier = _session_identifiers[key] = _create_identifier()
    return identifier


login_manager = _LoginManager()
class _CSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF protection, answering safe methods before looking up exemptions:
    its own order looks up the view's and blueprint's exemptions first and only then
    finds the method needs no token, on every GET. Same outcome, less work."""

    def protect(self, apply_exemptions: bool = False) -> None:
        from flask import request

        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        super().protect(apply_exemptions=apply_exemptions)


csrf = _CSRFProtect()


def _reads_are_not_limited() -> bool:
    """Portal pages that only read are not rate limited: the limits guard login, OTP, the
    webhooks and the API. The public report verification page is limited on GET too: it is
    reached without logging in."""
    from flask import request

    return request.method in ("GET", "HEAD") and not request.path.startswith(("/api/", "/verify/"))


class _Limiter(Limiter):
    """Flask-Limiter, with the reads above turned away before any of its per-request work.
    Its own request filters run only after it has gathered the route's limits and built its
    context: about 6 % of a dashboard's CPU for a GET that no limit applies to
    (docs/PERFORMANCE.md, "The fixed per-request stack"). Every path into the check (the
    before-request hook and the limit decorators) comes through here; the limits themselves
    are tested in test_security.py (login), test_patient_portal.py (OTP) and test_reports.py
    (report verification)."""

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if _reads_are_not_limited():
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        # Its after-request hook (limit headers, conditional deductions) and its teardown
        # (a reset) act on the state the check leaves on the request context. A request
        # whose limits were never looked at has none; they would build it only to find it
        # empty, so they are skipped for it.
        for hooks in (app.after_request_funcs[None], app.teardown_request_funcs[None]):
            hooks[:] = [_only_after_a_check(hook) if self._owns(hook) else hook for hook in hooks]

    def _owns(self, hook: Any) -> bool:
        return getattr(hook, "__self__", None) is self or (isinstance(hook, partial) and hook.args[:1] == (self,))


def _only_after_a_check(hook: Any) -> Any:
    def run(value: Any) -> Any:
        if hasattr(request_ctx._get_current_object(), "_limiter_request_context"):  # set by Flask-Limiter's check
            return hook(value)
        return value  # the response (after-request) or the exception (teardown: ignored)

    return run


limiter = _Limiter(key_func=get_remote_address)
htmx = Htmx()
class _Compress(Compress):
    """Flask-Compress, not consulted for a client that accepts no encoding: there is nothing
    to choose, and the headers middleware (web._AnswerHeaders) says `Vary: Accept-Encoding`
    on every answer."""

    def after_request(self, response: Any) -> Any:
        if not request_ctx._get_current_object().request.environ.get("HTTP_ACCEPT_ENCODING"):
            return response
        return super().after_request(response)


compress = _Compress()


def redis_client() -> redis_lib.Redis:
    """One client (and connection pool) per app, created on first use."""
    client = current_app.extensions.get("lis_redis")
    if client is None:
        client = redis_lib.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )
        current_app.extensions["lis_redis"] = client
    return client


# ---------------------------------------------------------------- migrations, set up on demand
# Flask-Migrate imports Alembic, Mako and Pygments: ~11 MB in every process that creates the
# app. Only `flask db ...`, the supervisor's start-up upgrade, tests and benches need it, so
# it is set up the first time something asks for app.extensions["migrate"] (as
# flask_migrate.upgrade() and migrations/env.py do) or runs a `flask db` command, never in a
# web worker (docs/PERFORMANCE.md, worker memory).

def init_migrations(app: Flask) -> None:
    from flask_migrate import Migrate

    from config import PROJECT_ROOT

    Migrate().init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), compare_type=True)


class _Extensions(dict):  # type: ignore[type-arg]
    """app.extensions, which sets Flask-Migrate up when "migrate" is first looked up."""

    def __init__(self, app: Flask, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._app = app

    def __missing__(self, key: str) -> Any:
        if key != "migrate":
            raise KeyError(key)
        init_migrations(self._app)
        return dict.__getitem__(self, key)


def _remember_migrate_options(directory: str | None, x_arg: tuple[str, ...]) -> None:
    g.directory, g.x_arg = directory, x_arg  # read by Migrate.get_config()


class _MigrateCommands(click.Group):
    """`flask db ...`: Flask-Migrate's own command group, loaded when a db command runs."""

    def __init__(self, app: Flask):
        # The same options as Flask-Migrate's group, handed to its commands the same way (g).
        super().__init__(
            "db", help="Database migrations (Flask-Migrate): upgrade, downgrade, current, history...",
            callback=with_appcontext(_remember_migrate_options), params=[
                click.Option(["-d", "--directory"], default=None,
                             help='Migration script directory (default is "migrations")'),
                click.Option(["-x", "--x-arg"], multiple=True,
                             help="Additional arguments consumed by custom env.py scripts")])
        self._app = app

    def _commands(self) -> click.Group:
        self._app.extensions["migrate"]  # noqa: B018 - sets Flask-Migrate up
        from flask_migrate.cli import db as commands

        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._commands().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._commands().get_command(ctx, name)


def migrations_on_demand(app: Flask) -> None:
    app.extensions = _Extensions(app, app.extensions)
    app.cli.add_command(_MigrateCommands(app))
