"""The append-only audit trail: who changed what clinical, money or security data, when,
from where, and what it was before and after.

Services call `record()` inside the same transaction as the change, so an audited change
and its audit row commit or roll back together. Who is acting comes from an AuditContext
that the web layer, the API, a CLI command or a worker sets; services never read the request.
"""
from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db
from app.models import AuditEvent


@dataclasses.dataclass(frozen=True)
class AuditContext:
    actor_label: str = "system"
    actor_user_id: int | None = None
    org_id: int | None = None
    ip: str | None = None
    request_id: str | None = None


_context: contextvars.ContextVar[AuditContext] = contextvars.ContextVar("audit_context", default=AuditContext())


def set_context(ctx: AuditContext) -> contextvars.Token:
    return _context.set(ctx)


def current_context() -> AuditContext:
    return _context.get()


@contextmanager
def acting_as(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def _json_safe(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of a row as JSON-safe values, for before/after."""
    return {name: _json_safe(getattr(obj, name)) for name in fields}


def record(
    action: str,
    *,
    entity_type: str,
    entity_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    org_id: int | None = None,
) -> AuditEvent:
    """Add an audit row to the current transaction. It is written with the transaction's next
    flush (at the latest its commit), so it commits or rolls back with the change it records;
    not flushing here lets a busy path (a result save) write it in the same round trip as the
    rest."""
    ctx = current_context()
    event = AuditEvent(
        org_id=org_id if org_id is not None else ctx.org_id,
        actor_user_id=ctx.actor_user_id,
        actor_label=ctx.actor_label,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=_json_safe(before) if before is not None else None,
        after=_json_safe(after) if after is not None else None,
        ip=ctx.ip,
        request_id=ctx.request_id,
    )
    db.session.add(event)
    return event


def add_created(obj: Any, *, entity_type: str, fields: Iterable[str], key: str = "id",
                extra: dict[str, Any] | None = None, flush: bool = True) -> Any:
    """Add a new row, flush it for its id, and audit `<entity_type>.created` with its fields.

    With flush=False the id is taken from the table's sequence instead (one small query) and
    the row is written with the transaction's next flush, with the audit row and whatever else
    is pending: a hot path (a result save) pays one flush instead of two. Callers that rely on
    the flush to meet a constraint violation at once keep the default."""
    db.session.add(obj)
    if flush or key != "id":
        db.session.flush()
    elif obj.id is None:
        # On the session's connection (same transaction), not through Session.execute: no
        # autoflush would write the row after all, and no ORM work for a one-number query.
        sequence = func.pg_get_serial_sequence(obj.__table__.name, "id")
        obj.id = db.session.connection().execute(select(func.nextval(sequence))).scalar_one()
    record(f"{entity_type}.created", entity_type=entity_type, entity_id=getattr(obj, key),
           after={**snapshot(obj, fields), **(extra or {})})
    return obj


def apply_changes(obj: Any, values: dict[str, Any], *, entity_type: str, fields: Iterable[str],
                  key: str = "id") -> dict[str, Any]:
    """Set `values` on a row and audit `<entity_type>.updated` with only the fields that
    changed (nothing is recorded when nothing changed). Returns the changed fields."""
    fields = tuple(fields)
    before = snapshot(obj, fields)
    for name, value in values.items():
        setattr(obj, name, value)
    old, new = changes(before, snapshot(obj, fields))
    if new:
        record(f"{entity_type}.updated", entity_type=entity_type, entity_id=getattr(obj, key), before=old, after=new)
    return new


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that changed, so the trail says what happened without noise."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def events_for_org(
    org_id: int,
    *,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[tuple[AuditEvent]]:
    """Audit events of one organization, newest first, with optional filters."""
    stmt = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if entity_type:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    if actor:
        stmt = stmt.where(AuditEvent.actor_label.icontains(actor, autoescape=True))
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    return stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
