"""The application factory. create_app() wires extensions, blueprints, CLI and error
handlers; it has no side effects: no migrations, no seeding, no network."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from config import PROJECT_ROOT, Config


def create_app(config: Config | None = None) -> Flask:
    from app import audit, observability, queries, security, web
    from app.extensions import compress, csrf, db, htmx, limiter, login_manager, migrations_on_demand

    if config is None:
        config = Config.from_env()
    app = web.LisFlask(
        __name__,
        static_folder=str(PROJECT_ROOT / "static"),
        template_folder=str(PROJECT_ROOT / "templates"),
        instance_path=str(Path(config.LIS_INSTANCE_PATH).resolve()),
        instance_relative_config=False,
    )
    app.config.from_object(config)
    if app.config["LIS_PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=app.config["LIS_PROXY_COUNT"], x_proto=app.config["LIS_PROXY_COUNT"]
        )

    observability.configure_logging(app)
    # First, so every answer (a CSRF refusal, a 429) carries a request id.
    observability.init_request_tracking(app)
    db.init_app(app)
    app.teardown_appcontext(queries.release_read_connection)  # the precompiled reads' connection
    migrations_on_demand(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    htmx.init_app(app)
    compress.init_app(app)

    _configure_login(app)
    web.init_web(app)

    @app.before_request
    def _tenant_and_audit_context() -> None:
        """Scope the DB session to the user's organization and say who is acting."""
        if request.endpoint in {"static", "ops.healthz", "ops.metrics"}:
            return
        user = current_user._get_current_object()  # one proxy lookup, not five
        if user.is_authenticated:
            security.use_tenant(db.session, user.org_id)
            audit.set_context(audit.AuditContext(
                actor_label=f"user:{user.username}", actor_user_id=user.id,
                org_id=user.org_id, ip=request.remote_addr, request_id=g.get("request_id"),
            ))
        else:
            security.use_tenant(db.session, None)  # fail closed: no tenant, no tenant rows
            audit.set_context(audit.AuditContext(
                actor_label="anonymous", ip=request.remote_addr, request_id=g.get("request_id"),
            ))

    _register_blueprints(app)
    _register_template_helpers(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def _configure_login(app: Flask) -> None:
    from flask_login.utils import _user_context_processor

    from app import security
    from app.extensions import login_manager
    from app.services import auth

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    # One precompiled query per request, not the ORM: the most frequent statement of the
    # portal (app/queries.py). current_user is an auth.StaffUser snapshot.
    login_manager.user_loader(auth.load_staff_user)
    # Templates' current_user without Flask-Login's proxy (security.acting_user).
    processors = app.template_context_processors[None]
    processors[processors.index(_user_context_processor)] = lambda: {"current_user": security.acting_user()}

    @login_manager.unauthorized_handler
    def unauthorized():  # type: ignore[no-untyped-def]
        from flask import flash, redirect, url_for
        from flask import Response

        if getattr(request, "htmx", False):
            # A fragment request after the session ended: send the whole page to login.
            resp = Response(status=401)
            resp.headers["HX-Redirect"] = url_for("auth.login")
            return resp
        flash(login_manager.login_message, "info")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def _register_blueprints(app: Flask) -> None:
    from app.api import bp as api_bp
    from app.observability import ops
    from app.portals.admin import bp as admin_bp
    from app.portals.auth import bp as auth_bp
    from app.portals.billing import bp as billing_bp
    from app.portals.home import bp as home_bp
    from app.portals.messaging import bp as messaging_bp
    from app.portals.pathologist import bp as pathologist_bp
    from app.portals.patient import bp as patient_bp
    from app.portals.public import bp as public_bp
    from app.portals.reception import bp as reception_bp
    from app.portals.reports import bp as reports_bp
    from app.portals.technician import bp as technician_bp

    for bp in (ops, home_bp, auth_bp, admin_bp, reception_bp, technician_bp, pathologist_bp, billing_bp, reports_bp,
               public_bp, messaging_bp, patient_bp, api_bp):
        app.register_blueprint(bp)


def _register_template_helpers(app: Flask) -> None:
    from app import navigation
    from app.formatting import format_amount, format_local_datetime, format_paise
    from app.models.base import utcnow
    from app.services.identifiers import display_mobile, format_abha_number
    from app.services.patients import age_label

    app.jinja_env.filters["local_dt"] = format_local_datetime
    app.jinja_env.filters["rupees"] = format_paise
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.globals["now_utc"] = utcnow
    app.jinja_env.filters["age"] = age_label
    app.jinja_env.filters["mobile"] = display_mobile
    app.jinja_env.filters["abha"] = format_abha_number
    app.jinja_env.globals["page_chrome"] = navigation.page_chrome
