"""Loading the standard catalogue into an organization: counts, idempotence, top-up of an
existing catalogue, panel order and tenant isolation."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app import security
from app.models import Department, LabTest, Panel, PanelItem, ReferenceInterval
from app.services import catalogue_data as data
from app.services.catalogue_seed import load_standard_catalogue

EXPECTED = {
    "departments": len(data.DEPARTMENTS),
    "tests": len(data.TESTS),
    "intervals": sum(len(t.intervals) for t in data.TESTS),
    "panels": len(data.PANELS),
    "panel_items": sum(len(p.items) for p in data.PANELS),
}
NOTHING = dict.fromkeys(EXPECTED, 0)


def _count(session, model) -> int:
    # count(model.id), not count(*) select_from(model): the tenant filter only reaches
    # statements that name the entity's columns.
    return session.execute(select(func.count(model.id))).scalar_one()


def _db_counts(session) -> dict[str, int]:
    return {"departments": _count(session, Department), "tests": _count(session, LabTest),
            "intervals": _count(session, ReferenceInterval), "panels": _count(session, Panel),
            "panel_items": _count(session, PanelItem)}


@pytest.fixture
def org(factory):
    return factory.org()


def test_loads_the_whole_catalogue_into_a_fresh_org(session, org):
    counts = load_standard_catalogue(org.id)
    session.commit()
    assert counts == EXPECTED
    assert counts["tests"] >= 80
    security.use_tenant(session, org.id)
    assert _db_counts(session) == EXPECTED

    hb = session.execute(select(LabTest).where(LabTest.code == "HB")).scalar_one()
    assert (hb.name, hb.loinc, hb.unit, hb.container, hb.department.code) == (
        "Haemoglobin", "718-7", "g/dL", "EDTA", "HAEM")
    assert hb.price_paise == 15000 and hb.sac_code == "999316" and hb.gst_rate == 0 and not hb.taxable
    assert hb.orderable and hb.active
    adult_male = [r for r in hb.intervals if r.sex == "male" and r.age_max_days == 54750][0]
    assert (adult_male.low, adult_male.high) == (Decimal("13.0"), Decimal("17.0"))
    assert (adult_male.critical_low, adult_male.critical_high) == (Decimal("7.0"), Decimal("20.0"))
    assert "Dacie" in adult_male.source

    upro = session.execute(select(LabTest).where(LabTest.code == "UPRO")).scalar_one()
    assert upro.result_type == "choice" and upro.choices == "Nil|Trace|+|++|+++|++++" and not upro.orderable
    assert [r.text for r in upro.intervals] == ["Nil"]

    depts = session.execute(select(Department).order_by(Department.sort_order)).scalars().all()
    assert [d.code for d in depts] == ["HAEM", "BIOC", "CLIN", "SERO", "COAG"]
    packages = session.execute(select(Panel).where(Panel.is_package.is_(True))).scalars().all()
    assert len(packages) == 3


def test_second_run_adds_nothing(session, org):
    assert load_standard_catalogue(org.id) == EXPECTED
    session.commit()
    assert load_standard_catalogue(org.id) == NOTHING
    session.commit()
    security.use_tenant(session, org.id)
    assert _db_counts(session) == EXPECTED


def test_panel_items_come_back_in_report_order(session, org):
    load_standard_catalogue(org.id)
    session.commit()
    session.expire_all()
    security.use_tenant(session, org.id)
    cbc = session.execute(select(Panel).where(Panel.code == "CBC")).scalar_one()
    assert [item.test.code for item in cbc.items] == list(data.CBC_ITEMS)
    assert [item.position for item in cbc.items] == list(range(1, len(data.CBC_ITEMS) + 1))
    assert cbc.price_paise == 35000 and not cbc.is_package
    tft = session.execute(select(Panel).where(Panel.code == "TFT")).scalar_one()
    assert [item.test.code for item in tft.items] == ["T3", "T4", "TSH"]


def test_packages_are_cheaper_than_their_tests_in_the_database(session, org):
    load_standard_catalogue(org.id)
    session.commit()
    security.use_tenant(session, org.id)
    for package in session.execute(select(Panel).where(Panel.is_package.is_(True))).scalars():
        assert package.price_paise < sum(item.test.price_paise for item in package.items), package.code


def _small_catalogue(session, org_id):
    """A lab that already has a few departments and tests of its own (like the demo lab)."""
    security.use_tenant(session, org_id)
    haem = Department(org_id=org_id, code="HAEM", name="Hematology dept")
    sero = Department(org_id=org_id, code="SERO", name="Serology")
    session.add_all([haem, sero])
    session.flush()
    hb = LabTest(org_id=org_id, code="HB", name="Hb (our own)", loinc="718-7", department_id=haem.id,
                 specimen="Whole blood", container="EDTA", unit="g/dL", result_type="numeric", decimals=1,
                 method="Cyanmethaemoglobin", tat_hours=4, price_paise=9900)
    own = LabTest(org_id=org_id, code="MANTOUX", name="Mantoux test", department_id=sero.id,
                  specimen="Skin", container="None", unit="mm", result_type="numeric", decimals=0,
                  method="Intradermal", tat_hours=72, price_paise=20000)
    session.add_all([hb, own])
    session.commit()
    return hb.id


def test_tops_up_an_existing_catalogue_and_leaves_existing_codes_alone(session, org):
    hb_id = _small_catalogue(session, org.id)
    counts = load_standard_catalogue(org.id)
    session.commit()
    hb_intervals = len(data.tests_by_code()["HB"].intervals)
    assert counts == {**EXPECTED, "departments": EXPECTED["departments"] - 2, "tests": EXPECTED["tests"] - 1,
                      "intervals": EXPECTED["intervals"] - hb_intervals}

    session.expire_all()
    security.use_tenant(session, org.id)
    hb = session.get(LabTest, hb_id)
    assert (hb.name, hb.price_paise, hb.method, hb.intervals) == ("Hb (our own)", 9900, "Cyanmethaemoglobin", [])
    assert session.execute(select(Department.name).where(Department.code == "HAEM")).scalar_one() == "Hematology dept"
    assert session.execute(select(LabTest).where(LabTest.code == "MANTOUX")).scalar_one()
    cbc = session.execute(select(Panel).where(Panel.code == "CBC")).scalar_one()
    assert cbc.items[0].test_id == hb_id  # panels use the lab's own test of that code
    assert _count(session, LabTest) == EXPECTED["tests"] + 1


def test_can_fill_intervals_of_existing_tests_that_have_none(session, org):
    hb_id = _small_catalogue(session, org.id)
    counts = load_standard_catalogue(org.id, add_missing_intervals=True)
    session.commit()
    assert counts["intervals"] == EXPECTED["intervals"]
    session.expire_all()
    security.use_tenant(session, org.id)
    hb = session.get(LabTest, hb_id)
    assert len(hb.intervals) == len(data.tests_by_code()["HB"].intervals)
    assert hb.name == "Hb (our own)"
    assert load_standard_catalogue(org.id, add_missing_intervals=True) == NOTHING


def test_each_organization_gets_its_own_catalogue(session, factory):
    first, second = factory.org(), factory.org()
    assert load_standard_catalogue(first.id) == EXPECTED
    session.commit()
    assert load_standard_catalogue(second.id) == EXPECTED
    session.commit()
    for org in (first, second):
        security.use_tenant(session, org.id)
        assert _db_counts(session) == EXPECTED
        org_ids = set(session.execute(select(ReferenceInterval.org_id)).scalars())
        assert org_ids == {org.id}
