"""Orders: what is asked for, what it costs, which tubes to draw, and the bill.

Panels expand into their tests; tests are grouped into tubes by specimen and container (the
tube plan); prices come from the client's price list where there is one; a discount needs a
reason and stays within the person's limit; a double-clicked submit creates one order."""
from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.models import (Bill, Branch, Client, LabTest, Order, OrderItem, OrderTest, Organization, Panel,
                        PanelItem, Patient, PriceListItem, Referrer, Sample)
from app.formatting import IST
from app.queries import Query, org
from app.services import ServiceError, accounts, billing, identifiers

PRIORITIES = ("routine", "urgent", "stat")


class OrderInvalid(ServiceError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("The order is not complete.")
        self.errors = errors


@dataclass
class OrderRequest:
    codes: list[str]
    priority: str = "routine"
    referrer_id: int | None = None
    client_id: int | None = None
    clinical_notes: str = ""
    discount_paise: int = 0
    discount_reason: str = ""
    idempotency_key: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Orderable:
    """A test or a panel as the order form offers it."""

    kind: str  # "test" | "panel"
    id: int
    code: str
    name: str
    price_paise: int
    sac_code: str
    gst_rate: Decimal
    test_ids: tuple[int, ...]


def _price_overrides(client: Client | None) -> tuple[dict[int, int], dict[int, int]]:
    if client is None or client.price_list is None or not client.price_list.active:
        return {}, {}  # an inactive price list prices nothing
    rows = db.session.execute(select(PriceListItem).where(PriceListItem.price_list_id == client.price_list_id)).scalars()
    tests, panels = {}, {}
    for row in rows:
        if row.test_id:
            tests[row.test_id] = row.price_paise
        else:
            panels[row.panel_id] = row.price_paise
    return tests, panels


def resolve(codes: list[str], client: Client | None = None) -> tuple[list[Orderable], list[str]]:
    """Codes (tests or panels, any case) → orderables with the client's prices; unknown codes."""
    wanted = list(OrderedDict.fromkeys(c.strip().upper() for c in codes if c and c.strip()))
    test_prices, panel_prices = _price_overrides(client)
    tests = {t.code: t for t in db.session.execute(
        select(LabTest).where(LabTest.code.in_(wanted), LabTest.active.is_(True), LabTest.orderable.is_(True))).scalars()}
    panels = {p.code: p for p in db.session.execute(
        select(Panel).where(Panel.code.in_(wanted), Panel.active.is_(True))
        .options(selectinload(Panel.items).selectinload(PanelItem.test))).scalars()
        if all(item.test.active for item in p.items)}  # a panel with a deactivated test is not offered
    found, unknown = [], []
    for code in wanted:
        if code in panels:
            p = panels[code]
            found.append(Orderable("panel", p.id, p.code, p.name, panel_prices.get(p.id, p.price_paise), p.sac_code,
                                   p.gst_rate, tuple(i.test_id for i in p.items)))
        elif code in tests:
            t = tests[code]
            found.append(Orderable("test", t.id, t.code, t.name, test_prices.get(t.id, t.price_paise), t.sac_code,
                                   t.gst_rate, (t.id,)))
        else:
            unknown.append(code)
    return found, unknown


def search_orderables(query: str, *, limit: int = 12, list_all: bool = False) -> list[Orderable]:
    """Keyboard search for the order form: code prefix first, then name. An empty query
    finds nothing, unless list_all (the API's catalogue listing)."""
    q = (query or "").strip()[:60]
    if not q and not list_all:
        return []
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    panels = db.session.execute(
        select(Panel).where(Panel.active.is_(True), (Panel.code.ilike(pattern)) | (Panel.name.ilike(pattern)))
        .options(selectinload(Panel.items)).order_by(Panel.code.ilike(q + "%").desc(), Panel.name).limit(limit)).scalars()
    tests = db.session.execute(
        select(LabTest).where(LabTest.active.is_(True), LabTest.orderable.is_(True),
                              (LabTest.code.ilike(pattern)) | (LabTest.name.ilike(pattern)))
        .order_by(LabTest.code.ilike(q + "%").desc(), LabTest.name).limit(limit)).scalars()
    found = [Orderable("panel", p.id, p.code, p.name, p.price_paise, p.sac_code, p.gst_rate,
                       tuple(i.test_id for i in p.items)) for p in panels]
    found += [Orderable("test", t.id, t.code, t.name, t.price_paise, t.sac_code, t.gst_rate, (t.id,)) for t in tests]
    return found[:limit]


def validate(req: OrderRequest, *, client: Client | None, discount_limit_percent: int) -> list[Orderable]:
    errors: dict[str, list[str]] = {}
    items, unknown = resolve(req.codes, client)
    if unknown:
        errors.setdefault("tests", []).append("Unknown test or panel code: " + ", ".join(unknown[:10]) + ".")
    if not items and not unknown:
        errors.setdefault("tests", []).append("Add at least one test or panel.")
    seen: dict[int, str] = {}
    for item in items:
        for test_id in item.test_ids:
            if test_id in seen:
                errors.setdefault("tests", []).append(f"{item.code} repeats a test already in {seen[test_id]}.")
            seen[test_id] = item.code
    if req.priority not in PRIORITIES:
        errors.setdefault("priority", []).append("Choose routine, urgent or STAT.")
    if len(req.clinical_notes) > 2000:
        errors.setdefault("clinical_notes", []).append("At most 2000 characters.")
    gross = sum(i.price_paise for i in items)
    if req.discount_paise < 0:
        errors.setdefault("discount", []).append("A discount cannot be negative.")
    elif req.discount_paise > 0:
        if not req.discount_reason.strip():
            errors.setdefault("discount_reason", []).append("Say why the discount is given.")
        if gross and req.discount_paise * 100 > gross * discount_limit_percent:
            errors.setdefault("discount", []).append(
                f"Your limit is {discount_limit_percent}% of the total ({gross * discount_limit_percent // 100 / 100:.2f}).")
    if len(req.discount_reason) > 200:
        errors.setdefault("discount_reason", []).append("At most 200 characters.")
    if errors:
        raise OrderInvalid(errors)
    return items


def tube_plan(tests: list[LabTest]) -> list[tuple[str, str, list[LabTest]]]:
    """Group tests by (specimen, container): one tube each, in a stable order."""
    groups: OrderedDict[tuple[str, str], list[LabTest]] = OrderedDict()
    for test in sorted(tests, key=lambda t: (t.container, t.specimen, t.code)):
        groups.setdefault((test.specimen, test.container), []).append(test)
    return [(specimen, container, members) for (specimen, container), members in groups.items()]


def _next_number(sequence: str) -> str:
    return identifiers.with_check_digit(db.session.execute(text(f"SELECT nextval('{sequence}')")).scalar_one())


def next_barcode() -> str:
    """A new tube barcode (also used when a rejected tube is recollected)."""
    return _next_number("sample_barcode_seq")


def create_order(patient: Patient, branch: Branch, req: OrderRequest, *, created_by_id: int | None,
                 discount_limit_percent: int) -> tuple[Order, list[Bill]]:
    """Create the order, its tests, its tubes and its bill(s) in one transaction."""
    if req.idempotency_key:
        existing = by_idempotency_key(req.idempotency_key)
        if existing is not None:
            return existing, bills_of(existing)
    client = None
    if req.client_id:
        # Through a scoped SELECT (not session.get, which may answer from the identity map):
        # another laboratory's client id, or an inactive client, is refused like an unknown one.
        client = db.session.execute(select(Client).where(Client.id == req.client_id,
                                                         Client.active.is_(True))).scalar_one_or_none()
        if client is None:
            raise OrderInvalid({"client": ["Choose a client from the list, or bill the patient."]})
    if req.referrer_id and db.session.execute(select(Referrer.id).where(Referrer.id == req.referrer_id)).scalar() is None:
        raise OrderInvalid({"referrer": ["Choose a referrer from the list."]})
    items = validate(req, client=client, discount_limit_percent=discount_limit_percent)
    order = Order(accession=_next_number("order_accession_seq"), idempotency_key=req.idempotency_key,
                  patient_id=patient.id, branch_id=branch.id, referrer_id=req.referrer_id, client_id=req.client_id,
                  priority=req.priority, clinical_notes=req.clinical_notes.strip(),
                  discount_paise=req.discount_paise, discount_reason=req.discount_reason.strip(),
                  created_by_id=created_by_id)
    savepoint = db.session.begin_nested()
    try:
        db.session.add(order)
        db.session.flush()
    except IntegrityError:
        # The same form was submitted twice at the same moment: the other request won.
        savepoint.rollback()
        existing = by_idempotency_key(req.idempotency_key) if req.idempotency_key else None
        if existing is None:
            raise
        return existing, bills_of(existing)
    savepoint.commit()
    tests_by_id = {t.id: t for t in db.session.execute(
        select(LabTest).where(LabTest.id.in_([tid for i in items for tid in i.test_ids]))).scalars()}
    for item in items:
        order_item = OrderItem(order_id=order.id, test_id=item.id if item.kind == "test" else None,
                               panel_id=item.id if item.kind == "panel" else None, code=item.code, name=item.name,
                               price_paise=item.price_paise, sac_code=item.sac_code, gst_rate=item.gst_rate)
        order.items.append(order_item)
        db.session.flush()
        for test_id in item.test_ids:
            order.tests.append(OrderTest(order_id=order.id, order_item_id=order_item.id, test_id=test_id))
    db.session.flush()
    for specimen, container, members in tube_plan([tests_by_id[ot.test_id] for ot in order.tests]):
        sample = Sample(order_id=order.id, barcode=next_barcode(), specimen=specimen,
                        container=container, status="pending")
        order.samples.append(sample)
        db.session.flush()
        member_ids = {t.id for t in members}
        for order_test in order.tests:
            if order_test.test_id in member_ids:
                order_test.sample_id = sample.id
    db.session.flush()
    audit.record("order.created", entity_type="order", entity_id=order.accession,
                 after={"patient": patient.mrn, "items": [i.code for i in items], "priority": order.priority,
                        "discount_paise": order.discount_paise, "discount_reason": order.discount_reason,
                        "samples": [s.barcode for s in order.samples]})
    org = db.session.get(Organization, branch.org_id)
    try:
        bills = billing.bills_for_order(order, branch, org)
    except accounts.CreditLimitExceeded as err:
        raise OrderInvalid({"client": [err.message]}) from None
    return order, bills


def by_idempotency_key(key: str) -> Order | None:
    return db.session.execute(select(Order).where(Order.idempotency_key == key)).scalar_one_or_none()


def by_accession(accession: str) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.accession == accession)
        .options(selectinload(Order.items), selectinload(Order.samples).selectinload(Sample.tests),
                 selectinload(Order.tests).selectinload(OrderTest.test))).scalar_one_or_none()


def bills_of(order: Order) -> list[Bill]:
    return list(db.session.execute(
        select(Bill).where(Bill.order_id == order.id).order_by(Bill.doc_type, Bill.id)
        .options(selectinload(Bill.lines), selectinload(Bill.payments))).scalars())


def for_patient(patient: Patient, *, limit: int = 20) -> list[Order]:
    return list(db.session.execute(
        select(Order).where(Order.patient_id == patient.id).order_by(Order.created_at.desc()).limit(limit)).scalars())


def _todays_orders_query(*, one_branch: bool) -> Query:
    orders, patients = Order.__table__, Patient.__table__
    stmt = (select(orders.c.accession, patients.c.full_name.label("patient_name"), patients.c.mrn, orders.c.priority,
                   orders.c.created_at)
            .select_from(orders.join(patients, patients.c.id == orders.c.patient_id))
            # served by (org_id, created_at)
            .where(org(orders), org(patients), orders.c.created_at >= bindparam("since", type_=DateTime(timezone=True)))
            .order_by(orders.c.id.desc()).limit(bindparam("limit", type_=Integer)))
    if one_branch:
        stmt = stmt.where(orders.c.branch_id == bindparam("branch_id", type_=BigInteger))
    return Query("todays_orders_branch" if one_branch else "todays_orders", stmt)


# The reception desk's home page: precompiled (app/queries.py).
_TODAYS_ORDERS, _TODAYS_ORDERS_OF_BRANCH = _todays_orders_query(one_branch=False), _todays_orders_query(one_branch=True)


def todays_orders(branch_id: int | None, *, limit: int = 30) -> list[Any]:
    """Orders registered today (India time), newest first; one branch's when given.
    Rows of (accession, patient_name, mrn, priority, created_at)."""
    since = datetime.now(IST).replace(hour=0, minute=0, second=0, microsecond=0)
    if branch_id:
        return _TODAYS_ORDERS_OF_BRANCH.rows(since=since, limit=limit, branch_id=branch_id)
    return _TODAYS_ORDERS.rows(since=since, limit=limit)
