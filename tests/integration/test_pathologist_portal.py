"""The pathologist's side through its pages: the queue (order, pages, polling), the review of
one order (previous value, flags, interval, delta), verifying with the versions the page
showed (twice, or after a change: refused, nothing applied), sending back (the technician's
grid says why), critical-value calls before release, canned comments, the criticals register;
and around it the admin's autoverify / delta fields, canned comments admin and the tube
remark. Other roles get 403, another lab's orders 404."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models import CannedComment, CriticalCall, LabTest, Order, Result, Sample
from app.services import canned_comments, results
from tests.helpers import audit_events
from tests.factories import PASSWORD

HTMX = {"HX-Request": "true"}


def text_of(response) -> str:
    return response.get_data(as_text=True)




def count(session, model, *where) -> int:
    session.expire_all()
    return session.execute(select(func.count(model.id)).where(*where)).scalar_one()


def as_test_actor(org):  # type: ignore[no-untyped-def]
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id))


@pytest.fixture
def lab(client, auth, factory, session):
    """The standard catalogue, a technician, and a pathologist who is logged in."""
    org = factory.org()
    factory.standard_catalogue(org)
    tech = factory.user(org, "technician")
    doc = factory.user(org, "pathologist")
    auth.login(doc.username, PASSWORD)
    return {"org": org, "tech": tech, "doc": doc}


def order_of(factory, lab, codes, **kwargs) -> Order:  # type: ignore[no-untyped-def]
    return factory.order(lab["org"], codes, **kwargs)


def enter(session, lab, order: Order, code: str, raw: str, comment: str = "") -> Result:
    """A technician's value, through the results service (as the grid saves it)."""
    security.use_tenant(session, lab["org"].id)
    session.expire_all()
    order = session.get(Order, order.id)
    ot = next(t for t in order.tests if t.test.code == code)
    with as_test_actor(lab["org"]):
        result = results.save(ot, results.Entry(raw=raw, comment=comment), user_id=lab["tech"].id)
    session.commit()
    return result


def current(session, order: Order, code: str) -> Result | None:
    session.expire_all()
    order = session.get(Order, order.id)
    ot = next(t for t in order.tests if t.test.code == code)
    return session.execute(select(Result).where(Result.order_test_id == ot.id, Result.is_current)).scalar_one_or_none()


def shown_versions(html: str) -> dict[str, str]:
    """{result id: version} as the review page's hidden inputs carry them."""
    return dict(re.findall(r'name="version-(\d+)" value="(\d+)"', html))


def verify_form(versions: dict[str, str]) -> dict:
    return {"result": list(versions), **{f"version-{rid}": v for rid, v in versions.items()}}


def review_url(order: Order) -> str:
    return f"/pathologist/orders/{order.accession}"


# --- the queue -----------------------------------------------------------------------------------


def test_queue_is_the_home_page_critical_first_then_stat_then_oldest(client, lab, factory, session):
    old = order_of(factory, lab, ["GLUF"])
    stat = order_of(factory, lab, ["GLUF"], priority="stat")
    critical = order_of(factory, lab, ["K", "NA"])
    untouched = order_of(factory, lab, ["GLUF"])
    enter(session, lab, old, "GLUF", "95")
    enter(session, lab, stat, "GLUF", "96")
    enter(session, lab, critical, "K", "7.1")
    enter(session, lab, critical, "NA", "140")
    html = text_of(client.get("/pathologist/"))
    positions = [html.index(f">{o.accession}<") for o in (critical, stat, old)]
    assert positions == sorted(positions)
    assert f">{untouched.accession}<" not in html
    row = html[html.index(f'data-accession="{critical.accession}"'):]
    row = row[:row.index("</tr>")]
    assert critical.patient.mrn in row and '<strong class="flag critical">1' in row  # criticals, prominent
    assert re.search(r'<td class="num">2</td>', row)  # two results waiting
    assert 'class="badge stat">STAT' in html
    assert f'href="/pathologist/orders/{critical.accession}"' in html
    assert 'hx-trigger="every 30s"' in html and ">Queue</a>" in html and ">Criticals</a>" in html
    poll = client.get("/pathologist/", headers=HTMX)
    assert poll.status_code == 200
    assert text_of(poll).lstrip().startswith('<section id="queue"') and "<html" not in text_of(poll)


def test_queue_pages(client, lab, factory, session, monkeypatch):
    from app.portals.pathologist import queue

    monkeypatch.setattr(queue, "PAGE_SIZE", 2)
    made = [order_of(factory, lab, ["GLUF"]) for _ in range(3)]
    for order in made:
        enter(session, lab, order, "GLUF", "90")
    first, second = text_of(client.get("/pathologist/")), text_of(client.get("/pathologist/?page=2"))
    assert all(f">{o.accession}<" in first for o in made[:2]) and f">{made[2].accession}<" not in first
    assert 'href="/pathologist/?page=2">Next page' in first
    assert f">{made[2].accession}<" in second and 'href="/pathologist/?page=1">Previous page' in second
    assert client.get("/pathologist/?page=99999999999999999999999").status_code == 200
    assert client.get("/pathologist/?page=abc").status_code == 200


# --- reviewing an order ---------------------------------------------------------------------------


def test_review_shows_the_previous_value_flags_interval_and_delta(client, lab, factory, session):
    patient = factory.patient(lab["org"], name="Radha Krishnan", sex="female", dob="1975-02-01")
    first = order_of(factory, lab, ["HB"], patient=patient)
    enter(session, lab, first, "HB", "14.0")
    second = order_of(factory, lab, ["HB", "GLUF"], patient=patient)
    enter(session, lab, second, "HB", "11.0", comment="<b>lipaemic</b>")
    html = text_of(client.get(review_url(second)))
    assert "Radha Krishnan" in html and patient.mrn in html and "/F" in html
    row = html[html.index('id="r-'):]
    row = row[:row.index("</tbody>")]
    assert "11.0" in row and "g/dL" in row
    assert '<span class="flag" title="Low">L' in row
    assert "12 – 15" in row  # the interval the result was flagged against (its snapshot)
    assert "14.0" in row and first.created_at.strftime("%Y") in row  # the previous value and its date
    assert "Delta check: -3 (21.4 %) from 14; limit 2<" in row and "critical &lt; 7 or &gt; 20" in row
    assert "&lt;b&gt;lipaemic&lt;/b&gt;" in row and "<b>lipaemic</b>" not in row
    assert "Entered by hand" in row and "Awaiting verification" in row
    assert "Haematology" in html and "Biochemistry" in html  # grouped by department
    assert "Waiting for a result" in html  # the glucose has no value yet
    for sample in second.samples:
        assert sample.barcode in html


def test_verify_posts_the_shown_versions_and_twice_is_refused(client, lab, factory, session):
    order = order_of(factory, lab, ["GLUF", "CREA"])
    glu, crea = enter(session, lab, order, "GLUF", "95"), enter(session, lab, order, "CREA", "0.9")
    page = text_of(client.get(review_url(order)))
    versions = shown_versions(page)
    assert set(versions) == {str(glu.id), str(crea.id)}
    assert f'id="sel-{glu.id}" name="result" value="{glu.id}" form="verify-form" checked' in page
    answer = client.post_form(f"{review_url(order)}/verify", verify_form(versions), headers=HTMX)
    assert answer.status_code == 200
    html = text_of(answer)
    assert html.lstrip().startswith('<section id="review"') and "Verified 2 results." in html
    assert "Release 2 verified results" in html
    assert current(session, order, "GLUF").status == current(session, order, "CREA").status == "verified"
    assert current(session, order, "GLUF").verified_by_id == lab["doc"].id
    assert len(audit_events(session, "result.verified")) == 2

    again = client.post_form(f"{review_url(order)}/verify", verify_form(versions), headers=HTMX)
    assert again.status_code == 409
    assert "already verified by Test Pathologist" in text_of(again) and "Nothing was verified" in text_of(again)
    assert len(audit_events(session, "result.verified")) == 2  # nothing applied twice


def test_a_stale_version_is_refused_and_the_page_shows_the_new_value(client, lab, factory, session):
    order = order_of(factory, lab, ["GLUF", "CREA"])
    enter(session, lab, order, "GLUF", "95")
    enter(session, lab, order, "CREA", "0.9")
    versions = shown_versions(text_of(client.get(review_url(order))))
    enter(session, lab, order, "GLUF", "59")  # the technician corrects it after the page was opened
    answer = client.post_form(f"{review_url(order)}/verify", verify_form(versions), headers=HTMX)
    assert answer.status_code == 409
    html = text_of(answer)
    assert "changed after you opened the order" in html and ">59<" in html
    assert current(session, order, "GLUF").status == current(session, order, "CREA").status == "entered"
    assert audit_events(session, "result.verified") == []
    # A plain (no JavaScript) post gets the whole page with the message.
    plain = client.post_form(f"{review_url(order)}/verify", verify_form(versions))
    assert plain.status_code == 409 and "<html" in text_of(plain) and "changed after you opened" in text_of(plain)
    # Nothing ticked: 422 with the reason.
    none = client.post_form(f"{review_url(order)}/verify", {}, headers=HTMX)
    assert none.status_code == 422 and "Choose the results to verify." in text_of(none)
    # With the fresh versions it goes through; a plain post is redirected back to the order.
    fresh = shown_versions(text_of(client.get(review_url(order))))
    done = client.post_form(f"{review_url(order)}/verify", verify_form(fresh))
    assert done.status_code == 303 and done.headers["Location"].endswith(review_url(order))
    assert current(session, order, "GLUF").status == "verified"


def test_send_back_needs_a_reason_and_the_technician_grid_shows_it(client, auth, factory, lab, session):
    order = order_of(factory, lab, ["GLUF"])
    result = enter(session, lab, order, "GLUF", "950")
    url = f"{review_url(order)}/results/{result.id}/send-back"
    refused = client.post_form(url, {"reason": "   "}, headers=HTMX)
    assert refused.status_code == 422
    html = text_of(refused)
    assert html.lstrip().startswith('<tbody id="r-') and "Say why the test should be rerun." in html
    assert f'aria-describedby="reason-{result.id}-err"' in html and "<details open>" in html
    assert current(session, order, "GLUF").id == result.id  # still current, nothing changed
    reason = "Implausible <script>: check for a dextrose drip"
    answer = client.post_form(url, {"reason": reason}, headers=HTMX)
    assert answer.status_code == 200
    assert "sent back for a rerun" in text_of(answer) and "Sent back: Implausible &lt;script&gt;" in text_of(answer)
    assert current(session, order, "GLUF") is None
    [event] = audit_events(session, "result.sent_back")
    assert event.after["reason"] == reason

    auth.logout()
    auth.login(lab["tech"].username, PASSWORD)
    grid = text_of(client.get(f"/technician/orders/{order.accession}/results"))
    assert "Sent back: Implausible &lt;script&gt;: check for a dextrose drip" in grid and "<script>" not in grid
    ot_id = next(t.id for t in order.tests if t.test.code == "GLUF")
    saved = client.post_form(f"/technician/orders/{order.accession}/results/{ot_id}", {"value": "95"}, headers=HTMX)
    assert saved.status_code == 200 and "Sent back:" not in text_of(saved)  # a new value: the note goes
    assert current(session, order, "GLUF").attempt == 2


def test_a_critical_is_released_only_after_a_read_back_call(client, lab, factory, session):
    order = order_of(factory, lab, ["K", "NA"])
    k, na = enter(session, lab, order, "K", "7.1"), enter(session, lab, order, "NA", "140")
    page = text_of(client.get(review_url(order)))
    assert "NO CALL" in page and "Critical value without a recorded call: Potassium" in page
    assert client.post_form(f"{review_url(order)}/verify", verify_form(shown_versions(page)),
                            headers=HTMX).status_code == 200

    refused = client.post_form(f"{review_url(order)}/release", headers=HTMX)
    assert refused.status_code == 422
    assert "Not released. Record the critical-value call first: Potassium." in text_of(refused)
    assert current(session, order, "K").status == current(session, order, "NA").status == "verified"

    call_url = f"{review_url(order)}/results/{k.id}/calls"
    call = {"recipient_kind": "doctor", "recipient_name": "Dr. Kavita Menon", "phone": "98450 12345",
            "note": "ward 3"}
    no_read_back = client.post_form(call_url, call, headers=HTMX)
    assert no_read_back.status_code == 422
    html = text_of(no_read_back)
    assert "must be read back" in html and f'aria-describedby="rb-{k.id}-err"' in html
    assert 'value="Dr. Kavita Menon"' in html  # what was typed is kept
    no_name = client.post_form(call_url, {**call, "recipient_name": " ", "read_back": "y"}, headers=HTMX)
    assert no_name.status_code == 422 and "Give the name of the person" in text_of(no_name)
    not_critical = client.post_form(f"{review_url(order)}/results/{na.id}/calls", {**call, "read_back": "y"},
                                    headers=HTMX)
    assert not_critical.status_code == 422 and "Only a critical result needs a call." in text_of(not_critical)
    assert count(session, CriticalCall) == 0

    recorded = client.post_form(call_url, {**call, "read_back": "y"}, headers=HTMX)
    assert recorded.status_code == 200
    html = text_of(recorded)
    assert "Call recorded." in html and "Dr. Kavita Menon (doctor)" in html and "+91 98450 12345" in html
    assert len(audit_events(session, "critical_call.created")) == 1

    released = client.post_form(f"{review_url(order)}/release", headers=HTMX)
    assert released.status_code == 200
    html = text_of(released)
    assert "Released 2 results." in html and 'id="released-note"' in html and "Verify selected" not in html
    assert current(session, order, "K").status == current(session, order, "NA").status == "released"
    assert len(audit_events(session, "order.released")) == 1


def test_a_canned_comment_fills_the_box_and_the_comment_is_saved(client, lab, factory, session):
    order = order_of(factory, lab, ["GLUF"])
    result = enter(session, lab, order, "GLUF", "130")
    gluf = session.execute(select(LabTest).where(LabTest.code == "GLUF")).scalar_one()
    hb = session.execute(select(LabTest).where(LabTest.code == "HB")).scalar_one()
    with as_test_actor(lab["org"]):
        fasting = canned_comments.create({"code": "FASTING", "test_id": gluf.id, "active": True,
                                          "text": "Suggest repeat after 10-12 hours of fasting."})
        general = canned_comments.create({"code": "CORRELATE", "active": True, "text": "Correlate clinically."})
        canned_comments.create({"code": "ANAEMIA", "test_id": hb.id, "active": True, "text": "Anaemia."})
        canned_comments.create({"code": "OLD", "active": False, "text": "Not offered."})
    session.commit()
    page = text_of(client.get(review_url(order)))
    assert "FASTING: Suggest repeat" in page and "CORRELATE:" in page
    assert "ANAEMIA" not in page and "OLD:" not in page  # another test's, and an inactive one

    fill_url = f"{review_url(order)}/results/{result.id}/interpretation"
    filled = client.get(fill_url, query_string={"canned": fasting.id, "interpretation": ""}, headers=HTMX)
    assert filled.status_code == 200
    html = text_of(filled)
    assert html.lstrip().startswith(f'<div class="field" id="interp-field-{result.id}"')
    assert ">Suggest repeat after 10-12 hours of fasting.</textarea>" in html
    # Another canned comment replaces a canned text; typed text is kept and the canned one added.
    swapped = text_of(client.get(fill_url, query_string={"canned": general.id, "interpretation": fasting.text},
                                 headers=HTMX))
    assert ">Correlate clinically.</textarea>" in swapped
    added = text_of(client.get(fill_url, query_string={"canned": general.id, "interpretation": "Mild rise."},
                               headers=HTMX))
    assert ">Mild rise.\nCorrelate clinically.</textarea>" in added

    old_version = current(session, order, "GLUF").version
    saved = client.post_form(fill_url, {"interpretation": "Mild rise.\nCorrelate clinically."}, headers=HTMX)
    assert saved.status_code == 200
    html = text_of(saved)
    assert "Comment saved." in html
    result = current(session, order, "GLUF")
    assert result.interpretation == "Mild rise.\nCorrelate clinically." and result.version == old_version + 1
    assert f'name="version-{result.id}" value="{result.version}"' in html  # the row carries the new version
    [event] = [e for e in audit_events(session, "result.updated") if "interpretation" in (e.after or {})]
    assert event.after == {"interpretation": "Mild rise.\nCorrelate clinically."}
    # Without JavaScript the chosen canned comment goes into an empty box when the form is posted.
    client.post_form(fill_url, {"interpretation": "", "canned": str(fasting.id)})
    assert current(session, order, "GLUF").interpretation == fasting.text


def test_criticals_register_lists_each_critical_with_its_calls_or_no_call(client, lab, factory, session):
    called = order_of(factory, lab, ["K"])
    uncalled = order_of(factory, lab, ["K"])
    k1 = enter(session, lab, called, "K", "7.2")
    enter(session, lab, uncalled, "K", "2.1")
    client.post_form(f"{review_url(called)}/results/{k1.id}/calls",
                     {"recipient_kind": "ward", "recipient_name": "Sister Mary", "phone": "080 2345 6789",
                      "read_back": "y"}, headers=HTMX)
    html = text_of(client.get("/pathologist/criticals"))
    assert "2 critical results" in html and "1 without a call" in html
    assert called.patient.full_name in html and uncalled.patient.full_name in html
    assert "Sister Mary (ward)" in html and "Test Pathologist called" in html and "read back" in html
    assert html.count("NO CALL") == 1
    assert 'class="flag critical" title="Critical low">LL' in html and 'title="Critical high">HH' in html
    assert 'id="since" name="since" type="date" value="' in html and 'value=""' not in html  # the dates shown
    # The dates filter: a day before anything was entered shows nothing; a reversed range is refused.
    assert "No critical results in these dates." in text_of(
        client.get("/pathologist/criticals", query_string={"since": "2001-01-01", "until": "2001-01-02"}))
    reversed_range = text_of(client.get("/pathologist/criticals",
                                        query_string={"since": "2001-01-05", "until": "2001-01-01"}))
    assert "must not be before the start date" in reversed_range
    assert "Choose a date from" in text_of(client.get("/pathologist/criticals", query_string={"until": "9999-12-31"}))
    assert client.get("/pathologist/criticals", query_string={"since": "garbage"}).status_code == 200


# --- who may do what ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["technician", "reception", "admin", "billing"])
def test_only_pathologists_open_the_pathologist_pages(client, auth, factory, lab, session, role):
    order = order_of(factory, lab, ["GLUF"])
    result = enter(session, lab, order, "GLUF", "95")
    auth.logout()
    auth.login(factory.user(lab["org"], role).username, PASSWORD)
    for path in ("/pathologist/", "/pathologist/criticals", review_url(order)):
        assert client.get(path).status_code == 403, path
    for action in ("verify", "release", f"results/{result.id}/send-back", f"results/{result.id}/calls"):
        assert client.post_form(f"{review_url(order)}/{action}", {"reason": "x"}).status_code == 403, action
    assert current(session, order, "GLUF").status == "entered"


def test_another_labs_order_and_results_answer_404(client, factory, lab, session):
    other = factory.org()
    factory.standard_catalogue(other)
    theirs = factory.order(other, ["GLUF"])
    security.use_tenant(session, other.id)
    ot = theirs.tests[0]
    with as_test_actor(other):
        their_result = results.save(ot, results.Entry(raw="95"), user_id=None)
    session.commit()
    assert client.get(review_url(theirs)).status_code == 404
    assert client.post_form(f"{review_url(theirs)}/verify",
                            {"result": str(their_result.id), f"version-{their_result.id}": "1"}).status_code == 404
    assert client.post_form(f"{review_url(theirs)}/release").status_code == 404
    # Their result id under one of our orders: 404 too, and verify refuses it as not ours.
    mine = order_of(factory, lab, ["GLUF"])
    for action in ("send-back", "calls", "interpretation"):
        assert client.post_form(f"{review_url(mine)}/results/{their_result.id}/{action}",
                                {"reason": "x"}).status_code == 404, action
    refused = client.post_form(f"{review_url(mine)}/verify",
                               {"result": str(their_result.id), f"version-{their_result.id}": "1"}, headers=HTMX)
    assert refused.status_code == 409 and "not part of this order" in text_of(refused)
    security.use_tenant(session, other.id)
    session.expire_all()
    assert session.get(Result, their_result.id).status == "entered"
    assert their_result.patient_id and theirs.patient.full_name not in text_of(client.get("/pathologist/criticals"))


def test_every_new_post_needs_the_csrf_token(client, lab, factory, session):
    order = order_of(factory, lab, ["GLUF"])
    result = enter(session, lab, order, "GLUF", "95")
    for action in ("verify", "release", f"results/{result.id}/send-back", f"results/{result.id}/calls",
                   f"results/{result.id}/interpretation"):
        assert client.post(f"{review_url(order)}/{action}", data={"reason": "x"}).status_code == 400, action
    assert client.post(f"/technician/samples/{order.samples[0].barcode}/remark", data={"remark": "x"}).status_code == 400
    assert client.post("/admin/canned-comments/new", data={"code": "X"}).status_code == 400
    assert current(session, order, "GLUF").status == "entered"
    assert client.post_form(f"{review_url(order)}/results/{2**70}/send-back", {"reason": "x"}).status_code == 404


# --- admin: autoverify and delta limits, canned comments ------------------------------------------


def test_autoverify_and_delta_limits_in_the_test_form_are_saved_and_audited(client, auth, factory, lab, session):
    auth.logout()
    auth.login(factory.user(lab["org"], "admin").username, PASSWORD)
    gluf = session.execute(select(LabTest).where(LabTest.code == "GLUF")).scalar_one()
    form = text_of(client.get(f"/admin/catalogue/tests/{gluf.id}"))
    assert 'name="autoverify"' in form and 'name="delta_abs"' in form and 'name="delta_pct"' in form
    data = {"code": "GLUF", "name": gluf.name, "loinc": gluf.loinc, "department_id": str(gluf.department_id),
            "specimen": gluf.specimen, "container": gluf.container, "unit": gluf.unit, "result_type": "numeric",
            "decimals": str(gluf.decimals), "method": gluf.method, "tat_hours": str(gluf.tat_hours),
            "price": "80", "sac_code": gluf.sac_code, "gst_rate": "0", "orderable": "y", "active": "y"}
    bad = client.post_form(f"/admin/catalogue/tests/{gluf.id}", {**data, "delta_abs": "-5", "delta_pct": "abc"})
    assert bad.status_code == 422
    assert "must be above zero" in text_of(bad) and 'id="delta_pct-err"' in text_of(bad)
    saved = client.post_form(f"/admin/catalogue/tests/{gluf.id}", {**data, "autoverify": "y", "delta_abs": "40",
                                                                  "delta_pct": "25 %"})
    assert saved.status_code == 303
    session.expire_all()
    gluf = session.get(LabTest, gluf.id)
    assert gluf.autoverify is True and str(gluf.delta_abs) == "40.0000" and str(gluf.delta_pct) == "25.00"
    [event] = audit_events(session, "lab_test.updated")
    assert event.before == {"autoverify": False, "delta_abs": None, "delta_pct": None}
    assert event.after == {"autoverify": True, "delta_abs": "40.0000", "delta_pct": "25.00"}
    form = text_of(client.get(f"/admin/catalogue/tests/{gluf.id}"))
    assert re.search(r'<input [^>]*checked id="autoverify" name="autoverify" type="checkbox"', form)
    assert 'value="40"' in form and 'value="25"' in form
    # Saving again unchanged writes no audit row; a result in range is now verified by rule.
    client.post_form(f"/admin/catalogue/tests/{gluf.id}", {**data, "autoverify": "y", "delta_abs": "40",
                                                          "delta_pct": "25"})
    assert len(audit_events(session, "lab_test.updated")) == 1
    order = order_of(factory, lab, ["GLUF"])
    assert enter(session, lab, order, "GLUF", "90").autoverified


def test_canned_comments_admin_adds_edits_and_deactivates_with_audit(client, auth, factory, lab, session):
    auth.logout()
    auth.login(factory.user(lab["org"], "admin").username, PASSWORD)
    assert ">Canned comments</a>" in text_of(client.get("/admin/"))
    gluf = session.execute(select(LabTest).where(LabTest.code == "GLUF")).scalar_one()
    added = client.post_form("/admin/canned-comments/new", {"code": "fasting", "test_id": str(gluf.id),
                                                            "text": "Repeat after fasting.", "active": "y"})
    assert added.status_code == 303
    comment = session.execute(select(CannedComment)).scalar_one()
    assert (comment.code, comment.test_id, comment.active) == ("FASTING", gluf.id, True)
    [created] = audit_events(session, "canned_comment.created")
    assert created.after["text"] == "Repeat after fasting."
    listing = text_of(client.get("/admin/canned-comments"))
    assert "FASTING" in listing and "GLUF" in listing and "Repeat after fasting." in listing

    duplicate = client.post_form("/admin/canned-comments/new", {"code": "FASTING", "text": "x", "active": "y"},
                                 headers=HTMX)
    assert duplicate.status_code == 422 and "already exists" in text_of(duplicate)
    assert text_of(duplicate).lstrip().startswith("<form")
    empty = client.post_form("/admin/canned-comments/new", {"code": "X", "text": " ", "test_id": "99999999"})
    assert empty.status_code == 422 and "Enter the comment" in text_of(empty) and "Choose a test" in text_of(empty)
    assert count(session, CannedComment) == 1

    deactivated = client.post_form(f"/admin/canned-comments/{comment.id}",
                                   {"code": "FASTING", "test_id": "", "text": "Repeat after fasting."})
    assert deactivated.status_code == 303
    [updated] = audit_events(session, "canned_comment.updated")
    assert updated.before == {"test_id": gluf.id, "active": True} and updated.after == {"test_id": None,
                                                                                       "active": False}
    assert client.get("/admin/canned-comments/99999999").status_code == 404


# --- the tube remark ------------------------------------------------------------------------------


def test_a_tube_remark_is_saved_audited_and_shown_to_the_pathologist(client, auth, factory, lab, session):
    order = order_of(factory, lab, ["GLUF"])
    barcode = order.samples[0].barcode
    auth.logout()
    auth.login(lab["tech"].username, PASSWORD)
    page = text_of(client.get(f"/technician/samples/{barcode}"))
    assert f'action="/technician/samples/{barcode}/remark"' in page
    too_long = client.post_form(f"/technician/samples/{barcode}/remark", {"remark": "x" * 401}, headers=HTMX)
    assert too_long.status_code == 422 and "under 400 characters" in text_of(too_long)
    saved = client.post_form(f"/technician/samples/{barcode}/remark", {"remark": "  mildly <i>lipaemic</i> "},
                             headers=HTMX)
    assert saved.status_code == 200
    html = text_of(saved)
    assert html.lstrip().startswith('<section id="tube"') and "Remark saved: mildly &lt;i&gt;lipaemic&lt;/i&gt;" in html
    session.expire_all()
    assert session.execute(select(Sample.remark).where(Sample.barcode == barcode)).scalar_one() \
        == "mildly <i>lipaemic</i>"
    [event] = audit_events(session, "sample.updated")
    assert event.entity_id == barcode and event.before == {"remark": ""}
    assert event.after == {"remark": "mildly <i>lipaemic</i>"}
    assert client.post_form(f"/technician/samples/{barcode}/remark", {"remark": "x"}).status_code == 303  # plain
    assert client.post_form("/technician/samples/000000000/remark", {"remark": "x"}).status_code == 404
    # The pathologist sees it; and a result from the tube is not verified by rule.
    client.post_form(f"/technician/samples/{barcode}/remark", {"remark": "mildly lipaemic"})
    auth.logout()
    auth.login(lab["doc"].username, PASSWORD)
    assert "<strong>Remark:</strong> mildly lipaemic" in text_of(client.get(review_url(order)))


def test_a_released_result_is_amended_with_a_reason_and_a_new_report_version(client, lab, factory, session):
    from app.models import Report

    order = order_of(factory, lab, ["GLUF"])
    enter(session, lab, order, "GLUF", "95")
    page = text_of(client.get(review_url(order)))
    assert 'id="report-panel"' in page and "/reports/orders/" in page
    client.post_form(f"{review_url(order)}/verify", verify_form(shown_versions(page)), headers=HTMX)
    released = client.post_form(f"{review_url(order)}/release", headers=HTMX)
    assert released.status_code == 200 and released.headers["HX-Trigger"] == "report-requested"
    glu = current(session, order, "GLUF")
    amend_url = f"{review_url(order)}/results/{glu.id}/amend"
    no_reason = client.post_form(amend_url, {"value": "59", "reason": " "}, headers=HTMX)
    assert no_reason.status_code == 422 and "Say why" in text_of(no_reason)
    assert current(session, order, "GLUF").id == glu.id  # nothing changed
    amended = client.post_form(amend_url, {"value": "59", "reason": "Transcription error: 59, not 95"}, headers=HTMX)
    assert amended.status_code == 200, text_of(amended)[:500]
    assert "Amended" in text_of(amended) and amended.headers["HX-Trigger"] == "report-requested"
    now = current(session, order, "GLUF")
    assert now.id != glu.id and now.value_text == "59" and now.status == "released"
    session.expire_all()
    assert session.get(Result, glu.id).status == "amended"
    versions = session.execute(select(Report.version, Report.amendment_reason).where(Report.order_id == order.id)
                               .order_by(Report.version)).all()
    assert versions[-1] == (2, "Transcription error: 59, not 95")
