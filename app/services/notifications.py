"""Notifications: an outbox of messages to patients and doctors, delivered by RQ jobs.

Life of a message:

1. An event (report_released, critical_value, payment_received, otp) calls enqueue(), which
   adds a Notification row in the caller's transaction. The idempotency key (unique per
   organization, e.g. "report:42:patient") means the same event fired twice adds one row.
   The channel is the first of the event's preferred channels that is configured and for
   which the recipient has an address; when none is configured the row goes to the visible
   outbox (channel and status 'outbox': the admin can read what would have been sent, and
   Retry sends it once a channel is set up).
2. After that transaction commits, a job on the 'notify' queue runs deliver(id). It claims
   the row (SELECT … FOR UPDATE SKIP LOCKED, status 'queued' and due), marks it 'sending'
   and commits *before* calling the provider, so a job run twice (or in two workers) sends
   once. Success: 'sent' with the provider's message id. A temporary failure (network, 429,
   5xx): 'queued' again with next_attempt_at = now + 30 s × 2^(attempts-1), re-queued with
   RQ's enqueue_in, and the sweep (workers/schedule.py) re-queues any due row whose job was
   lost. After MAX_ATTEMPTS, or on a permanent refusal (4xx), 'failed' with the error kept.
   A row left 'sending' by a killed worker is never sent again automatically (the provider
   may have it): the sweep marks it failed, and the admin decides whether to Retry.
3. WhatsApp status webhooks move a row forward only (sent → delivered → read; failed from
   sent): ../shared/reference/india.md §4.2 says their order is not guaranteed.

Channels and their rules (india.md §4): WhatsApp Cloud API with approved templates (the
report PDF as the document header; free-form only inside the 24-hour window), DLT SMS (PE id,
header, template id; text equal to the registered template with variables filled), email by
SMTP. Recipients (mobile numbers, email addresses) are never logged.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.integrations import whatsapp as wa
from app.integrations._http import ProviderError
from app.integrations.email import EmailClient
from app.integrations.sms import SmsClient, render as render_sms
from app.models import Notification, Organization, Report, WebhookDelivery, WhatsAppWindow
from app.models.base import utcnow
from app.security import tenant_of_row, use_tenant
from app.services import ServiceError, jobs

log = logging.getLogger(__name__)

QUEUE = "notify"
JOB = "workers.notify.deliver"
MAX_ATTEMPTS = 6
BACKOFF_BASE = 30  # seconds: 30, 60, 120, 240, 480 between the six attempts
STUCK_SENDING = timedelta(minutes=10)
SWEEP_GRACE = timedelta(minutes=1)
WINDOW = timedelta(hours=24)  # WhatsApp customer-service window (india.md §4.2)
LINK_SALT = "patient-report-link"


class NotificationRefused(ServiceError):
    pass


@dataclass(frozen=True)
class Template:
    """One event's message on every channel.

    whatsapp: the approved template's name; its body takes `fields` in order (and a PDF
    document header when `document` is set). sms: the text exactly as registered on DLT, with
    {#var#} for each of `sms_fields` (its DLT template id comes from LIS_SMS_TEMPLATE_IDS).
    email: subject and body, str.format()ed with the payload."""

    event: str
    whatsapp: str
    fields: tuple[str, ...]
    sms: str
    sms_fields: tuple[str, ...]
    subject: str
    email: str
    document: bool = False
    otp_button: bool = False
    prefer: tuple[str, ...] = ("whatsapp", "sms", "email")
    secret_fields: tuple[str, ...] = field(default=())


TEMPLATES: dict[str, Template] = {t.event: t for t in (
    Template(
        "report_released", "lab_report_ready", ("name", "report_number", "lab_name"),
        "Dear {#var#}, your lab report {#var#} from {#var#} is ready. Download: {#var#}",
        ("name", "report_number", "lab_name", "link"),
        "Your laboratory report {report_number}",
        "Dear {name},\n\nYour report {report_number} from {lab_name} is attached.\n\n{lab_name}",
        document=True),
    Template(
        "critical_value", "critical_value_alert", ("name", "patient_name", "test_name", "value", "lab_name"),
        "Dear {#var#}, critical result for {#var#}: {#var#} {#var#}. Please contact {#var#}.",
        ("name", "patient_name", "test_name", "value", "lab_name"),
        "Critical result: {patient_name} ({accession})",
        "Dear {name},\n\nA critical result was found for your patient {patient_name} (accession {accession}):\n"
        "{test_name}: {value}\n\nPlease contact {lab_name}.",
        prefer=("whatsapp", "sms", "email")),
    Template(
        "payment_received", "payment_received", ("name", "amount", "bill_number", "lab_name"),
        "Dear {#var#}, we have received Rs {#var#} against bill {#var#}. Thank you, {#var#}",
        ("name", "amount", "bill_number", "lab_name"),
        "Payment received: bill {bill_number}",
        "Dear {name},\n\nWe have received Rs {amount} against bill {bill_number}.\n\nThank you,\n{lab_name}"),
    Template(
        "otp", "lab_login_otp", ("code",),
        "{#var#} is your OTP to see your reports at {#var#}. It is valid for 5 minutes. Do not share it.",
        ("code", "lab_name"),
        "Your one-time password", "{code} is your one-time password for {lab_name}. It is valid for 5 minutes.",
        otp_button=True, prefer=("sms", "whatsapp", "email"), secret_fields=("code",)),
)}


# ---------------------------------------------------------------- channels from settings

def clients() -> dict[str, Any]:
    cfg = current_app.config
    return {"whatsapp": wa.WhatsAppClient.from_config(cfg), "sms": SmsClient.from_config(cfg),
            "email": EmailClient.from_config(cfg)}


def channel_status() -> dict[str, bool]:
    """Which channels are configured (shown on the admin page; no secrets)."""
    return {name: client is not None for name, client in clients().items()}


def _sms_template_id(event: str) -> str:
    return current_app.config.get("LIS_SMS_TEMPLATE_IDS", {}).get(event, "")


def _choose(template: Template, mobile: str | None, email: str | None) -> tuple[str, str] | None:
    """(channel, recipient): the first preferred channel that is configured and reachable;
    ('outbox', address) when none is configured; None when the person has no address."""
    configured = channel_status()
    reachable = []
    for channel in template.prefer:
        address = email if channel == "email" else mobile
        if not address:
            continue
        reachable.append(address)
        if configured[channel] and (channel != "sms" or _sms_template_id(template.event)):
            return channel, address
    return ("outbox", reachable[0]) if reachable else None


# ---------------------------------------------------------------- enqueue (caller's transaction)

def enqueue(event: str, *, key: str, mobile: str | None = None, email: str | None = None,
            payload: dict[str, Any]) -> Notification | None:
    """Add the message for `event` unless one with this idempotency key exists (then return
    that one). In the caller's transaction; the job is queued after it commits."""
    template = TEMPLATES[event]
    session = db.session
    existing = session.execute(select(Notification).where(Notification.idempotency_key == key)).scalar_one_or_none()
    if existing is not None:
        return existing
    choice = _choose(template, mobile, email)
    if choice is None:
        return None
    channel, recipient = choice
    outbox = channel == "outbox"
    row = Notification(channel=channel, event=event, template=_template_name(template, channel), recipient=recipient,
                       payload=payload, idempotency_key=key, status="outbox" if outbox else "queued",
                       attempts=0, next_attempt_at=None if outbox else utcnow(), last_error="")
    try:
        with session.begin_nested():
            session.add(row)
            session.flush([row])
    except IntegrityError:  # the same key added at the same moment by another transaction
        return session.execute(select(Notification).where(Notification.idempotency_key == key)).scalar_one()
    if not outbox:
        _after_commit.add(row.id, session())
    return row


def _template_name(template: Template, channel: str) -> str:
    if channel == "whatsapp":
        return template.whatsapp
    if channel == "sms":
        return _sms_template_id(template.event) or template.event
    return template.event


def _queue():  # type: ignore[no-untyped-def]
    return jobs.rq_queue(QUEUE)


def queue_job(notification_id: int, *, delay: timedelta | None = None) -> None:
    kwargs = dict(job_timeout=120, result_ttl=3600, failure_ttl=7 * 86400,
                  description=f"deliver notification {notification_id}")
    if delay:
        _queue().enqueue_in(delay, JOB, notification_id, **kwargs)
    else:
        _queue().enqueue(JOB, notification_id, **kwargs)


_after_commit = jobs.AfterCommit("notifications", queue_job)


# ---------------------------------------------------------------- events

def _lab_name(org_id: int) -> str:
    org = db.session.get(Organization, org_id)
    return org.display_name if org is not None else ""


def report_released(report: Report) -> None:
    """A report version was issued: the patient, and the referrer if they opted in. Partial
    versions wait for the complete one. Never lets a messaging problem stop a report."""
    if report.status not in ("final", "amended"):
        return
    try:
        with db.session.begin_nested():  # a failure here rolls back only these rows
            order = report.order
            patient, referrer = order.patient, order.referrer
            base = {"report_id": report.id, "report_number": report.number, "version": report.version,
                    "lab_name": _lab_name(report.org_id), "accession": order.accession}
            enqueue("report_released", key=f"report:{report.id}:patient", mobile=patient.mobile,
                    email=patient.email, payload={**base, "name": patient.full_name})
            if referrer is not None and referrer.notify_reports:
                enqueue("report_released", key=f"report:{report.id}:referrer", mobile=referrer.phone,
                        email=referrer.email, payload={**base, "name": referrer.name})
    except Exception:
        log.exception("notifications for report %s could not be queued", report.id)


def critical_value(result: Any) -> Notification | None:
    """A critical result: to the order's referring doctor (whatever their report opt-in)."""
    order = result.order_test.order
    referrer = order.referrer
    if referrer is None:
        return None
    value = f"{result.value_text} {result.unit or ''}".strip()
    return enqueue("critical_value", key=f"critical:{result.id}:referrer", mobile=referrer.phone,
                   email=referrer.email,
                   payload={"name": referrer.name, "patient_name": order.patient.full_name,
                            "test_name": result.order_test.test.name, "value": value,
                            "accession": order.accession, "lab_name": _lab_name(result.org_id)})


def payment_received(payment: Any) -> Notification | None:
    """A payment taken (billing.record_payment): the patient's receipt message. Never lets a
    messaging problem stop a payment."""
    try:
        with db.session.begin_nested():  # a failure here rolls back only this row
            bill = payment.bill
            patient = bill.order.patient if bill.order is not None else None
            if patient is None:
                return None
            rupees = f"{payment.amount_paise // 100}.{payment.amount_paise % 100:02d}"
            return enqueue("payment_received", key=f"payment:{payment.id}:patient", mobile=patient.mobile,
                           email=patient.email,
                           payload={"name": patient.full_name, "amount": rupees, "bill_number": bill.number,
                                    "lab_name": _lab_name(payment.org_id)})
    except Exception:
        log.exception("the message for payment %s could not be queued", payment.id)
        return None


def otp(mobile: str, code: str, *, key: str, org_id: int) -> Notification | None:
    """A one-time password (the patient portal's login). `key` names this OTP issue."""
    return enqueue("otp", key=f"otp:{key}", mobile=mobile, payload={"code": code, "lab_name": _lab_name(org_id)})


# ---------------------------------------------------------------- signed patient links

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


def patient_link(report: Report) -> str:
    """An expiring signed link to one report's PDF (LIS_PATIENT_LINK_DAYS), for SMS. The
    link's domain is LIS_PUBLIC_URL, which must be whitelisted with the DLT operator:
    messages with non-whitelisted URLs are blocked since 1 Oct 2024 (india.md §4.1)."""
    token = _serializer().dumps({"r": report.id, "o": report.org_id})
    return f"{current_app.config['LIS_PUBLIC_URL']}/r/{token}"


def report_for_link(token: str) -> tuple[str, Report | None]:
    """('ok', report) | ('expired', None) | ('invalid', None). Sets the session's tenant."""
    max_age = int(current_app.config["LIS_PATIENT_LINK_DAYS"]) * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        return "expired", None
    except BadSignature:
        return "invalid", None
    use_tenant(db.session, int(data["o"]))
    from app.services import reports

    report = reports.with_pdf(int(data["r"]))
    if report is None or not report.issued:
        return "invalid", None
    return "ok", report


# ---------------------------------------------------------------- delivery (the job body)

def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF_BASE * 2 ** max(0, attempts - 1))


def _locked(notification_id: int) -> Notification | None:
    return db.session.execute(select(Notification).where(Notification.id == notification_id)
                              .with_for_update(skip_locked=True)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def deliver(notification_id: int) -> str:
    """Send one message. Safe to run twice or in two workers at once: returns 'sent',
    'retry', 'failed', 'outbox', or why nothing was done ('busy', 'not-due', 'missing', or
    the row's status when it is no longer queued)."""
    session = db.session
    org_id = tenant_of_row(session, Notification, notification_id)
    if org_id is None:
        return "missing"
    with audit.acting_as(audit.AuditContext(actor_label="system:notify", org_id=org_id)):
        row = _locked(notification_id)
        if row is None:
            session.rollback()
            return "busy"
        if row.status != "queued":
            session.rollback()
            return row.status
        if row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(seconds=1):
            session.rollback()
            return "not-due"
        client = clients().get(row.channel)
        if client is None:  # the channel's settings were removed since: keep it visible instead
            row.status, row.last_error = "outbox", f"{row.channel} is not configured"
            session.commit()
            return "outbox"
        # Durable before the side effect: a second job (or a crash after the provider answered)
        # finds 'sending' and never sends again.
        row.status, row.attempts = "sending", row.attempts + 1
        session.commit()
        try:
            message_id = _send(client, row)
        except ProviderError as err:
            session.rollback()
            return _failed(notification_id, err)
        except Exception as err:  # a bug or bad data: keep it on the row, try again later
            session.rollback()
            log.exception("notification %s: unexpected error", notification_id)
            return _failed(notification_id, ProviderError(f"{type(err).__name__}", retryable=True))
        row = session.get(Notification, notification_id, with_for_update=True, populate_existing=True)
        if row.status == "sending":  # a webhook may already have moved it on
            row.status = "sent"
        row.provider_message_id, row.sent_at, row.last_error = message_id, utcnow(), ""
        session.commit()
        return "sent"


def _failed(notification_id: int, err: ProviderError) -> str:
    session = db.session
    row = session.get(Notification, notification_id, with_for_update=True, populate_existing=True)
    row.last_error = err.message[:2000]
    if err.retryable and row.attempts < MAX_ATTEMPTS:
        delay = backoff(row.attempts)
        row.status, row.next_attempt_at = "queued", utcnow() + delay
        session.commit()
        try:
            queue_job(notification_id, delay=delay)
        except Exception:
            log.warning("notification %s retry not scheduled; the sweep will pick it up", notification_id)
        log.info("notification %s attempt %s failed; retry in %ss", notification_id, row.attempts,
                 int(delay.total_seconds()))
        return "retry"
    row.status, row.failed_at, row.next_attempt_at = "failed", utcnow(), None
    audit.record("notification.failed", entity_type="notification", entity_id=row.id,
                 after={"channel": row.channel, "event": row.event, "attempts": row.attempts,
                        "error": row.last_error[:300]})
    session.commit()
    log.info("notification %s failed permanently after %s attempts", notification_id, row.attempts)
    return "failed"


def _values(row: Notification, names: tuple[str, ...]) -> list[str]:
    payload = dict(row.payload)
    if "link" in names and "link" not in payload:
        report = db.session.get(Report, payload["report_id"])
        payload["link"] = patient_link(report)
    return [str(payload.get(name, "")) for name in names]


def _report_pdf(row: Notification) -> tuple[str, bytes]:
    from app.services import reports

    report = reports.with_pdf(int(row.payload["report_id"]))
    if report is None or not report.issued or report.pdf is None:
        raise ProviderError("the report's PDF is not available", retryable=False)
    return f"Report-{report.number.replace('/', '-')}-v{report.version}.pdf", report.pdf


def _send(client: Any, row: Notification) -> str:
    template = TEMPLATES[row.event]
    if row.channel == "whatsapp":
        if row.payload.get("free_text"):
            # Free-form only inside the 24-hour customer-service window (india.md §4.2).
            if not window_open(row.recipient):
                raise ProviderError("outside the 24-hour WhatsApp window: only approved templates may be sent "
                                    "(Meta error 131047)", retryable=False)
            return client.send_text(row.recipient, row.payload["free_text"])
        document = None
        if template.document:
            filename, pdf = _report_pdf(row)
            document = {"id": client.upload_media(pdf, filename=filename), "filename": filename}
        values = _values(row, template.fields)
        return client.send_template(row.recipient, name=template.whatsapp,
                                    language=current_app.config["LIS_WHATSAPP_LANGUAGE"], body_params=values,
                                    document=document,
                                    button_params=values[:1] if template.otp_button else None)
    if row.channel == "sms":
        text = render_sms(template.sms, _values(row, template.sms_fields))
        return client.send(row.recipient, template_id=_sms_template_id(row.event), template_text=template.sms,
                           text=text)
    if row.channel == "email":
        payload = dict(row.payload)
        attachments = []
        if template.document:
            filename, pdf = _report_pdf(row)
            attachments.append((filename, pdf, "application/pdf"))
        return client.send(row.recipient, subject=template.subject.format_map(_Blank(payload)),
                           text=template.email.format_map(_Blank(payload)), attachments=attachments)
    raise ProviderError(f"unknown channel {row.channel}", retryable=False)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def window_open(recipient: str) -> bool:
    seen = db.session.get(WhatsAppWindow, recipient.lstrip("+"))
    return seen is not None and seen.last_inbound_at > utcnow() - WINDOW


# ---------------------------------------------------------------- sweep (periodic)

def sweep() -> dict[str, int]:
    """Periodic (workers/schedule.py): queue every due 'queued' row (a lost or never-queued
    job), and mark failed the rows a killed worker left 'sending' (never re-sent blindly)."""
    session = db.session
    use_tenant(session, None)
    now = utcnow()
    # Overdue by a minute: a fresh row's own job (or its enqueue_in retry) is given time to run first.
    due = session.execute(select(Notification.id).where(Notification.status == "queued",
                                                        Notification.next_attempt_at <= now - SWEEP_GRACE)
                          .order_by(Notification.next_attempt_at).limit(1000)
                          .execution_options(all_tenants=True)).scalars().all()
    stuck = session.execute(select(Notification.id, Notification.org_id)
                            .where(Notification.status == "sending", Notification.updated_at < now - STUCK_SENDING)
                            .limit(500).execution_options(all_tenants=True)).all()
    session.rollback()
    for notification_id in due:
        queue_job(notification_id)
    for notification_id, org_id in stuck:
        use_tenant(session, org_id)
        with audit.acting_as(audit.AuditContext(actor_label="system:notify", org_id=org_id)):
            row = _locked(notification_id)
            if row is not None and row.status == "sending":
                row.status, row.failed_at = "failed", now
                row.last_error = "interrupted while sending: the provider may have it; check before retrying"
                audit.record("notification.failed", entity_type="notification", entity_id=row.id,
                             after={"error": row.last_error})
            session.commit()
    use_tenant(session, None)
    return {"queued": len(due), "interrupted": len(stuck)}


# ---------------------------------------------------------------- admin

def retry(row: Notification) -> Notification:
    """A failed or outbox message is tried again (channel chosen afresh for the outbox).
    Audited; queued after the caller commits."""
    if row.status not in ("failed", "outbox"):
        raise NotificationRefused("Only a failed message or one in the outbox can be sent again.")
    before = {"status": row.status, "channel": row.channel, "attempts": row.attempts, "last_error": row.last_error}
    if row.channel == "outbox" or clients().get(row.channel) is None:
        template = TEMPLATES[row.event]
        is_email = "@" in row.recipient
        choice = _choose(template, None if is_email else row.recipient, row.recipient if is_email else None)
        if choice is None or choice[0] == "outbox":
            raise NotificationRefused("No channel that can reach this recipient is configured yet.")
        row.channel, row.template = choice[0], _template_name(template, choice[0])
    row.status, row.attempts, row.next_attempt_at, row.failed_at = "queued", 0, utcnow(), None
    audit.record("notification.retried", entity_type="notification", entity_id=row.id, before=before,
                 after={"status": row.status, "channel": row.channel})
    db.session.flush()
    _after_commit.add(row.id)
    return row


def preview(row: Notification) -> str:
    """What the message says, for the admin (the outbox shows what would have been sent).
    Secrets (an OTP) stay hidden; a report's download link is made at sending time."""
    template = TEMPLATES.get(row.event)
    if template is None:
        return ""
    payload = _Blank(shown_payload(row))
    if payload.get("free_text"):
        return str(payload["free_text"])
    if row.channel == "sms":
        return render_sms(template.sms, [str(payload.get(name, "") or f"<{name}>") for name in template.sms_fields])
    if row.channel == "whatsapp":
        params = ", ".join(str(payload.get(name, "")) for name in template.fields)
        return f"Template {template.whatsapp}({params})" + (" with the report PDF" if template.document else "")
    return template.email.format_map(payload)


def mask(recipient: str) -> str:
    if "@" in recipient:
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"{recipient[:3]}•••••{recipient[-3:]}" if len(recipient) > 6 else "•••"


def shown_payload(row: Notification) -> dict[str, Any]:
    """The payload as the admin sees it: secrets (an OTP) hidden."""
    secret = TEMPLATES[row.event].secret_fields if row.event in TEMPLATES else ()
    return {k: ("••••" if k in secret else v) for k, v in (row.payload or {}).items()}


# ---------------------------------------------------------------- WhatsApp webhooks

RANK = {"queued": 0, "sending": 0, "outbox": 0, "sent": 1, "delivered": 2, "read": 3}


def verify_whatsapp(raw: bytes, header: str | None) -> bool:
    return wa.verify_signature(current_app.config["LIS_WHATSAPP_APP_SECRET"], raw, header)


def record_whatsapp_webhook(raw: bytes) -> tuple[str, int]:
    """Store a verified delivery (durable first; a replay of the same body is recognised and
    changes nothing), then apply it. Returns (outcome, delivery id)."""
    session = db.session
    use_tenant(session, None)
    digest = hashlib.sha256(raw).hexdigest()
    seen = session.execute(select(WebhookDelivery.id).where(WebhookDelivery.provider == "whatsapp",
                                                            WebhookDelivery.body_sha256 == digest)).scalar()
    if seen is not None:
        session.rollback()
        return "duplicate", seen
    delivery = WebhookDelivery(provider="whatsapp", body=raw, body_sha256=digest, outcome="stored")
    try:
        with session.begin_nested():
            session.add(delivery)
            session.flush([delivery])
        session.commit()
    except IntegrityError:
        session.rollback()
        return "duplicate", 0
    outcome = apply_whatsapp(delivery.id)
    return outcome, delivery.id


REAPPLY_TIMES = 3  # a status may arrive before the send's answer stored the message id


def apply_whatsapp(delivery_id: int, *, attempt: int = 0) -> str:
    """Apply a stored delivery. Statuses naming a message id not known yet (the webhook beat
    the provider's answer to our send) are applied again later, up to REAPPLY_TIMES: applying
    is idempotent (statuses only move forward)."""
    session = db.session
    use_tenant(session, None)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return "missing"
    try:
        payload = json.loads(delivery.body)
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        delivery.outcome = "unreadable: not a JSON object"
        session.commit()
        return "unreadable"
    counts = {"applied": 0, "ignored": 0, "unknown": 0, "inbound": 0}
    for message in wa.inbound_messages(payload):
        sender, ts = str(message.get("from", ""))[:20], _ts(message.get("timestamp"))
        if sender and ts is not None:
            window = session.get(WhatsAppWindow, sender, with_for_update=True)
            if window is None:
                session.add(WhatsAppWindow(wa_id=sender, last_inbound_at=ts))
            elif ts > window.last_inbound_at:
                window.last_inbound_at = ts
            counts["inbound"] += 1
    for status in wa.statuses(payload):
        counts[_apply_status(status)] += 1
    use_tenant(session, None)
    delivery = session.get(WebhookDelivery, delivery_id)
    delivery.outcome = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing to apply"
    session.commit()
    if counts["unknown"] and attempt < REAPPLY_TIMES:
        try:
            _queue().enqueue_in(timedelta(seconds=BACKOFF_BASE * (attempt + 1)), "workers.notify.reapply_webhook",
                                delivery_id, attempt + 1, job_timeout=60, result_ttl=600,
                                description=f"reapply webhook delivery {delivery_id}")
        except Exception:
            log.warning("webhook delivery %s not scheduled again", delivery_id)
    return "applied"


def _ts(value: Any):  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _apply_status(status: dict[str, Any]) -> str:
    session = db.session
    wamid, new = str(status.get("id", ""))[:128], str(status.get("status", ""))
    if not wamid or new not in ("sent", "delivered", "read", "failed"):
        return "ignored"
    use_tenant(session, None)
    row = session.execute(select(Notification).where(Notification.provider_message_id == wamid)
                          .with_for_update().execution_options(all_tenants=True)).scalar_one_or_none()
    if row is None:
        return "unknown"
    use_tenant(session, row.org_id)
    when = _ts(status.get("timestamp")) or utcnow()
    if new == "failed":
        if row.status not in ("sending", "sent"):
            return "ignored"
        errors = status.get("errors") or [{}]
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        row.status, row.failed_at = "failed", when
        row.last_error = f"WhatsApp {first.get('code', '')} {first.get('title', '')}".strip()[:2000]
        return "applied"
    if RANK.get(row.status, 99) >= RANK[new]:  # never backwards: read stays read (order is not guaranteed)
        _stamp(row, new, when)
        return "ignored"
    row.status = new
    _stamp(row, new, when)
    return "applied"


def _stamp(row: Notification, new: str, when: Any) -> None:
    if new in ("sent", "delivered", "read") and row.sent_at is None:
        row.sent_at = when
    if new in ("delivered", "read") and row.delivered_at is None:
        row.delivered_at = when  # "read" implies delivered (india.md §4.2)
    if new == "read" and row.read_at is None:
        row.read_at = when
