"""The pathologist's side: result states as a table, the queue order, verify (and verify
twice), send back, critical calls before release, autoverification rules as a table."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from app import audit, security
from app.models import AuditEvent, LabTest, OrderTest, Result
from app.services import results, verification
from app.services.verification import RESULT_STATES, TRANSITIONS

ACTIONS = ("verify", "autoverify", "release", "send_back")


@pytest.mark.parametrize("state,action", list(itertools.product(RESULT_STATES, ACTIONS)))
def test_result_transitions_are_exactly_the_table(state, action):
    expected = TRANSITIONS.get((state, action))
    if expected is None:
        with pytest.raises(verification.VerificationRefused):
            verification.next_state(state, action)
    else:
        assert verification.next_state(state, action) == expected


BASE = dict(enabled=True, flag=None, critical=False, delta_failed=False, instrument_flags="", comment="",
            sample_remark="", has_interval=True, numeric=True)


@pytest.mark.parametrize("change,verified", [
    ({}, True),
    ({"enabled": False}, False),
    ({"flag": "H"}, False),
    ({"flag": "LL", "critical": True}, False),
    ({"delta_failed": True}, False),
    ({"instrument_flags": "W"}, False),
    ({"instrument_flags": "~N"}, True),  # "normal" from the analyzer is not a flag
    ({"comment": "lipaemic"}, False),
    ({"sample_remark": "mildly haemolysed"}, False),
    ({"has_interval": False}, False),
    ({"numeric": False}, False),
])
def test_autoverification_rule_as_a_table(change, verified):
    decision = verification.autoverify_decision(**{**BASE, **change})
    assert decision.verify is verified
    assert bool(decision.reasons) is (not verified)


@pytest.fixture
def lab(factory, session):
    org = factory.org()
    factory.standard_catalogue(org)
    doc = factory.user(org, "pathologist")
    doc2 = factory.user(org, "pathologist")
    security.use_tenant(session, org.id)
    token = audit.set_context(audit.AuditContext(actor_label="doc", actor_user_id=doc.id, org_id=org.id))
    yield {"org": org, "doc": doc, "doc2": doc2}
    audit._context.reset(token)


def _ot(order, code) -> OrderTest:
    return next(t for t in order.tests if t.test.code == code)


def _enter(order, code, raw) -> Result:
    return results.save(_ot(order, code), results.Entry(raw=raw), user_id=None)


def test_queue_puts_criticals_first_then_stat_then_oldest(lab, factory):
    old = factory.order(lab["org"], ["GLUF"])
    stat = factory.order(lab["org"], ["GLUF"], priority="stat")
    critical = factory.order(lab["org"], ["K"])
    untouched = factory.order(lab["org"], ["GLUF"])
    _enter(old, "GLUF", "95")
    _enter(stat, "GLUF", "96")
    _enter(critical, "K", "7.1")  # potassium above 6.5 mmol/L: critical
    queued = [item.order_id for item in verification.queue()]
    assert queued == [critical.id, stat.id, old.id]
    assert untouched.id not in queued


def test_verify_then_verify_again_is_refused_and_nothing_applies_twice(lab, factory, session):
    order = factory.order(lab["org"], ["GLUF", "CREA"])
    glu, crea = _enter(order, "GLUF", "95"), _enter(order, "CREA", "0.90")
    seen = {glu.id: glu.version, crea.id: crea.version}
    verification.verify(order, seen, user=lab["doc"])
    assert glu.status == crea.status == "verified" and glu.verified_by_id == lab["doc"].id
    with pytest.raises(verification.ChangedMeanwhile, match="already verified by"):
        verification.verify(order, seen, user=lab["doc2"])
    assert glu.verified_by_id == lab["doc"].id
    events = session.execute(select(AuditEvent).where(AuditEvent.action == "result.verified")).scalars().all()
    assert len(events) == 2


def test_a_result_changed_after_the_page_opened_is_not_verified(lab, factory):
    order = factory.order(lab["org"], ["GLUF"])
    shown = _enter(order, "GLUF", "95")
    seen = {shown.id: shown.version}
    _enter(order, "GLUF", "59")  # the technician corrects it meanwhile
    with pytest.raises(verification.ChangedMeanwhile, match="changed after you opened"):
        verification.verify(order, seen, user=lab["doc"])
    assert shown.status == "entered"


def test_concurrent_update_loses_to_the_version_check(lab, factory, session):
    order = factory.order(lab["org"], ["GLUF"])
    result = _enter(order, "GLUF", "95")
    session.flush()
    session.execute(Result.__table__.update().where(Result.id == result.id).values(version=result.version + 1))
    result.comment = "changed"
    with pytest.raises(StaleDataError):
        session.flush()


def test_send_back_for_rerun_then_a_new_attempt(lab, factory):
    order = factory.order(lab["org"], ["GLUF"])
    first = _enter(order, "GLUF", "950")
    with pytest.raises(verification.VerificationRefused):
        verification.send_back(order, first.id, "   ", user=lab["doc"])
    verification.send_back(order, first.id, "Implausible: check for a dextrose drip", user=lab["doc"])
    assert first.status == "rerun" and not first.is_current and _ot(order, "GLUF").status == "pending"
    second = _enter(order, "GLUF", "95")
    assert second.attempt == 2 and second.is_current
    rows = {r.order_test.test.code: r for r in verification.review(order)}
    assert rows["GLUF"].result.id == second.id


def test_critical_needs_a_read_back_call_before_release(lab, factory, session):
    order = factory.order(lab["org"], ["K", "NA"])
    k, na = _enter(order, "K", "7.1"), _enter(order, "NA", "140")
    assert k.critical and k.flag == "HH"
    verification.verify(order, {k.id: k.version, na.id: na.version}, user=lab["doc"])
    with pytest.raises(verification.VerificationRefused, match="critical-value call"):
        verification.release(order, user=lab["doc"])
    assert k.status == na.status == "verified"  # nothing released
    with pytest.raises(verification.VerificationRefused, match="read back"):
        verification.record_call(k, recipient_kind="doctor", recipient_name="Dr. Menon", phone="98450 12345",
                                 read_back=False, user=lab["doc"])
    with pytest.raises(verification.VerificationRefused):
        verification.record_call(na, recipient_kind="doctor", recipient_name="Dr. Menon", phone="98450 12345",
                                 read_back=True, user=lab["doc"])
    call = verification.record_call(k, recipient_kind="doctor", recipient_name="Dr. Menon", phone="98450 12345",
                                    read_back=True, user=lab["doc"])
    assert call.phone == "+919845012345"
    released = verification.release(order, user=lab["doc"])
    assert {r.id for r in released} == {k.id, na.id} and k.status == "released"
    register = verification.criticals_register(k.entered_at.replace(year=2000), k.entered_at.replace(year=2100))
    assert [(r.id, len(calls)) for r, calls in register] == [(k.id, 1)]


def test_autoverified_results_are_marked_and_audited(lab, factory, session):
    test = session.execute(select(LabTest).where(LabTest.code == "GLUF")).scalar_one()
    test.autoverify = True
    order = factory.order(lab["org"], ["GLUF"])
    normal = _enter(order, "GLUF", "90")
    assert normal.status == "verified" and normal.autoverified and normal.verified_by_id is None
    high = _enter(factory.order(lab["org"], ["GLUF"]), "GLUF", "250")
    assert high.status == "entered" and not high.autoverified
    assert session.execute(select(AuditEvent.entity_id).where(AuditEvent.action == "result.autoverified")
                           ).scalars().all() == [str(normal.id)]


def test_review_shows_the_previous_value(lab, factory):
    patient = factory.patient(lab["org"], sex="male", dob="1970-01-01")
    first = factory.order(lab["org"], ["HB"], patient=patient)
    _enter(first, "HB", "14.0")
    second = factory.order(lab["org"], ["HB"], patient=patient)
    _enter(second, "HB", "13.1")
    rows = verification.review(second)
    assert rows[0].previous is not None and rows[0].previous.value_num == Decimal("14.0")


def test_sending_back_an_input_sends_back_what_was_calculated_from_it(lab, factory):
    order = factory.order(lab["org"], ["LIPID"])
    chol, hdl, tg = _enter(order, "CHOL", "260"), _enter(order, "HDL", "50"), _enter(order, "TG", "150")
    ldl = results.current_result(_ot(order, "LDL").id)
    assert ldl.value_text == "180"
    current = [results.current_result(ot.id) for ot in order.tests]
    verification.verify(order, {r.id: r.version for r in current if r is not None}, user=lab["doc"])
    assert ldl.status == "verified"
    verification.send_back(order, chol.id, "Lipaemic: re-run after dilution", user=lab["doc"])
    assert ldl.status == "rerun" and not ldl.is_current and "Cholesterol" in ldl.rerun_reason
    _enter(order, "CHOL", "300")
    fresh = results.current_result(_ot(order, "LDL").id)
    assert fresh.value_text == "220" and fresh.status == "entered"  # recomputed, to be verified again
    with pytest.raises(verification.VerificationRefused, match="calculated from other results"):
        verification.send_back(order, fresh.id, "looks wrong", user=lab["doc"])


def test_verifying_a_critical_value_messages_the_referring_doctor(lab, factory, session):
    from app.models import Notification, Referrer

    doctor = Referrer(org_id=lab["org"].id, name="Dr. Kavita Menon", kind="doctor", phone="+919845012345")
    session.add(doctor)
    session.flush()
    order = factory.order(lab["org"], ["K", "NA"])
    order.referrer_id = doctor.id
    session.flush()
    session.expire(order, ["referrer"])
    k, na = _enter(order, "K", "7.1"), _enter(order, "NA", "140")
    verification.verify(order, {k.id: k.version, na.id: na.version}, user=lab["doc"])
    sent = session.execute(select(Notification.event, Notification.idempotency_key)).all()
    assert sent == [("critical_value", f"critical:{k.id}:referrer")]  # the sodium is not critical
