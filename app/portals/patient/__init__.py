"""The patient portal, /p/<org code>/…: reached without a staff login.

A patient logs in with a one-time password sent to their mobile (services/patient_portal.py
has the rules) and sees every patient registered with that mobile in that lab (families
share phones): their issued reports (PDF download) and their bills with what is due (UPI QR
and upi:// link). The signed, expiring report link sent with a notification is /r/<token>
(app/portals/messaging).

The patient session is separate from staff authentication: its own signed session entry
{"patient_mobile", "org_id", "exp"} (30 minutes idle), never a Flask-Login user. The
organization comes from the URL; every query is scoped to it with use_tenant. Whatever is
asked for (a report, a bill, a patient) must belong to a patient with the session's mobile,
else 404. Every answer is Cache-Control: no-store; pages carry hx-history="false" (base.html).
OTP requests and verifications are rate-limited per client IP and per mobile number, on top
of the 5-wrong-codes-in-15-minutes count kept on the OTP rows.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import (Blueprint, Response, abort, current_app, g, redirect, render_template, request, session,
                   url_for)

from app import audit
from app.extensions import db, limiter
from app.security import use_tenant
from app.services import patient_portal as portal
from app.services.identifiers import normalize_mobile

bp = Blueprint("patient", __name__, url_prefix="/p/<org_code>")

SESSION_KEY = "patient_portal"
PENDING_KEY = "patient_portal_pending"
IDLE_SECONDS = 30 * 60
PENDING_SECONDS = 10 * 60


def _otp_rate() -> str:
    return current_app.config.get("LIS_PATIENT_OTP_RATE_LIMIT", "5 per 15 minutes")


def _verify_rate() -> str:
    return current_app.config.get("LIS_PATIENT_VERIFY_RATE_LIMIT", "5 per 15 minutes")


def _hashed(value: str) -> str:
    # Rate-limit keys live in Redis: a keyed hash, never the number itself.
    return hashlib.sha256(f"{current_app.config['SECRET_KEY']}:{value}".encode()).hexdigest()[:32]


def _typed_mobile() -> str:
    raw = request.form.get("mobile", "")
    try:
        return normalize_mobile(raw)
    except ValueError:
        return raw.strip()[:32]


def _request_mobile_key() -> str:
    return f"pp-otp-mobile:{g.get('org_code', '')}:{_hashed(_typed_mobile())}"


def _verify_mobile_key() -> str:
    pending = session.get(PENDING_KEY) or {}
    return f"pp-verify-mobile:{pending.get('org_id', '')}:{_hashed(str(pending.get('mobile', '')))}"


@bp.url_value_preprocessor
def _pull_org(endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.org_code = (values or {}).pop("org_code", "")


@bp.url_defaults
def _add_org(endpoint: str, values: dict[str, Any]) -> None:
    if "org_code" not in values and g.get("org_code"):
        values["org_code"] = g.org_code


@bp.before_request
def _scope() -> None:
    org = portal.organization_by_code(g.org_code) if len(g.org_code) <= 32 else None
    if org is None:
        abort(404)
    g.org = org
    use_tenant(db.session, org.id)
    audit.set_context(audit.AuditContext(actor_label="patient-portal", org_id=org.id, ip=request.remote_addr,
                                         request_id=g.get("request_id")))
    g.patient_mobile = _session_mobile(org.id)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _session_mobile(org_id: int) -> str | None:
    """The logged-in mobile, if the patient session is for this lab and not idle too long;
    the idle clock restarts on every request."""
    entry = session.get(SESSION_KEY)
    if not isinstance(entry, dict):
        return None
    now = int(time.time())
    if entry.get("org_id") != org_id or int(entry.get("exp", 0)) < now or not entry.get("patient_mobile"):
        session.pop(SESSION_KEY, None)
        return None
    session[SESSION_KEY] = {**entry, "exp": now + IDLE_SECONDS}
    return str(entry["patient_mobile"])


def _require_patient() -> str:
    if not g.patient_mobile:
        abort(redirect(url_for("patient.login")))
    return g.patient_mobile


# ---------------------------------------------------------------- login by OTP

@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    mobile = _require_patient()
    return render_template("patient/family.html", org=g.org, members=portal.family(g.org, mobile), single=False)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_otp_rate, methods=["POST"])  # per client IP
@limiter.limit(_otp_rate, key_func=_request_mobile_key, methods=["POST"])  # per number, whatever the IP
def login():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        if g.patient_mobile:
            return redirect(url_for("patient.home"))
        return render_template("patient/login.html", org=g.org, error=None, mobile="")
    try:
        mobile = normalize_mobile(request.form.get("mobile", ""))
    except ValueError as err:
        return render_template("patient/login.html", org=g.org, error=str(err),
                               mobile=request.form.get("mobile", "")[:32]), 422
    portal.request_otp(g.org, mobile, ip=request.remote_addr)
    session[PENDING_KEY] = {"mobile": mobile, "org_id": g.org.id, "exp": int(time.time()) + PENDING_SECONDS}
    return redirect(url_for("patient.verify"), code=303)


def _pending_mobile() -> str | None:
    pending = session.get(PENDING_KEY)
    if (not isinstance(pending, dict) or pending.get("org_id") != g.org.id
            or int(pending.get("exp", 0)) < int(time.time())):
        return None
    return str(pending.get("mobile") or "") or None


REFUSALS = {
    "wrong": "That code is not right.",
    "expired": "This code has expired. Ask for a new one.",
    "used": "This code has already been used. Ask for a new one.",
    "none": "There is no valid code for this number. Ask for a new one.",
    "locked": "Too many wrong codes for this number. Wait 15 minutes, then ask for a new code.",
}


@bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(_verify_rate, methods=["POST"])  # per client IP
@limiter.limit(_verify_rate, key_func=_verify_mobile_key, methods=["POST"])  # per number
def verify():  # type: ignore[no-untyped-def]
    mobile = _pending_mobile()
    if mobile is None:
        return redirect(url_for("patient.login"))
    if request.method == "GET":
        return render_template("patient/verify.html", org=g.org, error=None)
    code = request.form.get("code", "").strip()
    if len(code) != 6 or not code.isdigit():
        return render_template("patient/verify.html", org=g.org, error="Enter the 6-digit code from the SMS."), 422
    result = portal.verify_otp(g.org, mobile, code)
    if not result.ok:
        message = REFUSALS[result.outcome]
        if result.outcome == "wrong":
            message += f" {result.remaining} attempt{'s' if result.remaining != 1 else ''} left."
        return render_template("patient/verify.html", org=g.org, error=message), \
            429 if result.outcome == "locked" else 422
    # A fresh patient session (no fixation): drop the old patient entries and the CSRF token;
    # a staff login in the same browser is left alone.
    for key in (SESSION_KEY, PENDING_KEY, "csrf_token"):
        session.pop(key, None)
    session[SESSION_KEY] = {"patient_mobile": mobile, "org_id": g.org.id, "exp": int(time.time()) + IDLE_SECONDS}
    return redirect(url_for("patient.home"), code=303)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    for key in (SESSION_KEY, PENDING_KEY, "csrf_token"):
        session.pop(key, None)
    return redirect(url_for("patient.login"), code=303)


# ---------------------------------------------------------------- the family's records

@bp.get("/patients/<int:patient_id>")
def patient(patient_id: int):  # type: ignore[no-untyped-def]
    mobile = _require_patient()
    members = [m for m in portal.family(g.org, mobile) if m.patient.id == patient_id]
    if not members:
        abort(404)
    return render_template("patient/family.html", org=g.org, members=members, single=True)


@bp.get("/reports/<int:report_id>.pdf")
def report_pdf(report_id: int):  # type: ignore[no-untyped-def]
    mobile = _require_patient()
    report = portal.report_for_mobile(report_id, mobile)
    if report is None:
        abort(404)
    audit.record("patient_portal.report_downloaded", entity_type="report", entity_id=report.id)
    db.session.commit()
    filename = f"Report-{report.number.replace('/', '-')}-v{report.version}.pdf"
    response = Response(bytes(report.pdf or b""), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/bills/<int:bill_id>")
def bill(bill_id: int):  # type: ignore[no-untyped-def]
    mobile = _require_patient()
    found = portal.bill_for_mobile(bill_id, mobile)
    if found is None:
        abort(404)
    from app.services import documents

    return render_template("patient/bill.html", org=g.org, bill=found, upi=documents.upi_for_bill(g.org, found))
