"""Read queries compiled once per process, for the hottest read paths: the user behind
every request and the dashboards.

Through the ORM a statement costs about 1 ms of Python (building it, its cache key, the
tenant criteria, loading rows into objects) before PostgreSQL sees it; sent as SQL text
with a dict of parameters it costs about 0.3 ms (docs/PERFORMANCE.md, "Where the time
goes"). A page that shows a few counts and columns needs nothing the ORM adds, so its
statements are defined here once, as Core SELECTs, and sent the cheap way on the request's
own connection and transaction (`db.session.connection()`).

Tenant scoping. These statements do not pass through the ORM, so app/security.py's tenant
criteria cannot reach them. They carry their own: every tenant table a statement reads
must be filtered with `<table>.org_id = :org_id` (write it with `org(table)`), which is
checked when the query is defined (an import-time error, not a leak), and `:org_id` is
always bound from the session's organization (`security.use_tenant`), never by the caller.
With no organization on the session the query refuses to run (TenantNotSet), as the ORM
path does. A query that must read across organizations (the login's user lookup) says so
with `all_tenants=True` and gets no :org_id.

Rows come back as the driver returns them (psycopg's own types: int, str, Decimal, aware
datetimes), without SQLAlchemy's result processing: fine for counts, names and times;
use the ORM for anything that needs type conversion or is written back.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, bindparam
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Row
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.util import find_tables

from app.extensions import db

ORG_PARAM = "org_id"


def org(table: Any) -> ColumnElement[bool]:
    """The tenant filter a query must apply to each tenant table (or alias) it reads."""
    return table.c.org_id == bindparam(ORG_PARAM, type_=BigInteger)


def _tenant_table_names() -> set[str]:
    from app.security import _tenant_tables

    return {t.name for t in _tenant_tables()}


class Query:
    """One read-only SELECT, compiled once per process and sent as SQL text."""

    def __init__(self, name: str, stmt: Select[Any], *, all_tenants: bool = False):
        self.name = name
        self.all_tenants = all_tenants
        compiled = stmt.compile(dialect=PGDialect_psycopg())
        # IN (...) of literal values is an "expanding" parameter, rendered per execution by
        # the engine; here once, with its values. Every parameter gets its literal value,
        # None for those the caller must give.
        expanded = compiled._process_parameters_for_postcompile(  # noqa: SLF001
            compiled.construct_params(_check=False))
        self.sql: str = expanded.statement
        self._defaults: dict[str, Any] = dict(expanded.parameters)
        self._required = frozenset(name for name, bind in compiled.binds.items()
                                   if bind.required and name != ORG_PARAM)
        processors = compiled._bind_processors  # noqa: SLF001 - type conversions for bound values
        self._processors = {key: proc for key, proc in processors.items() if proc is not None}
        self._check_scoping(stmt)

    def _check_scoping(self, stmt: Select[Any]) -> None:
        """Every tenant table read is filtered by its own `org_id = :org_id`; a query that
        reads across organizations must not take :org_id at all."""
        if self.all_tenants:
            if ORG_PARAM in self._defaults:
                raise ValueError(f"query {self.name}: all_tenants=True but filters on :{ORG_PARAM}")
            return
        tenant_tables = _tenant_table_names()
        for source in find_tables(stmt, include_aliases=True):
            table = source.element if isinstance(source, Alias) else source
            if not isinstance(table, Table) or table.name not in tenant_tables:
                continue
            rendered = source.name
            if not re.search(rf"(?<![\w.]){re.escape(rendered)}\.org_id = %\({ORG_PARAM}\)s", self.sql):
                raise ValueError(f"query {self.name}: reads tenant table {rendered} without "
                                 f"{rendered}.org_id = :{ORG_PARAM} (use queries.org({rendered}))")
        if ORG_PARAM not in self._defaults:
            raise ValueError(f"query {self.name}: reads no tenant table; define it with all_tenants=True")

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        if ORG_PARAM in params:
            raise ValueError(f"query {self.name}: :{ORG_PARAM} comes from the session, not the caller")
        unknown = params.keys() - self._defaults.keys()
        if unknown:
            raise ValueError(f"query {self.name}: unknown parameters {sorted(unknown)}")
        missing = self._required - params.keys()
        if missing:
            raise ValueError(f"query {self.name}: missing parameters {sorted(missing)}")
        bound = {**self._defaults, **params}
        if not self.all_tenants:
            from app.security import TenantNotSet, current_tenant

            org_id = current_tenant()
            if org_id is None:
                raise TenantNotSet(f"query {self.name} without an organization on the session")
            bound[ORG_PARAM] = org_id
        for key, process in self._processors.items():
            bound[key] = process(bound[key])
        return bound

    def rows(self, **params: Any) -> list[Row[Any]]:
        return db.session.connection().exec_driver_sql(self.sql, self._params(params)).all()

    def one_or_none(self, **params: Any) -> Row[Any] | None:
        return db.session.connection().exec_driver_sql(self.sql, self._params(params)).one_or_none()

    def one(self, **params: Any) -> Row[Any]:
        return db.session.connection().exec_driver_sql(self.sql, self._params(params)).one()

    def __repr__(self) -> str:
        return f"<Query {self.name}>"
