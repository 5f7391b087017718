"""Concurrent desks: numbers never collide and bill series stay consecutive.

Real commits from many threads, each with its own connection (not the rolled-back test
transaction), in an organization made for this test."""
from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app import audit, security
from app.extensions import db
from app.models import Bill, Branch, Order, Organization, Patient, Sample
from app.services import orders, patients


def _setup_org(app) -> int:
    from tests.factories import Factory

    with app.app_context():
        org = Factory(db.session).org(code="conc" + uuid.uuid4().hex[:8])
        Factory(db.session).catalogue(org)
        org_id = org.id
        db.session.remove()
    return org_id


def _desk_session(app, org_id: int, n: int, errors: list) -> None:
    try:
        with app.app_context():
            security.use_tenant(db.session, org_id)
            with audit.acting_as(audit.AuditContext(actor_label=f"test:desk{n}", org_id=org_id)):
                branch = db.session.execute(select(Branch)).scalars().first()
                for i in range(4):
                    patient = patients.register(
                        {"name": f"Patient {n}-{i}", "sex": "female", "age_years": 30 + i,
                         "mobile": f"98{n:02d}{i:02d}0000"[:10]},
                        branch_id=branch.id, created_by_id=None, confirm_new=True)
                    orders.create_order(patient, branch, orders.OrderRequest(codes=["CBC", "GLUF"]),
                                        created_by_id=None, discount_limit_percent=0)
                    db.session.commit()
            db.session.remove()
    except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
        errors.append(repr(exc))


def test_sixteen_desks_never_share_a_number(app):
    org_id = _setup_org(app)
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for n in range(16):
            pool.submit(_desk_session, app, org_id, n, errors)
    assert errors == []
    with app.app_context():
        security.use_tenant(db.session, org_id)
        mrns = db.session.execute(select(Patient.mrn)).scalars().all()
        accessions = db.session.execute(select(Order.accession)).scalars().all()
        barcodes = db.session.execute(select(Sample.barcode)).scalars().all()
        bill_numbers = db.session.execute(select(Bill.number)).scalars().all()
        db.session.remove()
    assert len(mrns) == len(set(mrns)) == 64
    assert len(accessions) == len(set(accessions)) == 64
    assert len(barcodes) == len(set(barcodes)) == 128
    # one series (MAIN, bill of supply, this FY): 1..64 with no gap and no repeat
    serials = sorted(int(re.fullmatch(r"MAIN/B\d\d/(\d{6})", n).group(1)) for n in bill_numbers)
    assert serials == list(range(1, 65))
