"""The patient portal (/p/<org code>/…): login by mobile OTP, the family behind one mobile,
reports and bills, and the refusals: expired and replayed codes, lockout, rate limits,
guessed ids, other labs, signed report links. Real PostgreSQL and Redis; the OTP is read
from the notification outbox row, as the SMS would carry it."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import security
from app.models import AuditEvent, Bill, Notification, PatientOtp, Report
from app.models.base import utcnow
from app.services import notifications

PDF = b"%PDF-1.7\n% a stand-in for a rendered report\n%%EOF\n"
FAMILY_MOBILE = "9876500011"
FAMILY_E164 = "+919876500011"
OTHER_MOBILE = "9876500022"


def issue_report(session, org, order, *, status="final", number=None) -> Report:
    security.use_tenant(session, org.id)
    version = 1 + (session.execute(select(func.count(Report.id)).where(Report.order_id == order.id)).scalar() or 0)
    report = Report(order_id=order.id, version=version, number=number or f"R/2026/{order.id:06d}", status=status,
                    pdf=PDF if status != "rendering" else None,
                    sha256=hashlib.sha256(PDF).hexdigest() if status != "rendering" else None, size=len(PDF),
                    pages=1, token=secrets.token_urlsafe(24), released_at=utcnow(), result_ids=[],
                    departments_pending=[])
    session.add(report)
    session.commit()
    return report


@pytest.fixture
def lab(factory, session):
    org = factory.org()
    factory.catalogue(org)
    asha = factory.patient(org, name="Asha Verma", mobile=FAMILY_MOBILE)
    ravi = factory.patient(org, name="Ravi Verma", sex="male", mobile=FAMILY_MOBILE)
    stranger = factory.patient(org, name="Meena Iyer", mobile=OTHER_MOBILE)
    orders = {p.full_name: factory.order(org, ["HB", "HOME"], patient=p) for p in (asha, ravi, stranger)}
    reports = {name: issue_report(session, org, order) for name, order in orders.items()}
    # A version still rendering is not offered (no PDF yet).
    rendering = issue_report(session, org, orders["Asha Verma"], status="rendering")
    security.use_tenant(session, org.id)
    bills = {name: session.execute(select(Bill).where(Bill.order_id == order.id).order_by(Bill.id)).scalars().all()
             for name, order in orders.items()}
    session.commit()
    return {"org": org, "patients": {"asha": asha, "ravi": ravi, "stranger": stranger}, "orders": orders,
            "reports": reports, "rendering": rendering, "bills": bills}


@pytest.fixture
def other_lab(factory, session):
    org = factory.org()
    factory.catalogue(org)
    twin = factory.patient(org, name="Asha Verma", mobile=FAMILY_MOBILE)  # same mobile, another lab
    order = factory.order(org, ["HB"], patient=twin)
    report = issue_report(session, org, order)
    return {"org": org, "patient": twin, "report": report}


def latest_code(session, org, e164: str) -> str | None:
    security.use_tenant(session, org.id)
    session.expire_all()
    row = session.execute(select(Notification).where(Notification.event == "otp", Notification.recipient == e164)
                          .order_by(Notification.id.desc()).limit(1)).scalar_one_or_none()
    session.commit()
    return None if row is None else row.payload["code"]


def otp_rows(session, org, e164: str) -> list[PatientOtp]:
    security.use_tenant(session, org.id)
    session.expire_all()
    rows = session.execute(select(PatientOtp).where(PatientOtp.mobile == e164).order_by(PatientOtp.id)).scalars().all()
    session.commit()
    return rows


def ask_code(client, org, mobile: str, **kwargs):
    token = client.csrf_token(f"/p/{org.code}/login")
    return client.post(f"/p/{org.code}/login", data={"mobile": mobile, "csrf_token": token}, **kwargs)


def enter_code(client, org, code: str, **kwargs):
    token = client.csrf_token(f"/p/{org.code}/verify")
    return client.post(f"/p/{org.code}/verify", data={"code": code, "csrf_token": token}, **kwargs)


def log_in(client, session, org, mobile=FAMILY_MOBILE, e164=FAMILY_E164):
    assert ask_code(client, org, mobile).status_code == 303
    code = latest_code(session, org, e164)
    response = enter_code(client, org, code)
    assert response.status_code == 303 and response.headers["Location"] == f"/p/{org.code}/"
    return code


@pytest.fixture
def lenient(app, monkeypatch):
    """Flask-Limiter out of the way, to test the OTP row's own counting."""
    monkeypatch.setitem(app.config, "LIS_PATIENT_OTP_RATE_LIMIT", "1000 per minute")
    monkeypatch.setitem(app.config, "LIS_PATIENT_VERIFY_RATE_LIMIT", "1000 per minute")


# ---------------------------------------------------------------- login

def test_otp_login_shows_the_whole_family_with_reports_and_bills(client, session, lab):
    org = lab["org"]
    assert client.get(f"/p/{org.code}/").headers["Location"] == f"/p/{org.code}/login"
    asked = ask_code(client, org, "098765 00011")  # typed any way: normalised to E.164
    assert asked.status_code == 303 and asked.headers["Location"] == f"/p/{org.code}/verify"
    rows = otp_rows(session, org, FAMILY_E164)
    assert len(rows) == 1
    code = latest_code(session, org, FAMILY_E164)
    assert re.fullmatch(r"\d{6}", code)
    assert rows[0].code_hash != code and code not in rows[0].code_hash  # only the HMAC is stored
    assert rows[0].expires_at - rows[0].created_at <= timedelta(minutes=5, seconds=1)
    # The admin's view of the outbox hides the code; the row exists.
    security.use_tenant(session, org.id)
    outbox = session.execute(select(Notification).where(Notification.event == "otp")).scalar_one()
    assert outbox.status == "outbox" and notifications.shown_payload(outbox)["code"] == "••••"
    session.commit()

    assert enter_code(client, org, code).status_code == 303
    home = client.get(f"/p/{org.code}/")
    assert home.status_code == 200
    html = home.get_data(as_text=True)
    assert "Asha Verma" in html and "Ravi Verma" in html and "Meena Iyer" not in html
    for name in ("Asha Verma", "Ravi Verma"):
        assert f"/p/{org.code}/reports/{lab['reports'][name].id}.pdf" in html
        for bill in lab["bills"][name]:
            assert f"/p/{org.code}/bills/{bill.id}" in html
    assert f"reports/{lab['reports']['Meena Iyer'].id}.pdf" not in html
    assert f"reports/{lab['rendering'].id}.pdf" not in html  # not issued: not offered
    assert "upi://pay?" in html and "<svg" in html  # dues: the UPI link and QR
    assert 'hx-history="false"' in html
    assert home.headers["Cache-Control"] == "no-store"

    for name in ("Asha Verma", "Ravi Verma"):
        pdf = client.get(f"/p/{org.code}/reports/{lab['reports'][name].id}.pdf")
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data == PDF
        assert pdf.headers["Cache-Control"] == "no-store"
    bill = lab["bills"]["Ravi Verma"][0]
    page = client.get(f"/p/{org.code}/bills/{bill.id}")
    assert page.status_code == 200 and bill.number in page.get_data(as_text=True)
    assert "upi://pay?" in page.get_data(as_text=True)
    one = client.get(f"/p/{org.code}/patients/{lab['patients']['ravi'].id}").get_data(as_text=True)
    assert "Ravi Verma" in one and "Asha Verma" not in one

    security.use_tenant(session, org.id)
    actions = session.execute(select(AuditEvent.action).where(AuditEvent.org_id == org.id,
                                                              AuditEvent.action.like("patient_portal.%"))).scalars().all()
    session.commit()
    assert "patient_portal.login" in actions and actions.count("patient_portal.report_downloaded") == 2

    token = client.csrf_token(f"/p/{org.code}/")
    out = client.post(f"/p/{org.code}/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert client.get(f"/p/{org.code}/").status_code == 302
    assert client.get(f"/p/{org.code}/reports/{lab['reports']['Asha Verma'].id}.pdf").status_code == 302


def test_wrong_codes_lock_the_number_after_five(client, session, lab, lenient):
    org = lab["org"]
    ask_code(client, org, FAMILY_MOBILE)
    code = latest_code(session, org, FAMILY_E164)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for n in range(1, 5):
        response = enter_code(client, org, wrong)
        assert response.status_code == 422
        assert f"{5 - n} attempt" in response.get_data(as_text=True)
    locked = enter_code(client, org, wrong)
    assert locked.status_code == 429 and "Too many wrong codes" in locked.get_data(as_text=True)
    # The right code is refused now, and a new code does not reset the count.
    assert enter_code(client, org, code).status_code == 429
    ask_code(client, org, FAMILY_MOBILE)
    assert latest_code(session, org, FAMILY_E164) == code  # locked: no new SMS went out
    refused = enter_code(client, org, code)
    assert refused.status_code == 429
    assert client.get(f"/p/{org.code}/").status_code == 302  # never logged in
    assert sum(r.attempts for r in otp_rows(session, org, FAMILY_E164)) == 5


def test_expired_otp_is_refused_and_changes_nothing(client, session, lab):
    org = lab["org"]
    ask_code(client, org, FAMILY_MOBILE)
    code = latest_code(session, org, FAMILY_E164)
    security.use_tenant(session, org.id)
    row = session.execute(select(PatientOtp)).scalar_one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    response = enter_code(client, org, code)
    assert response.status_code == 422 and "expired" in response.get_data(as_text=True)
    after = otp_rows(session, org, FAMILY_E164)[0]
    assert after.consumed_at is None and after.attempts == 0
    assert client.get(f"/p/{org.code}/").status_code == 302


def test_replayed_otp_is_refused(client, app, session, lab):
    org = lab["org"]
    code = log_in(client, session, org)
    # Someone else who saw the code tries it again, in another browser.
    other = app.test_client()
    with other.session_transaction() as s:
        s["patient_portal_pending"] = {"mobile": FAMILY_E164, "org_id": org.id, "exp": 2**31}
    response = enter_code(other, org, code)
    assert response.status_code == 422 and "already been used" in response.get_data(as_text=True)
    assert other.get(f"/p/{org.code}/").status_code == 302
    assert otp_rows(session, org, FAMILY_E164)[0].attempts == 0


def test_a_new_code_invalidates_the_older_one(client, session, lab, lenient):
    org = lab["org"]
    ask_code(client, org, FAMILY_MOBILE)
    first = latest_code(session, org, FAMILY_E164)
    ask_code(client, org, FAMILY_MOBILE)
    second = latest_code(session, org, FAMILY_E164)
    rows = otp_rows(session, org, FAMILY_E164)
    assert len(rows) == 2 and rows[0].invalidated_at is not None and rows[1].invalidated_at is None
    if first != second:
        assert enter_code(client, org, first).status_code == 422
    assert enter_code(client, org, second).status_code == 303


def test_unknown_mobile_gets_the_same_answer_and_no_sms(client, session, lab):
    org = lab["org"]
    known = ask_code(client, org, FAMILY_MOBILE)
    known_page = client.get(f"/p/{org.code}/verify")
    unknown = ask_code(client, org, "9123456789")
    unknown_page = client.get(f"/p/{org.code}/verify")
    assert (known.status_code, known.headers["Location"]) == (unknown.status_code, unknown.headers["Location"])
    strip = re.compile(r'"X-CSRFToken": "[^"]+"|name="csrf_token" value="[^"]+"')
    assert strip.sub("", known_page.get_data(as_text=True)) == strip.sub("", unknown_page.get_data(as_text=True))
    assert latest_code(session, org, "+919123456789") is None  # nothing sent
    assert len(otp_rows(session, org, "+919123456789")) == 1  # but a row, so lockout behaves the same
    bad = ask_code(client, org, "12345")
    assert bad.status_code == 422 and "mobile number" in bad.get_data(as_text=True)


def test_idle_patient_session_ends(client, session, lab):
    org = lab["org"]
    log_in(client, session, org)
    with client.session_transaction() as s:
        entry = s["patient_portal"]
        assert set(entry) == {"patient_mobile", "org_id", "exp"}
        assert "_user_id" not in s  # not a Flask-Login staff session
        s["patient_portal"] = {**entry, "exp": 1}
    assert client.get(f"/p/{org.code}/").status_code == 302


# ---------------------------------------------------------------- one mobile never reaches another's data

def test_guessed_ids_of_another_mobile_answer_404(client, session, lab, other_lab):
    org = lab["org"]
    log_in(client, session, org)
    mine = {lab["reports"]["Asha Verma"].id, lab["reports"]["Ravi Verma"].id}
    security.use_tenant(session, None)
    all_reports = session.execute(select(Report.id).execution_options(all_tenants=True)).scalars().all()
    all_bills = session.execute(select(Bill.id).execution_options(all_tenants=True)).scalars().all()
    session.commit()
    guesses = set(range(min(all_reports) - 3, max(all_reports) + 4))
    for report_id in sorted(guesses - mine):
        assert client.get(f"/p/{org.code}/reports/{report_id}.pdf").status_code == 404, report_id
    my_bills = {b.id for name in ("Asha Verma", "Ravi Verma") for b in lab["bills"][name]}
    for bill_id in sorted(set(range(min(all_bills) - 3, max(all_bills) + 4)) - my_bills):
        assert client.get(f"/p/{org.code}/bills/{bill_id}").status_code == 404, bill_id
    for patient in (lab["patients"]["stranger"], other_lab["patient"]):
        assert client.get(f"/p/{org.code}/patients/{patient.id}").status_code == 404
    assert client.get(f"/p/{org.code}/patients/{lab['patients']['asha'].id}").status_code == 200
    # The same mobile in another lab: this session is not logged in there.
    other = other_lab["org"]
    assert client.get(f"/p/{other.code}/").headers["Location"] == f"/p/{other.code}/login"
    assert client.get(f"/p/{other.code}/reports/{other_lab['report'].id}.pdf").status_code == 302
    # A lab code that does not exist.
    assert client.get("/p/no-such-lab/login").status_code == 404
    assert client.get("/p/no-such-lab/").status_code == 404


def test_login_pages_are_not_stored(client, lab):
    org = lab["org"]
    for path in ("login", "verify"):
        response = client.get(f"/p/{org.code}/{path}")
        assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in client.get(f"/p/{org.code}/login").get_data(as_text=True)


# ---------------------------------------------------------------- rate limits

def test_otp_requests_are_rate_limited_per_ip(client, session, lab):
    org = lab["org"]
    for n in range(5):
        assert ask_code(client, org, f"98765000{30 + n}").status_code == 303
    limited = ask_code(client, org, "9876500040")
    assert limited.status_code == 429 and limited.headers.get("Retry-After")
    assert latest_code(session, org, "+919876500040") is None
    # Another address is not held back by this one.
    assert ask_code(client, org, "9876500041", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 303


def test_otp_requests_are_rate_limited_per_number(client, lab):
    org = lab["org"]
    for n in range(5):
        response = ask_code(client, org, FAMILY_MOBILE, environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"})
        assert response.status_code == 303
    assert ask_code(client, org, FAMILY_MOBILE, environ_base={"REMOTE_ADDR": "10.0.0.99"}).status_code == 429


def test_code_verification_is_rate_limited_per_ip(client, session, lab, app, monkeypatch):
    monkeypatch.setitem(app.config, "LIS_PATIENT_OTP_RATE_LIMIT", "1000 per minute")
    org = lab["org"]
    statuses = []
    for n in range(6):  # a fresh number each time: only the per-IP limit can stop the sixth
        ask_code(client, org, f"98765001{n:02d}")
        statuses.append(enter_code(client, org, "000000").status_code)
    assert statuses[:5] == [422] * 5 and statuses[5] == 429


# ---------------------------------------------------------------- signed report links (notifications)

def test_signed_report_link_valid_expired_tampered(client, app, session, lab, monkeypatch):
    report = lab["reports"]["Asha Verma"]
    with app.test_request_context():
        link = notifications.patient_link(report)
    path = link[link.index("/r/"):]
    ok = client.get(path)
    assert ok.status_code == 200 and ok.data == PDF and "no-store" in ok.headers["Cache-Control"]
    token = path.rsplit("/", 1)[1]
    tampered = client.get("/r/" + token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert tampered.status_code == 404 and PDF not in tampered.data
    monkeypatch.setitem(app.config, "LIS_PATIENT_LINK_DAYS", -1)
    expired = client.get(path)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
