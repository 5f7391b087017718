"""Read queries compiled once per process, for the hottest read paths: the user behind
every request and the dashboards.

Through the ORM a statement costs about 1 ms of Python (building it, its cache key, the
tenant criteria, loading rows into objects) before PostgreSQL sees it; sent as SQL text
with a dict of parameters it costs about 0.3 ms (docs/PERFORMANCE.md, "Where the time
goes"). A page that shows a few counts and columns needs nothing the ORM adds, so its
statements are defined here once, as Core SELECTs, and sent the cheap way.

Which connection. Once the request's ORM Session has a transaction (it wrote, or read
through the ORM), a statement runs on that Session's connection, so it sees what the
request wrote. Before that, in a web request, it runs on a connection of its own, taken
from the pool at the first such statement and given back when the request ends
(`read_connection`): a page that only reads never starts the Session's transaction, which
was ~7 % of a dashboard's instructions (docs/PERFORMANCE.md, "Per-call costs"). These
statements are plain SELECTs (no FOR UPDATE: refused at definition), so that connection
never holds a row lock; at READ COMMITTED each statement sees what is committed when it
runs, as on the Session's connection. Outside a request (workers, the CLI) the Session's
connection is always used. In tests the test's connection stands in for the engine
(tests/conftest.py) and is used as it is.

Tenant scoping. These statements do not pass through the ORM, so app/security.py's tenant
criteria cannot reach them. They carry their own, and the query refuses to be defined (an
import-time error, not a leak) unless every table with an org_id column that any SELECT in
it reads, aliases and subqueries included, is restricted by an AND-term
`<table>.org_id = :org_id` (write it with `org(table)`) of that SELECT's WHERE, or of the ON
of an inner join, or of an outer join's ON for its joined side. An OR, a filter on another
level of the statement, or one in an ON that cannot restrict the rows does not count.
`:org_id` is always bound from the session's organization (`security.use_tenant`), never by
the caller; with none on the session the query refuses to run (TenantNotSet), as the ORM
path does. A query that must read across organizations (the login's user lookup) says so
with `all_tenants=True` and takes no :org_id.

Rows come back as the driver returns them (psycopg's own types: int, str, Decimal, aware
datetimes), without SQLAlchemy's result processing: fine for counts, names and times;
use the ORM for anything that needs type conversion or is written back.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any

from flask import has_request_context
from flask.globals import _cv_app
from sqlalchemy import BigInteger, ColumnElement, Select, Table, bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnClause
from sqlalchemy.sql.selectable import CTE, Alias, Join, Subquery

from app.extensions import db

ORG_PARAM = "org_id"


def org(table: Any) -> ColumnElement[bool]:
    """The tenant filter a query must apply to each tenant table (or alias) it reads."""
    return table.c.org_id == bindparam(ORG_PARAM, type_=BigInteger)


def org_count(table: Any, *criteria: Any) -> Any:
    """A scalar subquery counting one tenant table's rows of this organization: several
    counts make one statement (a dashboard's cards)."""
    return select(func.count()).select_from(table).where(org(table), *criteria).scalar_subquery()


def _is_tenant_table(source: Any) -> bool:
    """A table (or an alias of one) with an org_id column: the tenant models, and tables
    such as audit_event whose rows belong to an organization without being TenantScoped."""
    table = source.element if isinstance(source, Alias) else source
    return isinstance(table, Table) and "org_id" in table.c


def _conjuncts(clause: Any) -> list[Any]:
    """The terms of a criterion joined by AND (an OR's terms do not each restrict)."""
    if clause is None:
        return []
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        return [term for sub in clause.clauses for term in _conjuncts(sub)]
    return [clause]


def _filters_org(term: Any, source: Any) -> bool:
    return (isinstance(term, BinaryExpression) and term.operator is operators.eq
            and isinstance(term.right, BindParameter) and term.right.key == ORG_PARAM
            and isinstance(term.left, ColumnClause) and term.left.name == "org_id" and term.left.table is source)


def _selects(element: Any, enclosing: frozenset[Any] = frozenset()) -> Any:
    """Every SELECT in a statement, with the FROM objects of the SELECTs around it: a
    subquery in a WHERE or a column list (scalar, EXISTS) takes those from its enclosing
    query (SQLAlchemy correlates them); one in a FROM (a derived table, a CTE) takes none."""
    if isinstance(element, Select):
        yield element, enclosing
        enclosing = enclosing | frozenset(element.get_final_froms())
    elif isinstance(element, (Subquery, CTE)):
        enclosing = frozenset()
    for child in element.get_children():
        yield from _selects(child, enclosing)


def _unscoped_sources(select_: Select[Any], correlated: frozenset[Any]) -> list[Any]:
    """The tenant tables in this SELECT's own FROM list (joins included) that no AND-term
    of its WHERE, or of the ON of a join that can restrict them, filters to :org_id.
    Correlated ones are the enclosing query's rows, checked there; subqueries are SELECTs
    of their own and are checked on their own."""
    where = _conjuncts(select_.whereclause)
    unscoped = []

    def visit(source: Any, criteria: list[Any]) -> None:
        if isinstance(source, Join):
            on = _conjuncts(source.onclause)
            if source.full:
                visit(source.left, criteria)
                visit(source.right, criteria)
            elif source.isouter:  # ON restricts only the joined (right) side
                visit(source.left, criteria)
                visit(source.right, criteria + on)
            else:
                visit(source.left, criteria + on)
                visit(source.right, criteria + on)
        elif source in correlated:
            return
        elif _is_tenant_table(source) and not any(_filters_org(term, source) for term in criteria):
            unscoped.append(source)

    for source in select_.get_final_froms():
        visit(source, where)
    return unscoped


class Query:
    """One read-only SELECT, compiled once per process and sent as SQL text."""

    def __init__(self, name: str, stmt: Select[Any], *, all_tenants: bool = False):
        self.name = name
        self.all_tenants = all_tenants
        if stmt._for_update_arg is not None:  # noqa: SLF001 - may run on a read-only connection
            raise ValueError(f"query {self.name}: locking reads (FOR UPDATE) go through the ORM session")
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
        if any(bind.expanding and bind.required for bind in compiled.binds.values()):
            raise ValueError(f"query {self.name}: an IN list given at run time is not supported "
                             "(write its values into the query, or use the ORM)")
        processors = compiled._bind_processors  # noqa: SLF001 - type conversions for bound values
        self._processors = {key: proc for key, proc in processors.items() if proc is not None}
        self._check_scoping(stmt)

    def _check_scoping(self, stmt: Select[Any]) -> None:
        """Every tenant table read, at every level of the statement, is filtered by its own
        `org_id = :org_id`; a query that reads across organizations takes no :org_id."""
        if self.all_tenants:
            if ORG_PARAM in self._defaults:
                raise ValueError(f"query {self.name}: all_tenants=True but filters on :{ORG_PARAM}")
            return
        for select_, correlated in _selects(stmt):
            for source in _unscoped_sources(select_, correlated):
                raise ValueError(f"query {self.name}: reads tenant table {source.name} without "
                                 f"{source.name}.org_id = :{ORG_PARAM} (use queries.org({source.name}))")
        if ORG_PARAM not in self._defaults:
            raise ValueError(f"query {self.name}: reads no tenant table; define it with all_tenants=True")

    def _params(self, params: dict[str, Any], session: Any) -> dict[str, Any]:
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

            org_id = current_tenant(session)
            if org_id is None:
                raise TenantNotSet(f"query {self.name} without an organization on the session")
            bound[ORG_PARAM] = org_id
        for key, process in self._processors.items():
            bound[key] = process(bound[key])
        return bound

    def _execute(self, params: dict[str, Any]) -> Any:
        session = db.session()  # the request's Session, looked up once for its tenant and connection
        return read_connection(session).exec_driver_sql(self.sql, self._params(params, session))

    def _records(self, result: Any) -> Any:
        """The named-tuple class of this query's rows, made from its first result's columns.

        Rows come back as named tuples, not SQLAlchemy Rows: reading a Row's column by
        name costs ~0.6 µs (~40 ns for a named tuple), and templates read every column of
        every row (a 25-row queue: 200 reads). Index, unpacking, `_fields` and `_asdict()`
        work as before; a column name that is not an identifier becomes `_<position>`."""
        record = self.__dict__.get("_record")
        if record is None:
            record = self._record = namedtuple(f"{self.name}_row", list(result.keys()), rename=True)  # type: ignore[misc]
        return record

    def rows(self, **params: Any) -> list[Any]:
        result = self._execute(params)
        return list(map(self._records(result)._make, result.all()))

    def one_or_none(self, **params: Any) -> Any | None:
        result = self._execute(params)
        row = result.one_or_none()
        return None if row is None else self._records(result)._make(row)

    def one(self, **params: Any) -> Any:
        result = self._execute(params)
        return self._records(result)._make(result.one())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


_READ_CONNECTION = "_lis_read_connection"  # on the request's g: (connection, whether to close it)


def read_connection(session: Any) -> Any:
    """The connection a precompiled SELECT runs on (see the module's docstring)."""
    if session.in_transaction() or not has_request_context():
        return session.connection()
    request_globals = _cv_app.get().g
    held = getattr(request_globals, _READ_CONNECTION, None)
    if held is None:
        bind = db.engine
        own = not isinstance(bind, Connection)  # a test's connection: used, not closed
        held = (bind.connect() if own else bind, own)
        setattr(request_globals, _READ_CONNECTION, held)
    return held[0]


def release_read_connection(_exc: BaseException | None = None) -> None:
    """At the end of the request: give the read connection back to the pool (its
    transaction is rolled back: it only read). A teardown hook (create_app)."""
    app_ctx = _cv_app.get(None)
    held = app_ctx.g.pop(_READ_CONNECTION, None) if app_ctx is not None else None
    if held is not None and held[1]:
        held[0].close()


class TextQuery(Query):
    """Hand-written SQL for what Core does not express well (a LATERAL per array element),
    compiled once like a Query. Its tenant filter cannot be checked structurally: the SQL
    must take `:org_id` (bound from the session, as for a Query) and apply it to every
    tenant table it reads, `WHERE <table>.org_id = :org_id`; a reviewer checks the rest."""

    def __init__(self, name: str, sql: str):  # not Query.__init__, which compiles a Select
        self.name = name
        self.all_tenants = False
        compiled = text(sql).compile(dialect=PGDialect_psycopg())
        self.sql = compiled.string
        self._defaults = {key: None for key in compiled.binds}
        self._required = frozenset(self._defaults) - {ORG_PARAM}
        self._processors = {}
        if ORG_PARAM not in self._defaults:
            raise ValueError(f"query {self.name}: hand-written SQL must filter on :{ORG_PARAM}")
