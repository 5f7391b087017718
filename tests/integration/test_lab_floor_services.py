"""Sample life cycle (as a table), result validation, flags, calculated tests, delta checks."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app import audit, security
from app.models import AuditEvent, LabTest, OrderTest, Result, Sample
from app.services import ServiceError, catalogue_admin, results, samples
from app.services.samples import SAMPLE_STATES_ALL, TRANSITIONS

ACTIONS = ("collect", "receive", "start", "complete", "reject")


@pytest.mark.parametrize("state,action", list(itertools.product(SAMPLE_STATES_ALL, ACTIONS)))
def test_sample_transitions_are_exactly_the_table(state, action):
    expected = TRANSITIONS.get((state, action))
    if expected is None:
        with pytest.raises(samples.TransitionRefused) as refused:
            samples.next_state(state, action)
        assert refused.value.message  # says why, in words
    else:
        assert samples.next_state(state, action) == expected


@pytest.fixture
def lab(factory, session):
    org = factory.org()
    factory.standard_catalogue(org)
    tech = factory.user(org, "technician")
    security.use_tenant(session, org.id)
    token = audit.set_context(audit.AuditContext(actor_label="tech", actor_user_id=tech.id, org_id=org.id))
    yield {"org": org, "tech": tech}
    audit._context.reset(token)


def _ot(order, code) -> OrderTest:
    return next(t for t in order.tests if t.test.code == code)


def _save(order, code, raw, user_id=None):
    return results.save(_ot(order, code), results.Entry(raw=raw), user_id=user_id)


def test_receive_reject_and_recollect(lab, factory, session):
    order = factory.order(lab["org"], ["CBC"], receive=False)
    tube = order.samples[0]
    outcome = samples.scan(tube.barcode, "collect", user_id=lab["tech"].id)
    assert outcome.ok and tube.status == "collected"
    again = samples.scan(tube.barcode, "collect", user_id=lab["tech"].id)
    assert not again.ok and "collected" in again.message
    assert samples.scan(tube.barcode, "receive", user_id=lab["tech"].id).ok
    assert tube.status == "received" and tube.received_by_id == lab["tech"].id
    bad = samples.scan(tube.barcode[:-1] + str((int(tube.barcode[-1]) + 1) % 10), "receive", user_id=None)
    assert not bad.ok and "check digit" in bad.message
    assert not samples.scan("", "receive", user_id=None).ok
    with pytest.raises(ServiceError):
        samples.reject(tube, "dropped on floor", user_id=None)
    samples.reject(tube, "haemolysed", "visibly red serum", user_id=lab["tech"].id)
    assert tube.status == "rejected" and tube.rejection_reason == "haemolysed"
    new = samples.recollect(tube, user_id=None)
    session.flush()
    assert new.barcode != tube.barcode and new.status == "pending" and new.recollect_of_id == tube.id
    assert {t.sample_id for t in order.tests} == {new.id}
    with pytest.raises(samples.TransitionRefused):
        samples.recollect(tube, user_id=None)
    actions = set(session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == tube.barcode)).scalars())
    assert {"sample.collect", "sample.receive", "sample.reject", "sample.recollect"} <= actions


def test_results_need_a_received_tube(lab, factory):
    order = factory.order(lab["org"], ["HB"], receive=False)
    with pytest.raises(results.ResultInvalid, match="not received"):
        _save(order, "HB", "12.5")


def test_numeric_validation_uses_the_tests_decimals(lab, factory, session):
    order = factory.order(lab["org"], ["HB"])
    for bad in ("12.55", "twelve", "", "12..5"):
        with pytest.raises(results.ResultInvalid):
            _save(order, "HB", bad)
    assert session.execute(select(Result)).scalars().all() == []
    saved = _save(order, "HB", "12,5")  # comma decimal accepted
    assert saved.value_text == "12.5" and saved.value_num == Decimal("12.5") and saved.unit == "g/dL"


def test_interval_by_sex_and_age_at_collection_with_flags_and_snapshot(lab, factory, session):
    woman = factory.patient(lab["org"], sex="female", dob="1985-01-01")
    man = factory.patient(lab["org"], sex="male", dob="1985-01-01")
    w_order, m_order = factory.order(lab["org"], ["HB"], patient=woman), factory.order(lab["org"], ["HB"], patient=man)
    w, m = _save(w_order, "HB", "12.5"), _save(m_order, "HB", "12.5")
    assert w.interval["sex"] == "female" and m.interval["sex"] == "male"
    assert w.flag is None and m.flag == "L"  # 12.5 g/dL is normal for a woman, low for a man
    critical = _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "5.0")
    assert critical.flag == "LL" and critical.critical
    high = _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "21.0")
    assert high.flag == "HH" and high.critical
    # The snapshot survives a catalogue change.
    test = session.execute(select(LabTest).where(LabTest.code == "HB")).scalar_one()
    test.intervals[0].low = Decimal("1")
    session.flush()
    session.refresh(w)
    assert w.interval["low"] != "1"


def test_an_interval_change_is_used_by_the_next_save_however_it_was_made(lab, factory, session):
    """Saves read intervals from a per-process cache keyed by the test's updated_at; a trigger
    moves updated_at on any change to an interval, through the admin pages or by hand."""
    man = factory.patient(lab["org"], sex="male", dob="1985-01-01")
    assert _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "14.0").flag is None  # cached now
    test = session.execute(select(LabTest).where(LabTest.code == "HB")).scalar_one()
    band = next(iv for iv in test.intervals if iv.sex == "male" and iv.age_min_days <= 15000 < iv.age_max_days)
    form = catalogue_admin.interval_form_data(band)
    catalogue_admin.update_interval(band, {**form, "low": "14.5"})  # the admin screen's way
    session.flush()
    session.expire_all()  # the next request's session
    after_admin = _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "14.0")
    assert after_admin.flag == "L" and after_admin.interval["low"] == "14.5000"

    session.execute(text("UPDATE reference_interval SET low = 13 WHERE id = :id"), {"id": band.id})  # by hand
    session.expire_all()
    by_hand = _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "14.0")
    assert by_hand.flag is None and by_hand.interval["low"] == "13.0000"

    session.execute(text("DELETE FROM reference_interval WHERE test_id = :id"), {"id": test.id})
    session.expire_all()
    unbanded = _save(factory.order(lab["org"], ["HB"], patient=man), "HB", "14.0")
    assert unbanded.interval is None and unbanded.flag is None


def test_choice_values_and_abnormal_flag(lab, factory):
    order = factory.order(lab["org"], ["URINE-RE"])
    with pytest.raises(results.ResultInvalid, match="Choose one of"):
        _save(order, "UGLU", "maybe")
    assert _save(order, "UGLU", "nil").value_text == "Nil"
    protein = _save(order, "UPRO", "++")
    assert protein.flag == "A" and not protein.critical


def test_calculated_lipids_liver_and_egfr(lab, factory, session):
    patient = factory.patient(lab["org"], sex="female", dob="1976-01-01")
    order = factory.order(lab["org"], ["LIPID", "LFT", "KFT"], patient=patient)
    _save(order, "CHOL", "200")
    _save(order, "HDL", "50")
    assert results.current_result(_ot(order, "LDL").id) is None  # TG still missing
    _save(order, "TG", "150")
    ldl = results.current_result(_ot(order, "LDL").id)
    assert ldl.value_text == "120" and ldl.source == "calculated"  # 200 - 50 - 150/5
    assert results.current_result(_ot(order, "VLDL").id).value_text == "30"
    _save(order, "TG", "450")  # Friedewald is not valid above 400 mg/dL: LDL keeps no new value
    assert results.current_result(_ot(order, "LDL").id).value_text == "120"
    _save(order, "TBIL", "1.20")
    _save(order, "DBIL", "0.30")
    assert results.current_result(_ot(order, "IBIL").id).value_text == "0.90"
    _save(order, "TP", "7.0")
    _save(order, "ALB", "4.2")
    assert results.current_result(_ot(order, "GLOB").id).value_text == "2.8"
    assert results.current_result(_ot(order, "AGR").id).value_text == "1.50"
    _save(order, "CREA", "1.00")
    egfr = results.current_result(_ot(order, "EGFR").id)
    # CKD-EPI 2021, female, 50 years, creatinine 1.0 mg/dL: 142 x (1.0/0.7)^-1.2 x 0.9938^50 x 1.012 = 68.6
    age = results.age_in_days(patient.date_of_birth, egfr.entered_at) // 365
    expected = 142 * (1.0 / 0.7) ** -1.2 * 0.9938 ** age * 1.012
    assert egfr.value_num == Decimal(round(expected))


def test_manual_correction_keeps_one_current_result_and_audits(lab, factory, session):
    order = factory.order(lab["org"], ["GLUF"])
    first = _save(order, "GLUF", "95")
    again = _save(order, "GLUF", "95")
    assert again.id == first.id
    corrected = _save(order, "GLUF", "59")
    assert corrected.id == first.id and corrected.value_text == "59"
    rows = session.execute(select(Result).where(Result.order_test_id == _ot(order, "GLUF").id)).scalars().all()
    assert len(rows) == 1
    change = session.execute(select(AuditEvent).where(AuditEvent.action == "result.updated")).scalar_one()
    assert change.before["value_text"] == "95" and change.after["value_text"] == "59"


def test_verified_result_cannot_be_overwritten(lab, factory):
    order = factory.order(lab["org"], ["GLUF"])
    saved = _save(order, "GLUF", "95")
    saved.status = "verified"
    with pytest.raises(results.ResultInvalid, match="already verified"):
        _save(order, "GLUF", "99")


def test_delta_check_against_the_previous_order(lab, factory, session):
    patient = factory.patient(lab["org"], sex="male", dob="1970-01-01")
    test = session.execute(select(LabTest).where(LabTest.code == "HB")).scalar_one()
    test.delta_abs = Decimal("2.0")
    first = _save(factory.order(lab["org"], ["HB"], patient=patient), "HB", "14.0")
    assert first.delta is None  # nothing to compare with
    steady = _save(factory.order(lab["org"], ["HB"], patient=patient), "HB", "13.5")
    assert steady.delta["failed"] is False
    drop = _save(factory.order(lab["org"], ["HB"], patient=patient), "HB", "10.0")
    assert drop.delta["failed"] is True and drop.delta["previous"] == "13.5" and drop.delta["change"] == "-3.5"


def test_sample_goes_in_process_then_done(lab, factory):
    order = factory.order(lab["org"], ["GLUF"])
    tube = order.samples[0]
    _save(order, "GLUF", "95")
    assert tube.status == "done"
    assert tube.tests[0].status == "entered"


def test_worklist_puts_stat_and_critical_first(lab, factory):
    routine = factory.order(lab["org"], ["GLUF"])
    stat = factory.order(lab["org"], ["GLUF"], priority="stat")
    listed = results.worklist(results.WorklistFilter(status="pending"))
    ids = [ot.order_id for ot in listed]
    assert ids.index(stat.id) < ids.index(routine.id)
    assert results.worklist(results.WorklistFilter(status="pending", priority="stat"))[0].order_id == stat.id


def test_recollect_moves_only_the_tests_still_waiting(lab, factory):
    order = factory.order(lab["org"], ["LIPID"])
    tube = order.samples[0]
    _save(order, "CHOL", "180")
    samples.reject(tube, "haemolysed", "HDL interference", user_id=None)
    new = samples.recollect(tube, user_id=None)
    by_code = {ot.test.code: ot.sample_id for ot in order.tests}
    assert by_code["CHOL"] == tube.id  # its result stays with the tube it came from
    assert by_code["HDL"] == new.id and by_code["TG"] == new.id


def test_nothing_to_recollect_when_every_test_has_a_result(lab, factory):
    order = factory.order(lab["org"], ["GLUF"])
    tube = order.samples[0]
    _save(order, "GLUF", "95")
    tube.status = "received"  # done -> back, to reject it for the test
    samples.reject(tube, "clotted", user_id=None)
    with pytest.raises(samples.TransitionRefused, match="nothing to recollect"):
        samples.recollect(tube, user_id=None)
