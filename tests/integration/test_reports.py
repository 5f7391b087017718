"""Reports (issue 5): a version per release, rendered by a job (directly and through a real RQ
worker), stored with its SHA-256 and served from storage; partial reports; amendments that
keep the original; the public verification page; the API; idempotent jobs."""
from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from pypdf import PdfReader
from rq import Queue, SimpleWorker
from sqlalchemy import select, update

from app import audit, security
from app.extensions import redis_client
from app.models import AuditEvent, OrderTest, Report, Result
from app.services import api_tokens, documents, reports, results, verification
from tests.factories import PASSWORD


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), (20, 40, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def lab(factory, session):
    org = factory.org(nabl_certificate="MC-4321")
    factory.standard_catalogue(org)
    doc = factory.user(org, "pathologist")
    security.use_tenant(session, org.id)
    doc.full_name, doc.qualification, doc.registration_number = "Dr. Meera Iyer", "MD (Pathology)", "KMC 12345"
    reports.set_signature(doc, _png())
    reports.update_settings(org, accreditation="NABL accredited laboratory, certificate MC-4321", logo=_png())
    session.commit()
    token = audit.set_context(audit.AuditContext(actor_label="doc", actor_user_id=doc.id, org_id=org.id))
    yield {"org": org, "doc": doc}
    audit._context.reset(token)


def _ot(order, code) -> OrderTest:
    return next(t for t in order.tests if t.test.code == code)


def release(lab, order, values: dict[str, str], session) -> Report:
    """Enter, verify and release these results, as the pathologist's page does; returns the
    report version the release asked for."""
    for code, raw in values.items():
        results.save(_ot(order, code), results.Entry(raw=raw), user_id=None)
    current = results.currents_for([ot.id for ot in order.tests])  # calculated ones too
    verification.verify(order, {r.id: r.version for r in current.values() if r.status == "entered"}, user=lab["doc"])
    verification.release(order, user=lab["doc"])
    session.commit()
    return reports.latest(order)


def pdf_text(data: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def test_release_renders_a_report_with_what_the_standard_asks(lab, factory, session):
    patient = factory.patient(lab["org"], name="Sunita Rao", sex="female")
    order = factory.order(lab["org"], ["HB", "WBC", "GLUF", "CREA"], patient=patient)
    order.samples[0].remark = "mildly lipaemic"
    session.commit()
    report = release(lab, order, {"HB": "10.5", "WBC": "7.2", "GLUF": "95", "CREA": "0.9"}, session)
    assert report.status == "rendering" and report.version == 1 and report.number.startswith("MAIN/R")
    # The job was queued after the commit, on the reports queue.
    assert Queue("reports", connection=redis_client()).job_ids == [reports.job_id(report.id)]

    assert reports.render_report(report.id) == "final"
    session.refresh(report)
    assert report.status == "final" and report.pages >= 1 and report.size == len(report.pdf)
    assert report.sha256 == hashlib.sha256(report.pdf).hexdigest()
    text, pages = pdf_text(report.pdf)
    for expected in ("Sunita Rao", patient.mrn, order.accession, report.number, "Haematology", "Biochemistry",
                     "Haemoglobin", "g/dL", "mg/dL", "12 – 15", "Low", "10.5 L", "Dr. Meera Iyer", "MD (Pathology)",
                     "KMC 12345", f"Page 1 of {pages}", "mildly lipaemic", "Method: Photometry", "Lab", "MC-4321",
                     "Referred by", "Collected", "Received", "End of report", f"/verify/{report.token}"):
        assert expected in text, expected
    # Patient id and date of issue on every page (india.md §5.1).
    reader = PdfReader(io.BytesIO(report.pdf))
    for number, page in enumerate(reader.pages, start=1):
        assert patient.mrn in page.extract_text() and f"Page {number} of {pages}" in page.extract_text()
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "report.issued")).scalar_one()


def test_a_devanagari_name_prints_in_its_script(lab, factory, session):
    patient = factory.patient(lab["org"], name="सीता देवी", sex="female")
    order = factory.order(lab["org"], ["HB"], patient=patient)
    report = release(lab, order, {"HB": "13.1"}, session)
    reports.render_report(report.id)
    session.refresh(report)
    reader = PdfReader(io.BytesIO(report.pdf))
    fonts = {str(f["/BaseFont"]) for page in reader.pages for f in
             (page["/Resources"]["/Font"][k].get_object() for k in page["/Resources"]["/Font"])}
    assert any("Devanagari" in f for f in fonts), fonts
    assert "सीता" in pdf_text(report.pdf)[0]


def test_running_the_job_twice_renders_once(lab, factory, session):
    order = factory.order(lab["org"], ["HB"])
    report = release(lab, order, {"HB": "13.1"}, session)
    assert reports.render_report(report.id) == "final"
    session.refresh(report)
    first = (report.sha256, report.rendered_at, report.attempts)
    assert reports.render_report(report.id) == "done"
    session.refresh(report)
    assert (report.sha256, report.rendered_at, report.attempts) == first
    assert reports.render_report(999_999_999) == "missing"


def test_a_real_rq_worker_renders_the_queued_job(lab, factory, session):
    order = factory.order(lab["org"], ["HB", "PLT"])
    report = release(lab, order, {"HB": "13.1", "PLT": "250"}, session)
    conn = redis_client()
    SimpleWorker([Queue("reports", connection=conn)], connection=conn).work(burst=True)
    session.expire_all()
    stored = session.get(Report, report.id)
    assert stored.status == "final" and stored.sha256 == hashlib.sha256(stored.pdf).hexdigest()


def test_download_serves_the_stored_bytes_and_never_renders_again(lab, factory, session, client, auth, monkeypatch):
    order = factory.order(lab["org"], ["HB"])
    report = release(lab, order, {"HB": "13.1"}, session)
    reports.render_report(report.id)
    session.refresh(report)
    reception = factory.user(lab["org"], "reception")
    auth.login(reception.username, PASSWORD)

    def no_render(*args, **kwargs):
        raise AssertionError("a download rendered a PDF")

    monkeypatch.setattr(documents, "pdf_and_pages", no_render)
    monkeypatch.setattr(documents, "_pdf", no_render)
    first = client.get(f"/reports/{report.id}.pdf")
    second = client.get(f"/reports/{report.id}.pdf")
    assert first.status_code == second.status_code == 200 and first.mimetype == "application/pdf"
    assert hashlib.sha256(first.data).hexdigest() == report.sha256 == hashlib.sha256(second.data).hexdigest()
    assert first.headers["ETag"] == f'"{report.sha256}"'
    listing = client.get(f"/reports/orders/{order.accession}")
    assert listing.status_code == 200 and report.number in listing.get_data(as_text=True)


def test_partial_report_names_the_pending_department_then_a_final_version_follows(lab, factory, session):
    order = factory.order(lab["org"], ["HB", "TSH"])
    partial = release(lab, order, {"HB": "13.1"}, session)
    assert partial.departments_pending == ["Biochemistry"]
    assert reports.render_report(partial.id) == "partial"
    session.refresh(partial)
    text, _ = pdf_text(partial.pdf)
    assert "Partial report" in text and "Pending" in text and "results pending" in text and "Biochemistry" in text
    final = release(lab, order, {"TSH": "2.1"}, session)
    assert final.version == 2 and final.supersedes_id == partial.id and final.number == partial.number
    assert reports.render_report(final.id) == "final"
    session.refresh(final)
    assert "Partial report" not in pdf_text(final.pdf)[0]


def test_amendment_makes_version_two_and_keeps_the_original(lab, factory, session, client, auth):
    order = factory.order(lab["org"], ["HB", "GLUF"])
    original = release(lab, order, {"HB": "13.1", "GLUF": "95"}, session)
    reports.render_report(original.id)
    session.refresh(original)
    original_pdf, original_sha = bytes(original.pdf), original.sha256
    released = results.current_result(_ot(order, "HB").id)

    amended = reports.amend(released, "11.0", "Transcription error: 11.0 was misread as 13.1", user=lab["doc"])
    session.commit()
    assert amended.version == 2 and amended.supersedes_id == original.id and amended.amended_by_id == lab["doc"].id
    old = session.get(Result, released.id)
    new = results.current_result(_ot(order, "HB").id)
    assert old.status == "amended" and not old.is_current and old.value_text == "13.1"
    assert new.status == "released" and new.value_text == "11.0" and new.flag == "L" and new.id != old.id
    assert reports.render_report(amended.id) == "amended"
    session.refresh(amended)
    text, _ = pdf_text(amended.pdf)
    for expected in ("Amended report", "Transcription error", original.number, "version 1",
                     "previously reported as 13.1", "Dr. Meera Iyer", "11.0 L"):
        assert expected in text, expected
    # Nothing is overwritten: the first version and its bytes are still there and served.
    session.refresh(original)
    assert original.status == "final" and original.sha256 == original_sha and bytes(original.pdf) == original_pdf
    auth.login(factory.user(lab["org"], "technician").username, PASSWORD)
    assert hashlib.sha256(client.get(f"/reports/{original.id}.pdf").data).hexdigest() == original_sha
    with pytest.raises(reports.ReportRefused):
        reports.amend(new, "12.0", "  ", user=lab["doc"])
    with pytest.raises(reports.ReportRefused):
        reports.amend(old, "12.0", "again", user=lab["doc"])


def test_amending_into_the_critical_range_needs_the_call_first(lab, factory, session):
    """No critical value leaves the lab without a read-back call, amendments included."""
    from app.models import CriticalCall

    order = factory.order(lab["org"], ["HB"])
    release(lab, order, {"HB": "13.1"}, session)
    released = results.current_result(_ot(order, "HB").id)
    with pytest.raises(reports.ReportRefused) as refused:
        reports.amend(released, "5.0", "Haemolysed first sample re-analysed", user=lab["doc"])
    assert "critical" in refused.value.message and refused.value.field == "call_recipient_name"
    session.rollback()
    assert results.current_result(_ot(order, "HB").id).value_text == "13.1"
    with pytest.raises(reports.ReportRefused) as no_read_back:
        reports.amend(results.current_result(_ot(order, "HB").id), "5.0", "Re-analysed", user=lab["doc"],
                      call={"recipient_kind": "doctor", "recipient_name": "Dr Rao", "phone": "9876543210",
                            "read_back": ""})
    assert no_read_back.value.field == "call_read_back"
    session.rollback()
    reports.amend(results.current_result(_ot(order, "HB").id), "5.0", "Re-analysed", user=lab["doc"],
                  call={"recipient_kind": "doctor", "recipient_name": "Dr Rao", "phone": "9876543210",
                        "read_back": "y"})
    session.commit()
    new = results.current_result(_ot(order, "HB").id)
    assert new.critical and new.status == "released"
    [call] = session.query(CriticalCall).filter_by(result_id=new.id).all()
    assert call.recipient_name == "Dr Rao" and call.read_back


def test_amending_an_input_amends_the_calculated_results_made_from_it(lab, factory, session):
    order = factory.order(lab["org"], ["LIPID"])
    first = release(lab, order, {"CHOL": "180", "TG": "150", "HDL": "45"}, session)
    assert first.departments_pending == []
    before = {code: results.current_result(_ot(order, code).id) for code in ("LDL", "VLDL", "NHDL")}
    assert (before["LDL"].value_text, before["VLDL"].value_text, before["NHDL"].value_text) == ("105", "30", "135")
    reports.amend(results.current_result(_ot(order, "CHOL").id), "200", "Wrong sample run first", user=lab["doc"])
    session.commit()
    after = {code: results.current_result(_ot(order, code).id) for code in ("LDL", "VLDL", "NHDL")}
    assert (after["LDL"].value_text, after["NHDL"].value_text) == ("125", "155")
    assert after["LDL"].status == "released" and session.get(Result, before["LDL"].id).status == "amended"
    assert after["VLDL"].id == before["VLDL"].id  # TG did not change: VLDL stays as released
    with pytest.raises(reports.ReportRefused, match="calculated"):
        reports.amend(after["LDL"], "100", "typed over", user=lab["doc"])


def test_a_failed_render_is_kept_with_its_error_and_can_be_retried(lab, factory, session, monkeypatch):
    order = factory.order(lab["org"], ["HB"])
    report = release(lab, order, {"HB": "13.1"}, session)

    def broken(html):
        raise RuntimeError("pango fell over")

    monkeypatch.setattr(documents, "pdf_and_pages", broken)
    assert reports.render_report(report.id) == "failed"
    session.refresh(report)
    assert report.status == "failed" and "pango fell over" in report.error and report.pdf is None
    monkeypatch.undo()
    reports.retry(report)
    session.commit()
    assert reports.render_report(report.id) == "final"


def test_sweep_requeues_a_lost_job_and_gives_up_after_repeated_crashes(lab, factory, session):
    order = factory.order(lab["org"], ["HB"])
    report = release(lab, order, {"HB": "13.1"}, session)
    conn = redis_client()
    conn.flushdb()  # the job is lost
    session.execute(update(Report).where(Report.id == report.id)
                    .values(updated_at=Report.updated_at - timedelta(minutes=10)))
    session.commit()
    assert reports.sweep()["requeued"] == 1
    assert reports.sweep()["alive"] == 1  # queued again, not twice
    conn.flushdb()
    security.use_tenant(session, lab["org"].id)
    session.execute(update(Report).where(Report.id == report.id)
                    .values(attempts=reports.MAX_ATTEMPTS, updated_at=Report.updated_at - timedelta(minutes=10)))
    session.commit()
    assert reports.sweep()["failed"] == 1
    security.use_tenant(session, lab["org"].id)
    session.refresh(report)
    assert report.status == "failed" and "attempts" in report.error


@pytest.fixture
def issued(lab, factory, session):
    patient = factory.patient(lab["org"], name="Ramesh Kumar Verma", sex="male")
    order = factory.order(lab["org"], ["HB"], patient=patient)
    report = release(lab, order, {"HB": "14.1"}, session)
    reports.render_report(report.id)
    session.refresh(report)
    return report


def _csrf(client, url):
    from tests.helpers import _TOKEN_RE

    match = _TOKEN_RE.search(client.get(url).get_data(as_text=True))
    return match.group(1) or match.group(2)


def test_verification_page_shows_initials_and_checks_the_hash(issued, client):
    url = f"/verify/{issued.token}"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and issued.number in html and "R. K. V." in html
    assert "Ramesh" not in html and "Verma" not in html and "MRN" not in html
    token = _csrf(client, url)
    good = client.post(url, data={"sha256": issued.sha256.upper(), "csrf_token": token})
    assert good.status_code == 200 and "Matches." in good.get_data(as_text=True)
    bad = client.post(url, data={"sha256": "0" * 64, "csrf_token": token})
    assert "Does not match." in bad.get_data(as_text=True)
    upload = client.post(url, data={"pdf": (io.BytesIO(bytes(issued.pdf)), "report.pdf"), "csrf_token": token},
                         content_type="multipart/form-data")
    assert "Matches." in upload.get_data(as_text=True)
    tampered = client.post(url, data={"pdf": (io.BytesIO(bytes(issued.pdf) + b"%"), "r.pdf"), "csrf_token": token},
                           content_type="multipart/form-data")
    assert "Does not match." in tampered.get_data(as_text=True)
    junk = client.post(url, data={"sha256": "not a hash", "csrf_token": token})
    assert junk.status_code == 422


def test_verification_of_an_unknown_token_is_a_plain_404(issued, client):
    response = client.get("/verify/" + "x" * 32)
    assert response.status_code == 404 and issued.number not in response.get_data(as_text=True)


def test_verification_page_is_rate_limited(issued, client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LIS_VERIFY_RATE_LIMIT", "3 per minute")
    statuses = [client.get(f"/verify/{issued.token}").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/verify/" + "y" * 32).status_code == 429  # guessing spends the same allowance


def test_verification_says_when_a_newer_version_exists(issued, lab, client, session):
    result = session.execute(select(Result).where(Result.id.in_(issued.result_ids))).scalar_one()
    reports.amend(result, "13.0", "Recalibrated analyser", user=lab["doc"])
    session.commit()
    reports.render_report(reports.latest(issued.order).id)
    assert "A newer version (2)" in client.get(f"/verify/{issued.token}").get_data(as_text=True)


def test_api_lists_versions_and_serves_the_pdf(issued, lab, factory, session, client):
    tokens = {role: api_tokens.create_token(lab["org"].id, role, role)[1] for role in ("reception", "billing")}
    other = factory.org()
    _, foreign = api_tokens.create_token(other.id, "admin", "other lab")
    session.commit()
    headers = {"Authorization": f"Bearer {tokens['reception']}"}
    accession = issued.order.accession
    listing = client.get(f"/api/v1/orders/{accession}/reports", headers=headers)
    assert listing.status_code == 200
    version = listing.json["versions"][0]
    assert {k: version[k] for k in ("id", "number", "status", "sha256")} == \
        {"id": issued.id, "number": issued.number, "status": "final", "sha256": issued.sha256}
    assert version["released_at"]
    pdf = client.get(f"/api/v1/reports/{issued.id}.pdf", headers=headers)
    assert pdf.status_code == 200 and hashlib.sha256(pdf.data).hexdigest() == issued.sha256
    assert client.get(f"/api/v1/reports/{issued.id}.pdf",
                      headers={"Authorization": f"Bearer {tokens['billing']}"}).status_code == 403
    theirs = {"Authorization": f"Bearer {foreign}"}
    assert client.get(f"/api/v1/reports/{issued.id}.pdf", headers=theirs).status_code == 404
    assert client.get(f"/api/v1/orders/{accession}/reports", headers=theirs).status_code == 404
    assert client.get("/api/v1/reports/abc.pdf", headers=headers).status_code == 404
    spec = client.get("/api/v1/openapi.json").json
    assert "/reports/{id}.pdf" in spec["paths"] and "/orders/{accession}/reports" in spec["paths"]


def test_another_labs_staff_get_404_for_the_pdf(issued, factory, client, auth):
    other = factory.org()
    auth.login(factory.user(other, "pathologist").username, PASSWORD)
    assert client.get(f"/reports/{issued.id}.pdf").status_code == 404
    assert client.get(f"/reports/orders/{issued.order.accession}").status_code == 404


def test_ulr_follows_the_labs_pattern(lab, factory, session):
    reports.update_settings(lab["org"], ulr_pattern="TC1234261########F")
    session.commit()
    order = factory.order(lab["org"], ["HB"])
    report = release(lab, order, {"HB": "13.1"}, session)
    assert report.ulr == "TC123426100000001F"
    reports.render_report(report.id)
    session.refresh(report)
    assert "TC123426100000001F" in pdf_text(report.pdf)[0]
    with pytest.raises(reports.ReportRefused):
        reports.update_settings(lab["org"], ulr_pattern="TC-no-run")


@pytest.mark.parametrize("unit,shown", [
    ("10*3/uL", "10^3/µL"), ("u[IU]/mL", "µIU/mL"), ("mL/min/{1.73_m2}", "mL/min/1.73 m²"), ("{ratio}", ""),
    ("ug/mL{FEU}", "µg/mL FEU"), ("/[HPF]", "/HPF"), ("1", ""), ("g/dL", "g/dL"), (None, ""),
])
def test_units_print_readably(unit, shown):
    assert reports.display_unit(unit) == shown


@pytest.mark.parametrize("interval,shown", [
    ({"low": "12.0000", "high": "15.0000"}, "12 – 15"), ({"low": None, "high": "33"}, "Up to 33"),
    ({"low": "40", "high": None}, "40 or more"), ({"text": "Negative"}, "Negative"),
    ({"low": "70", "high": "99", "text": "fasting"}, "70 – 99 (fasting)"), (None, ""),
])
def test_reference_intervals_print_from_the_snapshot(interval, shown):
    assert reports.interval_text(interval) == shown


def test_ulr_pattern_and_initials():
    assert reports.format_ulr("TC1234261########F", 42) == "TC123426100000042F"
    with pytest.raises(reports.ReportRefused):
        reports.format_ulr("TC12##F", 100)
    assert reports.initials("Ramesh Kumar Verma") == "R. K. V."
    assert reports.initials("सीता देवी") == "स. द."
