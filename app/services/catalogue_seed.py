"""Load the standard catalogue (app.services.catalogue_data) into one organization.

Idempotent and additive: a department, test or panel whose code already exists in the
organization is left exactly as it is (the lab may have edited it), so the loader can top
up a small catalogue (the demo lab's eight tests) and can run again without changing
anything. It flushes but never commits: the caller owns the transaction.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app import security
from app.extensions import db
from app.models import Department, LabTest, Panel, PanelItem, ReferenceInterval
from app.services import catalogue_data as data


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def load_standard_catalogue(org_id: int, *, add_missing_intervals: bool = False) -> dict[str, int]:
    """Insert the standard departments, tests (with reference intervals), panels and
    packages for `org_id`, skipping every code the organization already has.

    With add_missing_intervals=True, a test that already exists but has no reference
    interval at all gets the standard ones (for a catalogue seeded without intervals);
    a test with any interval is never touched.

    Returns the number of rows inserted per kind.
    """
    session = db.session
    security.use_tenant(session, org_id)
    counts = {"departments": 0, "tests": 0, "intervals": 0, "panels": 0, "panel_items": 0}

    departments = {d.code: d for d in session.execute(select(Department)).scalars()}
    for spec in data.DEPARTMENTS:
        if spec.code in departments:
            continue
        dept = Department(org_id=org_id, code=spec.code, name=spec.name, sort_order=spec.sort_order)
        session.add(dept)
        departments[spec.code] = dept
        counts["departments"] += 1
    session.flush()

    tests = {t.code: t for t in session.execute(select(LabTest)).scalars()}
    for spec in data.TESTS:
        existing = tests.get(spec.code)
        if existing is not None:
            if add_missing_intervals and not existing.intervals:
                counts["intervals"] += _add_intervals(existing, spec, org_id)
            continue
        test = LabTest(
            org_id=org_id, code=spec.code, name=spec.name, loinc=spec.loinc,
            department_id=departments[spec.department].id, specimen=spec.specimen, container=spec.container,
            unit=spec.unit, result_type=spec.result_type, choices=spec.choices, decimals=spec.decimals,
            method=spec.method, tat_hours=spec.tat_hours, price_paise=spec.price_paise,
            sac_code=data.SAC_CODE, gst_rate=Decimal(data.GST_RATE), orderable=spec.orderable, active=True,
            delta_abs=_dec(data.DELTA_CHECKS.get(spec.code, (None, None))[0]),
            delta_pct=_dec(data.DELTA_CHECKS.get(spec.code, (None, None))[1]),
        )
        session.add(test)
        counts["intervals"] += _add_intervals(test, spec, org_id)
        tests[spec.code] = test
        counts["tests"] += 1
    session.flush()

    existing_panels = set(session.execute(select(Panel.code)).scalars())
    for pspec in data.PANELS:
        if pspec.code in existing_panels:
            continue
        panel = Panel(org_id=org_id, code=pspec.code, name=pspec.name, price_paise=pspec.price_paise,
                      sac_code=data.SAC_CODE, gst_rate=Decimal(data.GST_RATE), is_package=pspec.is_package,
                      active=True)
        for position, code in enumerate(pspec.items, start=1):
            panel.items.append(PanelItem(org_id=org_id, test_id=tests[code].id, position=position))
            counts["panel_items"] += 1
        session.add(panel)
        counts["panels"] += 1
    session.flush()
    return counts


def _add_intervals(test: LabTest, spec: data.TestDef, org_id: int) -> int:
    for ref in spec.intervals:
        test.intervals.append(ReferenceInterval(
            org_id=org_id, sex=ref.sex, age_min_days=ref.age_min_days, age_max_days=ref.age_max_days,
            low=_dec(ref.low), high=_dec(ref.high), critical_low=_dec(ref.critical_low),
            critical_high=_dec(ref.critical_high), text=ref.text, source=ref.source,
        ))
    return len(spec.intervals)
