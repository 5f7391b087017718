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
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
import redis as redis_lib

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
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
