"""Roles, permissions and tenant scoping: enforced here, in one place, not in each view.

Tenant scoping works at the ORM level. Every SELECT, UPDATE or DELETE that touches a
TenantScoped model is filtered to the organization set on the session (`use_tenant`); a
query on such a model from a session with no organization raises TenantNotSet unless the
statement says `.execution_options(all_tenants=True)` (used by login and by system jobs
that must see every tenant). New TenantScoped rows get the session's org_id, and writing a
row of another organization raises. So a guessed id in a URL finds nothing and answers 404.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, request
from flask.globals import _cv_app
from flask_login import current_user
from sqlalchemy import Table, event, select
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from app.extensions import db, login_manager
from app.models import Role, TenantScoped

M = TypeVar("M")

ALL_TENANTS = "all_tenants"


class TenantNotSet(RuntimeError):
    """A tenant table was queried without an organization on the session."""


class CrossTenantWrite(RuntimeError):
    """A row of one organization was written from another organization's session."""


def use_tenant(session: Session | Any, org_id: int | None) -> None:
    """Scope a session (or Flask-SQLAlchemy's scoped session) to one organization."""
    session.info["org_id"] = org_id


def current_tenant(session: Session | Any | None = None) -> int | None:
    return (session or db.session).info.get("org_id")


class TenantQueryUnscoped(RuntimeError):
    """A statement reads a tenant table that the ORM cannot filter (e.g. a bare
    `select(func.count()).select_from(Model)`): refused rather than leak another lab's rows."""


def _tenant_tables() -> set[Table]:
    global _TENANT_TABLES
    if _TENANT_TABLES is None:
        from app.models import Base

        _TENANT_TABLES = {m.local_table for m in Base.registry.mappers if issubclass(m.class_, TenantScoped)}
    return _TENANT_TABLES


_TENANT_TABLES: set[Table] | None = None


# The analysis depends only on the statement's shape, not its parameters: it is cached by
# SQLAlchemy's own cache key (the same statement built again per request hits the cache).
_ANALYSIS_CACHE: dict[object, tuple[bool, frozenset[str]]] = {}
_ANALYSIS_CACHE_LIMIT = 2000


def _analyse(state: ORMExecuteState) -> tuple[bool, frozenset[str]]:
    """(reads a tenant table the ORM will scope, names of tenant tables it cannot scope)."""
    cache_key = state.statement._generate_cache_key()
    key = cache_key.key if cache_key is not None else None  # the shape, without parameter values
    cached = _ANALYSIS_CACHE.get(key) if key is not None else None
    if cached is not None:
        return cached
    scoped = {m.local_table for m in state.all_mappers if issubclass(m.class_, TenantScoped)}
    # Tables the statement reads without the ORM knowing their entity (select_from() with
    # only func.count(), an entity inside a scalar subquery...) would escape the criteria.
    tables = {t for t in find_tables(state.statement, include_crud=True) if isinstance(t, Table)}
    result = (bool(scoped), frozenset(t.name for t in (tables & _tenant_tables()) - scoped))
    if key is not None:
        if len(_ANALYSIS_CACHE) >= _ANALYSIS_CACHE_LIMIT:
            _ANALYSIS_CACHE.clear()
        _ANALYSIS_CACHE[key] = result
    return result


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    scoped, unscoped = _analyse(state)
    if unscoped:
        raise TenantQueryUnscoped(
            f"statement reads {', '.join(sorted(unscoped))} without an ORM entity to scope; "
            "select a column of every tenant model the statement reads, joined ones too "
            "(e.g. select(func.count(Model.id))), or pass all_tenants=True"
        )
    return scoped


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # the parent row was already scoped
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get(ALL_TENANTS):
        return
    if not _touches_tenant_tables(state):
        return
    org_id = state.session.info.get("org_id")
    if org_id is None:
        raise TenantNotSet(
            "query on a tenant table without an organization; call use_tenant() or pass all_tenants=True"
        )
    state.statement = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.org_id == org_id, include_aliases=True)
    )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    org_id = session.info.get("org_id")
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        if obj.org_id is None:
            if org_id is None:
                raise TenantNotSet(f"new {type(obj).__name__} has no org_id and the session has no tenant")
            obj.org_id = org_id
        elif org_id is not None and obj.org_id != org_id:
            raise CrossTenantWrite(f"{type(obj).__name__} of org {obj.org_id} written from org {org_id}")


def tenant_of_row(session: Session | Any, model: Any, row_id: int) -> int | None:
    """For a job that is given only a row id: the row's organization (read across tenants),
    with the session then scoped to it; None (and no tenant) when the row does not exist."""
    use_tenant(session, None)
    org_id = session.execute(select(model.org_id).where(model.id == row_id)
                             .execution_options(all_tenants=True)).scalar_one_or_none()
    session.rollback()
    if org_id is not None:
        use_tenant(session, org_id)
    return org_id


def get_or_404(model: type[M], **filters: Any) -> M:
    """Load one row by its natural key or id, within the current organization, or 404."""
    stmt = select(model).filter_by(**filters)
    obj = db.session.execute(stmt).scalar_one_or_none()
    if obj is None:
        abort(404)
    return obj


def branch_scope(stmt: Any, model: Any) -> Any:
    """Narrow a statement to the user's branch for branch-bound staff.

    Admins and staff without a branch see the whole organization; a reception user posted
    at a collection centre sees that centre's rows.
    """
    if current_user.is_authenticated and current_user.role != Role.ADMIN and current_user.branch_id:
        return stmt.where(model.branch_id == current_user.branch_id)
    return stmt


# --- Roles -----------------------------------------------------------------------------

# What each role may open. Navigation is built from the same table, so a menu never
# shows a link that would answer 403.
PORTAL_ROLES: dict[str, frozenset[Role]] = {
    "admin": frozenset({Role.ADMIN}),
    "reception": frozenset({Role.RECEPTION}),
    "technician": frozenset({Role.TECHNICIAN}),
    "pathologist": frozenset({Role.PATHOLOGIST}),
    "billing": frozenset({Role.BILLING}),
}


def has_role(*roles: Role | str) -> bool:
    return current_user.is_authenticated and current_user.role in {str(r) for r in roles}


def requires_role(*roles: Role | str) -> Callable:
    """View decorator: login required, and the user's role must be one of `roles`."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            guard = role_guard(roles)()
            return guard if guard is not None else view(*args, **kwargs)

        return wrapped

    return decorator


def acting_user() -> Any:
    """current_user, without Flask-Login's proxy once the request has loaded it: Flask-Login
    keeps the loaded user on `g._login_user`, and every current_user access otherwise
    costs three context lookups (four per page: the tenant hook, the portal guard, the
    layout and the templates' `current_user`). Before the first load, Flask-Login loads."""
    app_ctx = _cv_app.get(None)
    user = getattr(app_ctx.g, "_login_user", None) if app_ctx is not None else None
    return user if user is not None else current_user._get_current_object()


def role_guard(roles: Iterable[Role | str]) -> Callable[[], Any]:
    """A before_request hook for a whole blueprint (a portal): nothing in it is reachable
    by another role, whether or not a view remembered its decorator."""
    allowed = {str(r) for r in roles}

    def guard() -> Any:
        user = acting_user()
        if not user.is_authenticated:
            return login_manager.unauthorized()
        if user.role not in allowed:
            abort(403)
        return None

    return guard


def client_ip() -> str | None:
    """The client's address as seen after ProxyFix (configured by LIS_PROXY_COUNT)."""
    return request.remote_addr if request else None
