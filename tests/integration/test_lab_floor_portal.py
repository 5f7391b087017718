"""The laboratory floor through its pages: tube receipt (scan, collect, reject), the worklist,
the result entry grid (flags, calculated tests, refusals), the unmatched queue, the instrument
screens, the phlebotomy list and recollection at reception, and the admin instrument registry.
Bad input answers 422 in place and saves nothing; another lab's rows answer 404; each portal
is closed to the other roles."""
from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models.instrument_order import InstrumentOrder
from app.models import (AuditEvent, Instrument, InstrumentCode, InstrumentMessage, LabTest, Order, Result, Sample,
                        UnmatchedResult)
from app.services import catalogue_seed, identifiers, instruments, orders, patients, samples
from tests.helpers import audit_events
from tests.factories import PASSWORD

HTMX = {"HX-Request": "true"}
_ports = itertools.count(24_001)
_people = itertools.count(1)


def text_of(response) -> str:
    return response.get_data(as_text=True)


def count(session, model, *where) -> int:
    session.expire_all()
    return session.execute(select(func.count(model.id)).where(*where)).scalar_one()




def as_test_actor(org):  # type: ignore[no-untyped-def]
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id))


def place_order(session, org, codes: list[str], *, priority: str = "routine", sex: str = "female",
                dob: str = "1980-03-04", name: str | None = None) -> Order:
    """An order through the services (as the desk makes it); returns it with its tubes."""
    branch = org.branches[0]
    n = next(_people)
    security.use_tenant(session, org.id)
    with as_test_actor(org):
        patient = patients.register({"name": name or f"Lakshmi Test{'abcdefghij'[n % 10]}", "sex": sex, "dob": dob,
                                     "mobile": f"98450{n:05d}", "pin_code": "560038", "state_code": "29"},
                                    branch_id=branch.id, created_by_id=None, confirm_new=True)
        order, _ = orders.create_order(patient, branch, orders.OrderRequest(codes=codes, priority=priority),
                                       created_by_id=None, discount_limit_percent=0)
    session.commit()
    return order


def tube(order: Order, container: str) -> Sample:
    return next(s for s in order.samples if s.container == container)


def receive(session, org, sample: Sample) -> None:
    security.use_tenant(session, org.id)
    with as_test_actor(org):
        samples.receive(sample, user_id=None)
    session.commit()


def order_test_id(session, order: Order, code: str) -> int:
    session.expire_all()
    return next(ot.id for ot in session.get(Order, order.id).tests if ot.test.code == code)


def current(session, order: Order, code: str) -> Result | None:
    session.expire_all()
    return session.execute(select(Result).where(Result.order_test_id == order_test_id(session, order, code),
                                                Result.is_current)).scalar_one_or_none()


@pytest.fixture
def lab(client, auth, factory, session):
    """A lab with the standard catalogue (intervals, calculated tests) and a technician logged in."""
    org = factory.org()
    factory.standard_catalogue(org)
    tech = factory.user(org, "technician", branch=org.branches[0])
    auth.login(tech.username, PASSWORD)
    return {"org": org, "tech": tech}


def login_as(auth, factory, org, role: str):  # type: ignore[no-untyped-def]
    auth.logout()
    user = factory.user(org, role, branch=org.branches[0])
    auth.login(user.username, PASSWORD)
    return user


def scan(client, barcode: str, action: str = "receive", htmx: bool = True):  # type: ignore[no-untyped-def]
    return client.post_form("/technician/receipt/scan", {"barcode": barcode, "action": action},
                            headers=HTMX if htmx else {})


def save_result(client, order: Order, ot_id: int, value: str, comment: str = ""):  # type: ignore[no-untyped-def]
    return client.post_form(f"/technician/orders/{order.accession}/results/{ot_id}",
                            {"value": value, "comment": comment}, headers=HTMX)


# --- receipt ------------------------------------------------------------------------------------


def test_receipt_page_has_a_scan_box_that_keeps_the_focus(client, lab):
    page = text_of(client.get("/technician/receipt"))
    assert re.search(r'<input id="barcode" name="barcode" autofocus', page)
    assert 'value="receive" checked' in page and 'value="collect"' in page
    assert 'id="batch"' in page and "js/lab.js" in page


def test_a_scan_receives_the_tube_and_answers_one_batch_line(client, lab, session):
    order = place_order(session, lab["org"], ["GLUF", "CREA"], name="Meena Iyer")
    fluoride = tube(order, "Fluoride")
    response = scan(client, fluoride.barcode)
    assert response.status_code == 200
    line = text_of(response)
    assert line.lstrip().startswith('<li class="scan-line ok"') and "<html" not in line
    for shown in (fluoride.barcode, "Meena Iyer", "Fluoride", order.accession, "Received."):
        assert shown in line
    session.expire_all()
    received = session.get(Sample, fluoride.id)
    assert received.status == "received" and received.received_at is not None
    assert received.received_by_id == lab["tech"].id
    assert [e.entity_id for e in audit_events(session, "sample.receive")] == [fluoride.barcode]


@pytest.mark.parametrize("typed,message", [
    ("123456789", "check digit"), ("", "Scan or type a barcode"), ("abc", "check digit"),
])
def test_a_bad_scan_is_a_red_line_and_changes_nothing(client, lab, typed, message):
    response = scan(client, typed)
    assert response.status_code == 422
    assert 'class="scan-line refused"' in text_of(response) and message in text_of(response)


def test_an_unknown_or_already_received_tube_is_refused(client, lab, session):
    unknown = identifiers.with_check_digit(99999991)
    assert "No tube with this barcode." in text_of(scan(client, unknown))
    order = place_order(session, lab["org"], ["GLUF"])
    barcode = order.samples[0].barcode
    assert scan(client, barcode).status_code == 200
    again = scan(client, barcode)
    assert again.status_code == 422 and "already at the lab" in text_of(again)
    assert len(audit_events(session, "sample.receive")) == 1


def test_scan_can_mark_collected_and_a_plain_post_gets_the_page(client, lab, session):
    order = place_order(session, lab["org"], ["GLUF"])
    barcode = order.samples[0].barcode
    response = scan(client, barcode, action="collect", htmx=False)
    assert response.status_code == 200
    page = text_of(response)
    assert "<html" in page and "Collected." in page and 'value="collect" checked' in page
    session.expire_all()
    assert session.get(Sample, order.samples[0].id).status == "collected"


def test_reject_from_the_batch_line_needs_a_reason(client, lab, session):
    order = place_order(session, lab["org"], ["GLUF"])
    sample = order.samples[0]
    line = text_of(scan(client, sample.barcode))
    assert "Reject" in line and 'name="as" value="line"' in line and "Haemolysed" in line
    url = f"/technician/samples/{sample.barcode}/reject"
    refused = client.post_form(url, {"reason": "spilled", "note": "", "as": "line"}, headers=HTMX)
    assert refused.status_code == 422
    assert "Choose a rejection reason from the list." in text_of(refused) and "<li" in text_of(refused)
    session.expire_all()
    assert session.get(Sample, sample.id).status == "received"
    done = client.post_form(url, {"reason": "haemolysed", "note": "grossly <pink>", "as": "line"}, headers=HTMX)
    assert done.status_code == 200 and "Rejected: Haemolysed." in text_of(done)
    session.expire_all()
    rejected = session.get(Sample, sample.id)
    assert (rejected.status, rejected.rejection_reason, rejected.rejection_note) == ("rejected", "haemolysed",
                                                                                    "grossly <pink>")
    assert audit_events(session, "sample.reject")[0].entity_id == sample.barcode


def test_tube_lookup_and_reject_from_the_tube_page(client, lab, session):
    order = place_order(session, lab["org"], ["CREA"])
    sample = order.samples[0]
    found = client.get("/technician/samples", query_string={"barcode": sample.barcode})
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/technician/samples/{sample.barcode}")
    page = text_of(client.get(f"/technician/samples/{sample.barcode}"))
    assert "Waiting for collection" in page and order.accession in page and "Reject this tube" in page
    missing = client.get("/technician/samples", query_string={"barcode": "000"}, follow_redirects=True)
    assert "No tube with barcode 000." in text_of(missing)
    response = client.post_form(f"/technician/samples/{sample.barcode}/reject", {"reason": "clotted"})
    assert response.status_code == 303
    page = text_of(client.get(response.headers["Location"]))
    assert "Rejected" in page and "Clotted" in page and "Reject this tube" not in page
    fragment = client.post_form(f"/technician/samples/{sample.barcode}/reject", {"reason": "clotted"}, headers=HTMX)
    assert fragment.status_code == 422 and 'id="tube"' in text_of(fragment)  # already rejected


# --- result entry -----------------------------------------------------------------------------------


@pytest.fixture
def lipids(lab, session):
    """An adult's lipid profile and fasting glucose: the serum tube received, the fluoride tube not."""
    order = place_order(session, lab["org"], ["LIPID", "GLUF"], sex="male", dob="1975-01-01")
    receive(session, lab["org"], tube(order, "Plain"))
    return order


def test_the_grid_shows_one_row_per_test_with_the_right_input(client, lab, session, lipids):
    page = text_of(client.get(f"/technician/orders/{lipids.accession}/results"))
    chol = order_test_id(session, lipids, "CHOL")
    row = page[page.index(f'id="ot-{chol}"'):]
    row = row[:row.index("</tr>")]
    assert 'inputmode="decimal"' in row and 'name="value"' in row and f'form="f-{chol}"' in row
    assert "mg/dL" in row and "≤ 199" in row and 'name="comment"' in row
    assert 'hx-target="closest tr"' in row and 'hx-swap="outerHTML"' in row
    ldl = order_test_id(session, lipids, "LDL")
    ldl_row = page[page.index(f'id="ot-{ldl}"'):]
    ldl_row = ldl_row[:ldl_row.index("</tr>")]
    assert "<output" in ldl_row and 'name="value"' not in ldl_row and "calculated" in ldl_row
    gluf = order_test_id(session, lipids, "GLUF")
    gluf_row = page[page.index(f'id="ot-{gluf}"'):]
    gluf_row = gluf_row[:gluf_row.index("</tr>")]
    assert "Tube not received" in gluf_row and 'name="value"' not in gluf_row


def test_entering_values_stores_results_with_flags_and_calculates_ldl(client, lab, session, lipids):
    chol = order_test_id(session, lipids, "CHOL")
    response = save_result(client, lipids, chol, "250", "lipaemic")
    assert response.status_code == 200
    row = text_of(response)
    assert row.lstrip().startswith(f'<tr id="ot-{chol}"') and 'class="flag"' in row and ">H<" in row
    result = current(session, lipids, "CHOL")
    assert (result.value_text, result.flag, result.critical, result.unit, result.comment, result.source,
            result.entered_by_id, result.status) == ("250", "H", False, "mg/dL", "lipaemic", "manual",
                                                     lab["tech"].id, "entered")
    assert result.interval["high"].startswith("199")
    assert save_result(client, lipids, order_test_id(session, lipids, "HDL"), "40").status_code == 200
    assert current(session, lipids, "LDL") is None  # TG still missing
    answer = text_of(save_result(client, lipids, order_test_id(session, lipids, "TG"), "150"))
    ldl = current(session, lipids, "LDL")
    assert (ldl.value_text, ldl.source, ldl.flag) == ("180", "calculated", "H")
    ldl_id = order_test_id(session, lipids, "LDL")
    oob = answer[answer.index(f'<tr id="ot-{ldl_id}"'):]
    assert oob.index('hx-swap-oob="true"') < oob.index(">") and "180" in oob[:oob.index("</tr>")]
    assert current(session, lipids, "VLDL").value_text == "30"
    grid = text_of(client.get(f"/technician/orders/{lipids.accession}/results"))
    assert 'value="250"' in grid and 'value="lipaemic"' in grid


@pytest.mark.parametrize("typed,message", [
    ("abc", "is a number"), ("250.5", "reported with 0 decimals"), ("", "Enter a value."),
])
def test_a_bad_value_is_422_in_its_row_and_nothing_is_saved(client, lab, session, lipids, typed, message):
    chol = order_test_id(session, lipids, "CHOL")
    response = save_result(client, lipids, chol, typed)
    assert response.status_code == 422
    row = text_of(response)
    assert row.lstrip().startswith(f'<tr id="ot-{chol}"') and message in row and 'aria-invalid="true"' in row
    assert f'value="{typed}"' in row  # what was typed stays in the box
    assert count(session, Result) == 0
    assert audit_events(session, "result.created") == []


def test_a_tube_not_received_or_rejected_takes_no_result(client, lab, session, lipids):
    gluf = order_test_id(session, lipids, "GLUF")
    response = save_result(client, lipids, gluf, "90")
    assert response.status_code == 422 and "not received yet" in text_of(response)
    plain = tube(lipids, "Plain")
    security.use_tenant(session, lab["org"].id)
    with as_test_actor(lab["org"]):
        samples.reject(session.get(Sample, plain.id), "haemolysed", user_id=None)
    session.commit()
    page = text_of(client.get(f"/technician/orders/{lipids.accession}/results"))
    assert page.count("Tube rejected: Haemolysed") == 3  # CHOL, TG, HDL; the four calculated ones show none
    refused = save_result(client, lipids, order_test_id(session, lipids, "CHOL"), "190")
    assert refused.status_code == 422 and "rejected" in text_of(refused)
    assert count(session, Result) == 0


def test_a_plain_post_saves_and_redirects_to_the_grid(client, lab, session, lipids):
    chol = order_test_id(session, lipids, "CHOL")
    response = client.post_form(f"/technician/orders/{lipids.accession}/results/{chol}", {"value": "180"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/results#ot-{chol}")
    assert current(session, lipids, "CHOL").flag is None


def test_choice_tests_get_a_select_of_their_answers(client, lab, session):
    order = place_order(session, lab["org"], ["BLGRP"])
    receive(session, lab["org"], order.samples[0])
    ot = order_test_id(session, order, "BLGRP")
    page = text_of(client.get(f"/technician/orders/{order.accession}/results"))
    assert f'<select id="v-{ot}" name="value" form="f-{ot}"' in page and "<option>O Positive</option>" in page
    assert save_result(client, order, ot, "Z Positive").status_code == 422
    saved = save_result(client, order, ot, "o positive")
    assert saved.status_code == 200 and "<option selected>O Positive</option>" in text_of(saved)
    assert current(session, order, "BLGRP").value_text == "O Positive"


def test_critical_results_are_flagged_and_first_on_the_worklist(client, lab, session):
    routine = place_order(session, lab["org"], ["GLUF"], name="Routine Patient")
    critical = place_order(session, lab["org"], ["GLUF"], name="Critical Patient")
    for order in (routine, critical):
        receive(session, lab["org"], order.samples[0])
    response = save_result(client, critical, order_test_id(session, critical, "GLUF"), "450")
    assert 'class="flag critical"' in text_of(response) and "critical" in text_of(response)
    result = current(session, critical, "GLUF")
    assert (result.flag, result.critical) == ("HH", True)
    rows = text_of(client.get("/technician/worklist", query_string={"status": "all"}, headers=HTMX))
    assert "<html" not in rows and rows.index("Critical Patient") < rows.index("Routine Patient")
    assert re.search(r'<tr class="critical">\s*<td>(?:(?!</tr>).)*Critical Patient', rows, re.S)
    counts = text_of(client.get("/technician/"))
    assert re.search(r'<span class="num">1</span> critical results', counts)


def test_worklist_filters_and_stat_comes_first(client, lab, session):
    routine = place_order(session, lab["org"], ["CREA"], name="Routine Person")
    stat = place_order(session, lab["org"], ["CREA"], priority="stat", name="Stat Person")
    waiting = place_order(session, lab["org"], ["TSH"], name="Not Received")
    for order in (routine, stat):
        receive(session, lab["org"], order.samples[0])
    page = text_of(client.get("/technician/worklist"))
    assert 'hx-get="/technician/worklist"' in page and 'hx-trigger="change, submit"' in page
    assert page.index("Stat Person") < page.index("Routine Person") and "Not Received" not in page
    assert '<span class="badge stat">STAT</span>' in page
    assert f'/technician/orders/{stat.accession}/results#ot-' in page
    only_stat = text_of(client.get("/technician/worklist", query_string={"priority": "stat"}, headers=HTMX))
    assert "Stat Person" in only_stat and "Routine Person" not in only_stat
    assert waiting.accession not in only_stat
    entered = text_of(client.get("/technician/worklist", query_string={"status": "entered"}, headers=HTMX))
    assert "Nothing on the worklist" in entered
    bad_date = client.get("/technician/worklist", query_string={"day": "31-31-2024"})
    assert bad_date.status_code == 200 and "Stat Person" in text_of(bad_date)


# --- reception: collections and recollection ---------------------------------------------------------


def test_phlebotomy_list_marks_tubes_collected(client, auth, factory, lab, session):
    order = place_order(session, lab["org"], ["GLUF", "CREA"], name="Draw Me")
    login_as(auth, factory, lab["org"], "reception")
    page = text_of(client.get("/reception/collections"))
    assert "Draw Me" in page and all(s.barcode in page for s in order.samples)
    barcode = order.samples[0].barcode
    response = client.post_form(f"/reception/samples/{barcode}/collect", headers=HTMX)
    assert response.status_code == 200 and "Collected" in text_of(response) and "<tr" in text_of(response)
    session.expire_all()
    assert session.get(Sample, order.samples[0].id).status == "collected"
    again = client.post_form(f"/reception/samples/{barcode}/collect", headers=HTMX)
    assert again.status_code == 422 and "Only a tube waiting for collection" in text_of(again)
    assert barcode not in text_of(client.get("/reception/collections"))
    assert audit_events(session, "sample.collect")[0].entity_id == barcode


def test_rejected_tube_shows_recollect_and_a_new_tube_gets_a_new_barcode(client, auth, factory, lab, session):
    order = place_order(session, lab["org"], ["GLUF", "CREA"])
    fluoride = tube(order, "Fluoride")
    scan(client, fluoride.barcode)
    client.post_form(f"/technician/samples/{fluoride.barcode}/reject",
                     {"reason": "insufficient", "note": "half filled"})
    login_as(auth, factory, lab["org"], "reception")
    page = text_of(client.get(f"/reception/orders/{order.accession}"))
    row = page[page.index(f'id="tube-{fluoride.barcode}"'):]
    row = row[:row.index("</tr>")]
    assert "Recollect" in row and "Insufficient quantity" in row and "half filled" in row
    assert f"/reception/samples/{fluoride.barcode}/recollect" in row
    response = client.post_form(f"/reception/samples/{fluoride.barcode}/recollect")
    assert response.status_code == 303
    session.expire_all()
    new = session.execute(select(Sample).where(Sample.recollect_of_id == fluoride.id)).scalar_one()
    assert new.barcode != fluoride.barcode and identifiers.has_valid_check_digit(new.barcode)
    assert new.status == "pending" and [t.test.code for t in new.tests] == ["GLUF"]
    page = text_of(client.get(response.headers["Location"]))
    assert f"New tube {new.barcode}" in page and f"new tube for {fluoride.barcode}" in page
    assert f"/reception/orders/{order.accession}/labels.pdf?barcode={new.barcode}" in page
    assert f"/reception/samples/{fluoride.barcode}/recollect" not in page  # done once
    again = client.post_form(f"/reception/samples/{fluoride.barcode}/recollect")
    assert again.status_code == 422 and "already been made" in text_of(again)
    assert len(audit_events(session, "sample.recollect")) == 1
    label = client.get(f"/reception/orders/{order.accession}/labels.pdf", query_string={"barcode": new.barcode})
    assert label.status_code == 200 and label.mimetype == "application/pdf"


def test_htmx_recollect_answers_with_the_order_page(client, auth, factory, lab, session):
    order = place_order(session, lab["org"], ["GLUF"])
    sample = order.samples[0]
    client.post_form(f"/technician/samples/{sample.barcode}/reject", {"reason": "leaked"})
    login_as(auth, factory, lab["org"], "reception")
    response = client.post_form(f"/reception/samples/{sample.barcode}/recollect", headers=HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == f"/reception/orders/{order.accession}"
    assert "Print its label" in text_of(response)


# --- unmatched results --------------------------------------------------------------------------------


def make_instrument(session, org, name: str = "Cobas c311") -> Instrument:
    security.use_tenant(session, org.id)
    with as_test_actor(org):
        instrument = instruments.create(instruments.InstrumentData(
            name=name, protocol="hl7", port=next(_ports), codes={"GLU": "GLUF"}))
    session.commit()
    return instrument


def make_unmatched(session, org, instrument: Instrument, *, code: str = "GLU", value: str = "102",
                   sample_id: str = "12345", reason: str = "unknown_sample",
                   raw: bytes | None = None) -> UnmatchedResult:
    """An analyzer message and one result from it that found no tube (as ingestion leaves them)."""
    security.use_tenant(session, org.id)
    raw = raw or (f"\x0bMSH|^~\\&|c311|LAB|||20240101||ORU^R01|{next(_people)}|P|2.5.1\r"
                  f"OBX|1|NM|{code}||{value}\r\x1c\r").encode()
    message = InstrumentMessage(instrument_id=instrument.id, protocol="hl7", raw=raw,
                                sha256=hashlib.sha256(raw).digest(), outcome="unmatched", control_id="MSG1",
                                message_type="ORU^R01", detail="1 unmatched")
    session.add(message)
    session.flush()
    mapping = session.execute(select(InstrumentCode).where(InstrumentCode.instrument_id == instrument.id,
                                                           InstrumentCode.code == code)).scalar_one_or_none()
    item = UnmatchedResult(message_id=message.id, instrument_id=instrument.id, sample_id=sample_id, code=code,
                           test_id=mapping.test_id if mapping else None, value=value, units="mg/dL", reason=reason)
    session.add(item)
    session.commit()
    return item


def test_unmatched_queue_assigns_a_result_to_a_received_tube(client, lab, session):
    instrument = make_instrument(session, lab["org"])
    item = make_unmatched(session, lab["org"], instrument, value="<b>102</b>")
    page = text_of(client.get("/technician/unmatched"))
    assert "Cobas c311" in page and "No tube with this id" in page and "&lt;b&gt;102&lt;/b&gt;" in page
    assert "<b>102</b>" not in page
    url = f"/technician/unmatched/{item.id}/assign"
    unknown = client.post_form(url, {"barcode": "12345"}, headers=HTMX)
    assert unknown.status_code == 422 and "No tube with this barcode." in text_of(unknown)
    order = place_order(session, lab["org"], ["GLUF"])
    sample = order.samples[0]
    not_received = client.post_form(url, {"barcode": sample.barcode}, headers=HTMX)
    assert not_received.status_code == 422 and "Receive the tube first" in text_of(not_received)
    receive(session, lab["org"], sample)
    session.expire_all()
    item_row = session.get(UnmatchedResult, item.id)
    item_row.value = "102"
    session.commit()
    done = client.post_form(url, {"barcode": sample.barcode}, headers=HTMX)
    assert done.status_code == 200 and f"put on tube {sample.barcode}" in text_of(done)
    result = current(session, order, "GLUF")
    assert (result.value_text, result.source, result.instrument_id) == ("102", "instrument", instrument.id)
    session.expire_all()
    assert session.get(UnmatchedResult, item.id).status == "assigned"
    assert audit_events(session, "unmatched_result.assigned")[0].after["barcode"] == sample.barcode
    assert "Nothing waiting" in text_of(client.get("/technician/unmatched"))


def test_an_unmapped_code_asks_for_the_test(client, lab, session):
    instrument = make_instrument(session, lab["org"])
    item = make_unmatched(session, lab["org"], instrument, code="CRE", value="0.9", reason="unknown_code")
    order = place_order(session, lab["org"], ["CREA"])
    receive(session, lab["org"], order.samples[0])
    page = text_of(client.get("/technician/unmatched"))
    assert f'<select id="ut-{item.id}" name="test_id"' in page and "Instrument code not mapped" in page
    url = f"/technician/unmatched/{item.id}/assign"
    missing = client.post_form(url, {"barcode": order.samples[0].barcode}, headers=HTMX)
    assert missing.status_code == 422 and "Choose the test this value is for." in text_of(missing)
    crea = session.execute(select(LabTest).where(LabTest.code == "CREA")).scalar_one()
    done = client.post_form(url, {"barcode": order.samples[0].barcode, "test_id": str(crea.id)}, headers=HTMX)
    assert done.status_code == 200
    assert current(session, order, "CREA").value_text == "0.90"


def test_discarding_needs_a_reason_and_is_audited(client, lab, session):
    instrument = make_instrument(session, lab["org"])
    item = make_unmatched(session, lab["org"], instrument)
    url = f"/technician/unmatched/{item.id}/discard"
    refused = client.post_form(url, {"why": "  "}, headers=HTMX)
    assert refused.status_code == 422 and "Say why this result is discarded." in text_of(refused)
    assert count(session, UnmatchedResult, UnmatchedResult.status == "open") == 1
    plain = client.post_form(url, {"why": "Calibrator run by mistake"})
    assert plain.status_code == 303
    session.expire_all()
    assert session.get(UnmatchedResult, item.id).status == "discarded"
    assert audit_events(session, "unmatched_result.discarded")[0].after["why"] == "Calibrator run by mistake"
    again = client.post_form(url, {"why": "twice"}, headers=HTMX)
    assert again.status_code == 422 and "already been dealt with" in text_of(again)


# --- instruments (technician) ------------------------------------------------------------------------------


def test_instrument_status_refreshes_itself_and_messages_show_raw_bytes(client, lab, session):
    instrument = make_instrument(session, lab["org"])
    item = make_unmatched(session, lab["org"], instrument, raw=b"\x0bMSH|^~\\&|<script>x</script>\rPID|1\r\x1c\r")
    page = text_of(client.get("/technician/instruments"))
    assert "Cobas c311" in page and 'hx-trigger="every 10s"' in page and "HL7" in page
    fragment = text_of(client.get("/technician/instruments", headers=HTMX))
    assert fragment.lstrip().startswith('<section id="link-status"') and "<html" not in fragment
    assert re.search(r'<td class="num">1</td>', fragment)  # one message today, one open unmatched
    messages = text_of(client.get(f"/technician/instruments/{instrument.id}/messages"))
    assert "ORU^R01" in messages and "MSG1" in messages and "unmatched" in messages
    raw_url = f"/technician/instruments/{instrument.id}/messages/{item.message_id}/raw"
    assert raw_url in messages
    raw = text_of(client.get(raw_url, headers=HTMX))
    assert raw.startswith('<pre class="raw"')
    assert "&lt;VT&gt;MSH|^~\\&amp;|&lt;script&gt;x&lt;/script&gt;&lt;CR&gt;\nPID|1&lt;CR&gt;\n&lt;FS&gt;" in raw
    assert "<script>" not in raw
    assert "&lt;VT&gt;" in text_of(client.get(raw_url))  # the page, without htmx


def test_orders_pushed_to_an_analyzer_are_listed_and_a_failed_one_is_sent_again(client, auth, factory, lab, session):
    security.use_tenant(session, lab["org"].id)
    with as_test_actor(lab["org"]):
        instrument = instruments.create(instruments.InstrumentData(
            name="BS-240 push", protocol="hl7", port=next(_ports), codes={"GLU": "GLUF"}, send_orders=True))
    session.commit()
    order = place_order(session, lab["org"], ["GLUF"])
    receive(session, lab["org"], tube(order, "Fluoride"))  # receipt queues the ORM^O01
    barcode = tube(order, "Fluoride").barcode
    queued = session.execute(select(InstrumentOrder).where(InstrumentOrder.instrument_id == instrument.id)).scalar_one()
    assert (queued.status, queued.test_codes) == ("queued", "GLU")

    status = text_of(client.get("/technician/instruments", headers=HTMX))
    assert f'href="/technician/instruments/{instrument.id}/orders"' in status and ">1 · 0<" in status
    page = text_of(client.get(f"/technician/instruments/{instrument.id}/orders"))
    assert barcode in page and "queued" in page and "Send again" not in page  # only a failed order is resent
    unknown = client.get(f"/technician/instruments/{instrument.id}/orders?status=<script>")
    assert unknown.status_code == 200 and barcode in text_of(unknown) and "<script>" not in text_of(unknown)

    queued.status, queued.attempts, queued.ack_code, queued.error = "failed", 1, "AE", "Unknown test <GLU>"
    session.commit()
    page = text_of(client.get(f"/technician/instruments/{instrument.id}/orders?status=failed"))
    assert "Unknown test &lt;GLU&gt;" in page and "<GLU>" not in page and "Send again" in page
    assert ">0 · 1<" in text_of(client.get("/technician/instruments", headers=HTMX))

    retry_url = f"/technician/instruments/{instrument.id}/orders/{queued.id}/retry"
    assert client.post(retry_url).status_code == 400  # no CSRF token
    done = client.post_form(retry_url, {})
    assert done.status_code == 303
    session.expire_all()
    again = session.get(InstrumentOrder, queued.id)
    assert (again.status, again.attempts, again.ack_code, again.error) == ("queued", 0, "", "")
    trail = session.execute(select(AuditEvent).where(AuditEvent.action == "instrument_order.retried")).scalar_one()
    assert trail.before["status"] == "failed" and trail.actor_user_id == lab["tech"].id
    assert client.post_form(retry_url, {}).status_code == 303  # a second click: refused with a message
    assert "Only a failed order can be sent again." in text_of(client.get(f"/technician/instruments/{instrument.id}/orders"))

    # Another lab's ids answer 404, and reception cannot reach the page at all.
    other = factory.org()
    factory.standard_catalogue(other)
    other_instrument = make_instrument(session, other, name="Elsewhere")
    assert client.get(f"/technician/instruments/{other_instrument.id}/orders").status_code == 404
    assert client.post_form(f"/technician/instruments/{other_instrument.id}/orders/{queued.id}/retry", {}).status_code == 404
    login_as(auth, factory, lab["org"], "reception")
    assert client.get(f"/technician/instruments/{instrument.id}/orders").status_code == 403


def test_dashboard_counts_what_waits(client, lab, session):
    place_order(session, lab["org"], ["GLUF", "CREA"])
    instrument = make_instrument(session, lab["org"])
    make_unmatched(session, lab["org"], instrument)
    page = text_of(client.get("/technician/"))
    assert re.search(r'<span class="num">2</span> tubes awaiting receipt', page)
    assert re.search(r'<span class="num">0</span> tests waiting for a result', page)
    assert re.search(r'<span class="num">1</span> unmatched analyzer results', page)
    for link in ("/technician/receipt", "/technician/worklist", "/technician/unmatched", "/technician/instruments"):
        assert f'href="{link}' in page


# --- admin: instrument registry ---------------------------------------------------------------------------


@pytest.fixture
def admin(client, auth, factory, lab):
    return login_as(auth, factory, lab["org"], "admin")


def instrument_form(**changes) -> dict:
    data = {"name": "Sysmex XN-550", "make": "Sysmex", "model": "XN-550", "protocol": "hl7",
            "port": str(next(_ports)), "sample_id_field": "OBR-3", "test_code_field": "OBX-3.1",
            "profile": '{"encoding": "latin-1"}', "active": "y",
            "map_code": ["HGB", "WBC", ""], "map_test": ["HB", "wbc", ""], "map_factor": ["0.1", "", ""]}
    data.update(changes)
    return data


def test_admin_creates_and_edits_an_instrument_with_its_code_map(client, admin, session):
    page = text_of(client.get("/admin/instruments/new"))
    for hint in ("OBR-2", "OBR-3", "SPM-2", "O-3", "O-3.3", "O-4.3", "OBX-3.1", "R-3.4", "R-3.5"):
        assert hint in page
    response = client.post_form("/admin/instruments/new", instrument_form())
    assert response.status_code == 303 and response.headers["Location"] == "/admin/instruments"
    session.expire_all()
    instrument = session.execute(select(Instrument).where(Instrument.name == "Sysmex XN-550")).scalar_one()
    assert (instrument.sample_id_field, instrument.profile) == ("OBR-3", {"encoding": "latin-1"})
    assert {c.code: (c.test.code, str(c.factor.normalize())) for c in instrument.codes} == {
        "HGB": ("HB", "0.1"), "WBC": ("WBC", "1")}
    assert audit_events(session, "instrument.created")
    edit = text_of(client.get(f"/admin/instruments/{instrument.id}"))
    assert 'value="HGB"' in edit and 'value="0.1"' in edit and "latin-1" in edit
    changed = client.post_form(f"/admin/instruments/{instrument.id}", instrument_form(
        port=str(instrument.port), map_code=["HGB"], map_test=["HB"], map_factor=["0.1"], profile=""))
    assert changed.status_code == 303
    session.expire_all()
    instrument = session.get(Instrument, instrument.id)
    assert [c.code for c in instrument.codes] == ["HGB"] and instrument.profile == {}
    assert audit_events(session, "instrument.codes")
    assert "Sysmex XN-550" in text_of(client.get("/admin/instruments"))


@pytest.mark.parametrize("changes,field,message", [
    ({"sample_id_field": "PID-99x"}, "sample_id_field", None),
    ({"sample_id_field": "O-3"}, "sample_id_field", "is not a"),
    ({"port": "80"}, "port", "Port is a number from 1024 to 65535."),
    ({"port": "http"}, "port", "Port is a number from 1024 to 65535."),
    ({"name": ""}, "name", "Give the instrument a name"),
    ({"profile": "{encoding: latin-1"}, "profile", "Not valid JSON"),
    ({"profile": "[1, 2]"}, "profile", "JSON object"),
    ({"profile": '{"colour": "blue"}'}, "profile", "Unknown profile settings: colour."),
    ({"map_code": ["HGB"], "map_test": ["NOPE"], "map_factor": [""]}, None, "no test NOPE in the catalogue"),
    ({"map_code": ["HGB"], "map_test": ["HB"], "map_factor": ["-2"]}, None, "factor must be a positive number"),
    ({"map_code": ["HGB", "HGB"], "map_test": ["HB", "HB"], "map_factor": ["", ""]}, None, "listed twice"),
])
def test_bad_instrument_settings_are_422_on_their_field(client, admin, session, changes, field, message):
    response = client.post_form("/admin/instruments/new", instrument_form(**changes), headers=HTMX)
    assert response.status_code == 422
    html = text_of(response)
    assert "<html" not in html and "Nothing was saved." in html
    if field:
        tag = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{field}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in tag and f"{field}-err" in tag
        error = re.search(rf'<p id="{field}-err" class="error">([^<]*)</p>', html).group(1)
        assert message is None or message in error.replace("&#39;", "'")
    else:
        assert message in html and 'id="codes-err"' in html
    assert 'value="Sysmex XN-550"' in html or field == "name"  # what was typed stays
    assert count(session, Instrument) == 0


def test_code_map_rows_are_added_and_removed_without_saving(client, admin):
    added = text_of(client.get("/admin/instruments/codes", query_string={
        "map_code": ["HGB"], "map_test": ["HB"], "map_factor": ["0.1"], "add": "1"}, headers=HTMX))
    assert added.lstrip().startswith('<fieldset id="code-map"') and added.count('name="map_code"') == 2
    removed = text_of(client.get("/admin/instruments/codes", query_string={
        "map_code": ["HGB", "WBC"], "map_test": ["HB", "WBC"], "map_factor": ["", ""], "remove": "0"}, headers=HTMX))
    assert 'value="HGB"' not in removed and 'value="WBC"' in removed and removed.count('name="map_code"') == 1


# --- tenancy and roles ---------------------------------------------------------------------------------------


def test_another_labs_rows_answer_404(client, lab, factory, session):
    other = factory.org()
    security.use_tenant(session, other.id)
    with as_test_actor(other):
        catalogue_seed.load_standard_catalogue(other.id)
    session.commit()
    theirs = place_order(session, other, ["GLUF"])
    receive(session, other, theirs.samples[0])
    their_instrument = make_instrument(session, other, name="Their analyzer")
    their_item = make_unmatched(session, other, their_instrument)
    ot = order_test_id(session, theirs, "GLUF")
    security.use_tenant(session, lab["org"].id)
    barcode = theirs.samples[0].barcode
    assert client.get(f"/technician/orders/{theirs.accession}/results").status_code == 404
    assert save_result(client, theirs, ot, "90").status_code == 404
    assert client.get(f"/technician/samples/{barcode}").status_code == 404
    assert client.post_form(f"/technician/samples/{barcode}/reject", {"reason": "clotted"}).status_code == 404
    assert scan(client, barcode).status_code == 422  # no such tube here
    assert client.get(f"/technician/instruments/{their_instrument.id}/messages").status_code == 404
    assert client.get(f"/technician/instruments/{their_instrument.id}/messages/{their_item.message_id}/raw"
                      ).status_code == 404
    assert client.post_form(f"/technician/unmatched/{their_item.id}/assign", {"barcode": barcode}).status_code == 404
    assert client.post_form(f"/technician/unmatched/{their_item.id}/discard", {"why": "x"}).status_code == 404
    assert "Their analyzer" not in text_of(client.get("/technician/instruments"))
    assert "Nothing waiting" in text_of(client.get("/technician/unmatched"))
    session.expire_all()
    security.use_tenant(session, other.id)
    assert session.get(Sample, theirs.samples[0].id).status == "received"
    assert count(session, Result) == 0


def test_another_labs_instrument_and_tubes_answer_404_to_admin_and_reception(client, auth, factory, lab, session):
    other = factory.org()
    security.use_tenant(session, other.id)
    with as_test_actor(other):
        catalogue_seed.load_standard_catalogue(other.id)
    session.commit()
    their_instrument = make_instrument(session, other, name="Their analyzer")
    theirs = place_order(session, other, ["GLUF"])
    login_as(auth, factory, lab["org"], "admin")
    assert client.get(f"/admin/instruments/{their_instrument.id}").status_code == 404
    assert client.post_form(f"/admin/instruments/{their_instrument.id}", instrument_form()).status_code == 404
    assert "Their analyzer" not in text_of(client.get("/admin/instruments"))
    login_as(auth, factory, lab["org"], "reception")
    barcode = theirs.samples[0].barcode
    assert client.post_form(f"/reception/samples/{barcode}/collect").status_code == 404
    assert client.post_form(f"/reception/samples/{barcode}/recollect").status_code == 404
    assert barcode not in text_of(client.get("/reception/collections"))


TECHNICIAN_PAGES = ["/technician/", "/technician/receipt", "/technician/worklist", "/technician/unmatched",
                    "/technician/instruments", "/technician/samples/123"]


@pytest.mark.parametrize("role", ["reception", "pathologist", "billing", "admin"])
def test_only_technicians_open_the_lab_floor(client, auth, factory, role):
    org = factory.org()
    auth.login(factory.user(org, role).username, PASSWORD)
    for path in TECHNICIAN_PAGES:
        assert client.get(path).status_code == 403, path
    assert client.post_form("/technician/receipt/scan", {"barcode": "1"}).status_code == 403


@pytest.mark.parametrize("role", ["technician", "pathologist", "billing", "admin"])
def test_only_reception_opens_collections(client, auth, factory, role):
    auth.login(factory.user(factory.org(), role).username, PASSWORD)
    assert client.get("/reception/collections").status_code == 403
    assert client.post_form("/reception/samples/1/collect").status_code == 403


@pytest.mark.parametrize("role", ["technician", "reception"])
def test_only_admins_edit_instruments(client, auth, factory, role):
    auth.login(factory.user(factory.org(), role).username, PASSWORD)
    assert client.get("/admin/instruments").status_code == 403
    assert client.post_form("/admin/instruments/new", instrument_form()).status_code == 403


def test_menus_link_the_new_pages(client, lab, auth, factory):
    nav = text_of(client.get("/technician/"))
    for label in ("Lab floor", "Receipt", "Worklist", "Unmatched", "Instruments"):
        assert f">{label}</a>" in nav
    login_as(auth, factory, lab["org"], "reception")
    assert ">Collections</a>" in text_of(client.get("/reception/"))
    login_as(auth, factory, lab["org"], "admin")
    assert 'href="/admin/instruments"' in text_of(client.get("/admin/"))
