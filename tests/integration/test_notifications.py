"""Notifications against local servers that speak each provider's API shape: a Graph API
(WhatsApp Cloud API: media upload, template messages), a DLT SMS gateway (the JSON shape
documented in app/integrations/sms.py) and an SMTP server. Real PostgreSQL and Redis; the
clients are the real ones, only the far end is local."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import socketserver
import threading
import time
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from app import audit, security
from app.extensions import redis_client
from app.integrations import sms as sms_client
from app.models import AuditEvent, Notification, Report, WebhookDelivery
from app.models.base import utcnow
from app.services import notifications
from tests.factories import PASSWORD

PDF = b"%PDF-1.7\n% a tiny stand-in for a rendered report\n%%EOF\n"
APP_SECRET = "test-app-secret"


# ---------------------------------------------------------------- local provider servers

class _Recorder(BaseHTTPRequestHandler):
    server: "FakeServer"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, answer = self.server.answer(self.path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeServer(ThreadingHTTPServer):
    """Answers from `script` (a list of (status, json)) first, then from `default`."""

    daemon_threads = True

    def __init__(self, default):  # type: ignore[no-untyped-def]
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.default = default
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path, body):  # type: ignore[no-untyped-def]
        return self.script.pop(0) if self.script else self.default(path, body)


def graph_answer(path: str, body: bytes):  # type: ignore[no-untyped-def]
    """What the Graph API answers (india.md §4.2): a media id, or the wamid of a message."""
    if path.endswith("/media"):
        return 200, {"id": "1037543291543636"}
    to = json.loads(body)["to"]
    return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                 "messages": [{"id": f"wamid.HBgM{hashlib.sha1(body).hexdigest()[:20].upper()}"}]}


class SmtpHandler(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def handle(self):  # type: ignore[no-untyped-def]
        self.wfile.write(b"220 localhost test SMTP\r\n")
        envelope = {"to": []}
        while line := self.rfile.readline():
            cmd = line.decode("ascii", "replace").strip()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250-localhost\r\n250 8BITMIME\r\n" if verb == "EHLO" else b"250 localhost\r\n")
            elif verb == "MAIL":
                envelope["from"] = cmd
                self.wfile.write(b"250 OK\r\n")
            elif verb == "RCPT":
                envelope["to"].append(re.search(r"<([^>]*)>", cmd).group(1))
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.messages.append({**envelope, "data": b"".join(data)})
                self.wfile.write(b"250 OK queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 Bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


class FakeSmtp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):  # type: ignore[no-untyped-def]
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.messages: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def graph(app, monkeypatch):
    server = FakeServer(graph_answer)
    for key, value in {"LIS_WHATSAPP_API_URL": server.url + "/v21.0", "LIS_WHATSAPP_TOKEN": "EAAG-test-token",
                       "LIS_WHATSAPP_PHONE_ID": "106540352242922", "LIS_WHATSAPP_APP_SECRET": APP_SECRET,
                       "LIS_WHATSAPP_VERIFY_TOKEN": "hub-verify-me", "LIS_NOTIFY_TIMEOUT": 5}.items():
        monkeypatch.setitem(app.config, key, value)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def gateway(app, monkeypatch):
    server = FakeServer(lambda path, body: (200, {"id": f"sms-{hashlib.sha1(body).hexdigest()[:12]}",
                                                  "status": "accepted"}))
    for key, value in {"LIS_SMS_URL": server.url + "/v1/sms", "LIS_SMS_API_KEY": "gw-key",
                       "LIS_SMS_ENTITY_ID": "1201159876543210987", "LIS_SMS_SENDER": "LABRPT",
                       "LIS_SMS_TEMPLATE_IDS": {"report_released": "1207161234567890123",
                                                "otp": "1207161234567890124",
                                                "payment_received": "1207161234567890125",
                                                "critical_value": "1207161234567890126"},
                       "LIS_NOTIFY_TIMEOUT": 5}.items():
        monkeypatch.setitem(app.config, key, value)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp(app, monkeypatch):
    server = FakeSmtp()
    for key, value in {"LIS_SMTP_HOST": "127.0.0.1", "LIS_SMTP_PORT": server.server_address[1],
                       "LIS_SMTP_STARTTLS": False, "LIS_SMTP_FROM": "reports@lab.example.in"}.items():
        monkeypatch.setitem(app.config, key, value)
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- data

@pytest.fixture
def lab(factory, session):
    org = factory.org()
    cat = factory.catalogue(org)
    admin = factory.user(org, "admin")
    token = audit.set_context(audit.AuditContext(actor_label="test", org_id=org.id))
    yield {"org": org, "admin": admin, "referrer": cat["referrer"]}
    audit._context.reset(token)


def issued_report(lab, factory, session, *, mobile="9876543210", email=None, referrer=False) -> Report:
    """An issued report row (the PDF bytes stand in for a rendered one)."""
    patient = factory.patient(lab["org"], name="Asha Verma", mobile=mobile)
    security.use_tenant(session, lab["org"].id)
    patient.email = email
    order = factory.order(lab["org"], ["HB"], patient=patient)
    security.use_tenant(session, lab["org"].id)
    if referrer:
        order.referrer = lab["referrer"]
    report = Report(order_id=order.id, version=1, number="R/2026/000123", status="final", pdf=PDF,
                    sha256=hashlib.sha256(PDF).hexdigest(), size=len(PDF), pages=1, token=secrets.token_urlsafe(24),
                    released_at=utcnow(), result_ids=[], departments_pending=[])
    session.add(report)
    session.flush()
    return report


def rows(session, org_id) -> list[Notification]:
    security.use_tenant(session, org_id)
    session.expire_all()  # requests and jobs changed rows through their own sessions
    found = session.execute(select(Notification).order_by(Notification.id)).scalars().all()
    # End the test session's savepoint: a request or job rolling back its own work must not
    # take back what another session committed after this read.
    session.commit()
    return found


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def status_webhook(wamid: str, status: str, ts: int, *, errors=None) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "918000000000",
                                                           "phone_number_id": "106540352242922"},
             "statuses": [{"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": "919876543210",
                           **({"errors": errors} if errors else {})}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}
                      ).encode()


# ---------------------------------------------------------------- tests

def test_unconfigured_channels_put_messages_in_the_visible_outbox(lab, factory, session):
    report = issued_report(lab, factory, session, referrer=True)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)  # the referrer has not opted in
    assert (row.channel, row.status, row.event) == ("outbox", "outbox", "report_released")
    assert row.idempotency_key == f"report:{report.id}:patient" and row.recipient == "+919876543210"
    assert Queue("notify", connection=redis_client()).count == 0  # nothing to send, nothing queued
    assert notifications.deliver(row.id) == "outbox"


def test_released_report_goes_by_whatsapp_template_with_the_pdf_as_document_header(lab, factory, session, graph):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    notifications.report_released(report)  # the event fired twice: one row
    session.commit()
    [row] = rows(session, lab["org"].id)
    assert (row.channel, row.status, row.template) == ("whatsapp", "queued", "lab_report_ready")
    assert Queue("notify", connection=redis_client()).count == 1  # queued after the commit
    assert notifications.deliver(row.id) == "sent"
    assert notifications.deliver(row.id) == "sent"  # run twice: sends once
    media, message = graph.requests
    assert len(graph.requests) == 2
    assert media["path"] == "/v21.0/106540352242922/media"
    assert media["headers"]["Authorization"] == "Bearer EAAG-test-token"
    assert b'name="messaging_product"\r\n\r\nwhatsapp' in media["body"] and PDF in media["body"]
    assert message["path"] == "/v21.0/106540352242922/messages"
    body = json.loads(message["body"])
    assert body["messaging_product"] == "whatsapp" and body["recipient_type"] == "individual"
    assert body["to"] == "919876543210" and body["type"] == "template"
    template = body["template"]
    assert template["name"] == "lab_report_ready" and template["language"] == {"code": "en"}
    header, text = template["components"]
    assert header == {"type": "header", "parameters": [{"type": "document", "document": {
        "id": "1037543291543636", "filename": "Report-R-2026-000123-v1.pdf"}}]}
    assert [p["text"] for p in text["parameters"]] == ["Asha Verma", "R/2026/000123", lab["org"].display_name]
    row = rows(session, lab["org"].id)[0]
    assert row.status == "sent" and row.provider_message_id.startswith("wamid.") and row.attempts == 1


def test_a_provider_500_is_retried_with_backoff_then_sent(lab, factory, session, graph):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    graph.script = [(500, {"error": {"message": "Service temporarily unavailable", "code": 131016}})]
    before = utcnow()
    assert notifications.deliver(row.id) == "retry"
    row = rows(session, lab["org"].id)[0]
    assert (row.status, row.attempts) == ("queued", 1) and "131016" in row.last_error
    assert timedelta(seconds=29) < row.next_attempt_at - before < timedelta(seconds=35)
    assert len(ScheduledJobRegistry("notify", connection=redis_client())) == 1  # enqueue_in for the retry
    calls = len(graph.requests)
    assert notifications.deliver(row.id) == "not-due" and len(graph.requests) == calls
    assert notifications.backoff(1) == timedelta(seconds=30) and notifications.backoff(5) == timedelta(seconds=480)
    security.use_tenant(session, lab["org"].id)
    row.next_attempt_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert notifications.sweep()["queued"] == 0  # due just now: its own enqueue_in job runs it
    security.use_tenant(session, lab["org"].id)
    session.get(Notification, row.id).next_attempt_at = utcnow() - timedelta(minutes=2)
    session.commit()
    assert notifications.sweep()["queued"] == 1  # a due row whose job was lost is queued again
    assert notifications.deliver(row.id) == "sent"
    assert rows(session, lab["org"].id)[0].attempts == 2


def test_permanent_failure_after_the_last_attempt_and_at_once_on_a_refusal(lab, factory, session, graph):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    graph.default = lambda path, body: (503, {"error": {"message": "down", "code": 131000}})
    outcomes = []
    for _ in range(notifications.MAX_ATTEMPTS):
        security.use_tenant(session, lab["org"].id)
        session.get(Notification, row.id).next_attempt_at = utcnow() - timedelta(seconds=1)
        session.commit()
        outcomes.append(notifications.deliver(row.id))
    assert outcomes == ["retry"] * (notifications.MAX_ATTEMPTS - 1) + ["failed"]
    row = rows(session, lab["org"].id)[0]
    assert (row.status, row.attempts) == ("failed", notifications.MAX_ATTEMPTS) and row.failed_at is not None
    # A 4xx refusal (template not approved) fails at once: sending it again would fail again.
    graph.default = graph_answer
    graph.script = [(200, {"id": "m1"}), (400, {"error": {"message": "Template name does not exist", "code": 132001}})]
    other = issued_report(lab, factory, session, mobile="9876500000")
    notifications.report_released(other)
    session.commit()
    newest = rows(session, lab["org"].id)[-1]
    assert notifications.deliver(newest.id) == "failed"
    assert "132001" in rows(session, lab["org"].id)[-1].last_error


def test_sms_carries_entity_header_and_template_and_its_link_opens_the_pdf(lab, factory, session, gateway, client,
                                                                          app, monkeypatch):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    assert (row.channel, row.template) == ("sms", "1207161234567890123")
    assert notifications.deliver(row.id) == "sent"
    [req] = gateway.requests
    assert req["path"] == "/v1/sms" and req["headers"]["Authorization"] == "Bearer gw-key"
    body = json.loads(req["body"])
    assert {k: body[k] for k in ("to", "sender", "entity_id", "template_id")} == {
        "to": "+919876543210", "sender": "LABRPT", "entity_id": "1201159876543210987",
        "template_id": "1207161234567890123"}
    registered = notifications.TEMPLATES["report_released"].sms
    assert sms_client.matches_template(registered, body["text"])
    assert body["text"].startswith("Dear Asha Verma, your lab report R/2026/000123 from ")
    link = body["text"].rsplit(" ", 1)[1]
    assert link.startswith(app.config["LIS_PUBLIC_URL"] + "/r/")
    path = link[len(app.config["LIS_PUBLIC_URL"]):]
    response = client.get(path)
    assert response.status_code == 200 and response.data == PDF and response.mimetype == "application/pdf"
    assert client.get(path[:-3] + "xyz").status_code == 404
    monkeypatch.setitem(app.config, "LIS_PATIENT_LINK_DAYS", 0)
    time.sleep(1.1)
    assert client.get(path).status_code == 410  # expired


def test_sms_text_must_equal_the_registered_template():
    template = "Dear {#var#}, your report {#var#} is ready."
    assert sms_client.render(template, ["Asha", "R1"]) == "Dear Asha, your report R1 is ready."
    assert sms_client.matches_template(template, "Dear Asha, your report R1 is ready.")
    assert not sms_client.matches_template(template, "Dear Asha, your report R1 is ready now!")
    with pytest.raises(sms_client.ProviderError):
        sms_client.render(template, ["only one"])


def test_email_by_smtp_with_the_report_attached(lab, factory, session, smtp):
    report = issued_report(lab, factory, session, mobile=None, email="asha@example.in")
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    assert row.channel == "email"
    assert notifications.deliver(row.id) == "sent"
    [mail] = smtp.messages
    assert mail["to"] == ["asha@example.in"]
    message = message_from_bytes(mail["data"], policy=default_policy)
    assert message["Subject"] == "Your laboratory report R/2026/000123"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "Report-R-2026-000123-v1.pdf" and attachment.get_content() == PDF
    assert rows(session, lab["org"].id)[0].provider_message_id == message["Message-ID"]


def test_referrer_gets_reports_only_when_opted_in(lab, factory, session, gateway):
    referrer = lab["referrer"]
    security.use_tenant(session, lab["org"].id)
    referrer.phone = "+919800000001"
    report = issued_report(lab, factory, session, referrer=True)
    notifications.report_released(report)
    session.commit()
    assert [r.idempotency_key for r in rows(session, lab["org"].id)] == [f"report:{report.id}:patient"]
    security.use_tenant(session, lab["org"].id)
    referrer.notify_reports = True
    amended = issued_report(lab, factory, session, referrer=True)
    notifications.report_released(amended)
    session.commit()
    keys = [r.idempotency_key for r in rows(session, lab["org"].id)][1:]
    assert keys == [f"report:{amended.id}:patient", f"report:{amended.id}:referrer"]


def test_a_critical_value_goes_to_the_referrer(session, factory, gateway):
    from app.models import Referrer
    from app.services import orders, results, samples

    org = factory.org()
    factory.standard_catalogue(org)
    security.use_tenant(session, org.id)
    referrer = Referrer(name="Dr. Kavita Menon", kind="doctor", phone="+919800000001")
    session.add(referrer)
    session.commit()
    patient = factory.patient(org, name="Asha Verma")
    security.use_tenant(session, org.id)
    from app.models import Branch

    branch = session.execute(select(Branch).where(Branch.code == "MAIN")).scalar_one()
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        order, _ = orders.create_order(patient, branch, orders.OrderRequest(codes=["HB"], referrer_id=referrer.id),
                                       created_by_id=None, discount_limit_percent=100)
        for sample in order.samples:
            samples.receive(sample, user_id=None)
        ot = next(t for t in order.tests if t.test.code == "HB")
        result = results.save(ot, results.Entry(raw="4.1"), user_id=None)
        assert result.critical
        row = notifications.critical_value(result)
        assert notifications.critical_value(result).id == row.id  # asked twice: one message
    session.commit()
    assert (row.event, row.recipient, row.channel) == ("critical_value", "+919800000001", "sms")
    assert notifications.deliver(row.id) == "sent"
    body = json.loads(gateway.requests[-1]["body"])
    assert body["text"] == (f"Dear Dr. Kavita Menon, critical result for Asha Verma: Haemoglobin 4.1 g/dL. "
                            f"Please contact {org.display_name}.")
    assert body["template_id"] == "1207161234567890126"


def test_payment_received_by_email(lab, factory, session, smtp):
    from app.services import billing, orders

    patient = factory.patient(lab["org"], name="Asha Verma", mobile="9876543210")
    security.use_tenant(session, lab["org"].id)
    patient.email = "asha@example.in"
    order = factory.order(lab["org"], ["HB"], patient=patient)
    security.use_tenant(session, lab["org"].id)
    [bill] = orders.bills_of(order)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=lab["org"].id)):
        payment = billing.record_payment(bill, mode="cash", amount_paise=5050, reference=None, received_by_id=None)
    session.commit()
    [row] = rows(session, lab["org"].id)  # queued by record_payment itself
    assert row.idempotency_key == f"payment:{payment.id}:patient"
    assert notifications.payment_received(payment).id == row.id
    assert (row.channel, row.event) == ("email", "payment_received")  # WhatsApp and SMS unconfigured
    assert notifications.deliver(row.id) == "sent"
    message = message_from_bytes(smtp.messages[0]["data"], policy=default_policy)
    assert message["Subject"] == f"Payment received: bill {bill.number}"
    assert "We have received Rs 50.50 against bill" in message.get_content()


def test_a_messaging_failure_never_stops_the_report(lab, factory, session, monkeypatch):
    report = issued_report(lab, factory, session)
    session.commit()

    def broken(*args, **kwargs):
        from sqlalchemy import text

        session.execute(text("SELECT 1/0"))  # a database error inside the notification code

    monkeypatch.setattr(notifications, "_choose", broken)
    notifications.report_released(report)  # logged, not raised; the outer transaction survives
    security.use_tenant(session, lab["org"].id)
    report.amendment_reason = "still writable"
    session.commit()
    assert rows(session, lab["org"].id) == []


def test_otp_goes_by_sms_and_is_hidden_from_the_admin(lab, session, gateway):
    security.use_tenant(session, lab["org"].id)
    row = notifications.otp("+919876543210", "482913", key="login-1", org_id=lab["org"].id)
    session.commit()
    assert notifications.deliver(row.id) == "sent"
    text = json.loads(gateway.requests[0]["body"])["text"]
    assert text.startswith("482913 is your OTP")
    assert notifications.shown_payload(row)["code"] == "••••"
    assert "482913" not in notifications.preview(row) and notifications.preview(row).startswith("•••• is your OTP")


def test_released_report_hook_queues_the_patient_message(session, factory, lab):
    """The one line in reports.render_report: a version that turns final queues the message."""
    from app.services import reports, results, verification

    org = factory.org()
    factory.standard_catalogue(org)
    doc = factory.user(org, "pathologist")
    security.use_tenant(session, org.id)
    order = factory.order(org, ["HB"])
    security.use_tenant(session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="doc", actor_user_id=doc.id, org_id=org.id)):
        ot = next(t for t in order.tests if t.test.code == "HB")
        results.save(ot, results.Entry(raw="13.5"), user_id=None)
        current = results.currents_for([ot.id])
        verification.verify(order, {r.id: r.version for r in current.values()}, user=doc)
        verification.release(order, user=doc)
        session.commit()
        report = reports.latest(order)
        assert reports.render_report(report.id) == "final"
    [row] = rows(session, org.id)
    assert row.idempotency_key == f"report:{report.id}:patient" and row.status == "outbox"


# ---------------------------------------------------------------- webhooks

def _sent(lab, factory, session, graph) -> Notification:
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    assert notifications.deliver(row.id) == "sent"
    return rows(session, lab["org"].id)[0]


def _post(client, raw: bytes, signature: str | None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhooks/whatsapp", data=raw, headers=headers)


def _deliveries(session) -> int:
    security.use_tenant(session, None)
    return session.execute(select(func.count(WebhookDelivery.id))).scalar_one()


def test_webhook_handshake(client, graph):
    ok = client.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=hub-verify-me&hub.challenge=1158201444")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444"
    assert client.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1").status_code == 403


def test_signed_status_webhook_is_stored_and_applied_replays_change_nothing(lab, factory, session, graph, client):
    row = _sent(lab, factory, session, graph)
    raw = status_webhook(row.provider_message_id, "delivered", int(time.time()))
    response = _post(client, raw, sign(raw))
    assert response.status_code == 200 and response.get_json()["outcome"] == "applied"
    assert rows(session, lab["org"].id)[0].status == "delivered"
    replay = _post(client, raw, sign(raw))
    assert replay.status_code == 200 and replay.get_json()["outcome"] == "duplicate"
    assert _deliveries(session) == 1


def test_tampered_or_unsigned_webhook_is_refused_and_changes_nothing(lab, factory, session, graph, client):
    row = _sent(lab, factory, session, graph)
    raw = status_webhook(row.provider_message_id, "read", int(time.time()))
    signature = sign(raw)
    tampered = raw.replace(b'"read"', b'"failed"')
    for body, sig in ((tampered, signature), (raw, None), (raw, sign(raw, "another-secret")), (raw, "sha256=00")):
        response = _post(client, body, sig)
        assert response.status_code == 403
        assert "signature" in response.get_json()["detail"]
    assert _deliveries(session) == 0
    assert rows(session, lab["org"].id)[0].status == "sent"


def test_statuses_out_of_order_never_go_backwards(lab, factory, session, graph, client):
    row = _sent(lab, factory, session, graph)
    now = int(time.time())
    undeliverable = [{"code": 131026, "title": "Message undeliverable"}]
    for status, ts in (("read", now + 5), ("delivered", now + 2), ("sent", now + 1), ("failed", now + 6)):
        raw = status_webhook(row.provider_message_id, status, ts, errors=undeliverable if status == "failed" else None)
        assert _post(client, raw, sign(raw)).status_code == 200
    row = rows(session, lab["org"].id)[0]
    assert row.status == "read" and row.read_at is not None and row.delivered_at is not None
    # A failure for a message still only 'sent' is recorded.
    other = issued_report(lab, factory, session, mobile="9876500001")
    notifications.report_released(other)
    session.commit()
    second = rows(session, lab["org"].id)[-1]
    notifications.deliver(second.id)
    second = rows(session, lab["org"].id)[-1]
    raw = status_webhook(second.provider_message_id, "failed", now, errors=undeliverable)
    assert _post(client, raw, sign(raw)).status_code == 200
    second = rows(session, lab["org"].id)[-1]
    assert second.status == "failed" and "131026" in second.last_error


def test_a_status_that_beats_the_send_answer_is_applied_again_later(lab, factory, session, graph, client):
    row = _sent(lab, factory, session, graph)
    raw = status_webhook("wamid.NOT-STORED-YET", "delivered", int(time.time()))
    response = _post(client, raw, sign(raw))
    assert response.status_code == 200
    registry = ScheduledJobRegistry("notify", connection=redis_client())
    assert len(registry) == 1
    security.use_tenant(session, lab["org"].id)
    session.get(Notification, row.id).provider_message_id = "wamid.NOT-STORED-YET"
    session.commit()
    from workers import notify

    assert notify.reapply_webhook(response.get_json()["delivery"], 1) == "applied"
    assert rows(session, lab["org"].id)[0].status == "delivered"


def test_free_form_only_inside_the_24_hour_window(lab, session, graph, client):
    security.use_tenant(session, lab["org"].id)
    row = notifications.enqueue("payment_received", key="free-1", mobile="+919876543210",
                                payload={"free_text": "Your sample was collected."})
    session.commit()
    assert notifications.deliver(row.id) == "failed"
    assert "24-hour" in rows(session, lab["org"].id)[0].last_error and graph.requests == []
    inbound = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "messages": [
            {"from": "919876543210", "id": "wamid.in1", "timestamp": str(int(time.time())), "type": "text",
             "text": {"body": "hi"}}]}}]}]}).encode()
    assert _post(client, inbound, sign(inbound)).status_code == 200
    security.use_tenant(session, lab["org"].id)
    retried = notifications.retry(session.get(Notification, row.id))
    session.commit()
    assert notifications.deliver(retried.id) == "sent"
    body = json.loads(graph.requests[-1]["body"])
    assert body["type"] == "text" and body["text"]["body"] == "Your sample was collected."


# ---------------------------------------------------------------- admin

def test_admin_message_log_detail_and_audited_retry(lab, factory, session, client, auth, app, monkeypatch):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    auth.login(lab["admin"].username, PASSWORD)
    page = client.get("/admin/notifications?status=outbox")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f"/admin/notifications/{row.id}" in html
    assert "+919876543210" not in html and "+91•••••210" in html
    assert f"/admin/notifications/{row.id}" not in client.get("/admin/notifications?status=sent").get_data(as_text=True)
    detail = client.get(f"/admin/notifications/{row.id}").get_data(as_text=True)
    assert "Asha Verma" in detail and "9876543210" not in detail and "Retry" in detail
    assert "Dear Asha Verma,\n\nYour report R/2026/000123 from" in detail  # what would have been sent
    refused = client.post_form(f"/admin/notifications/{row.id}/retry")  # still nothing configured
    assert refused.status_code == 422 and "No channel" in refused.get_data(as_text=True)
    server = FakeServer(graph_answer)
    try:
        monkeypatch.setitem(app.config, "LIS_WHATSAPP_API_URL", server.url)
        monkeypatch.setitem(app.config, "LIS_WHATSAPP_TOKEN", "tok")
        monkeypatch.setitem(app.config, "LIS_WHATSAPP_PHONE_ID", "42")
        done = client.post_form(f"/admin/notifications/{row.id}/retry")
        assert done.status_code == 303
        row = rows(session, lab["org"].id)[0]
        assert (row.channel, row.status) == ("whatsapp", "queued")
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "notification.retried")).scalar_one()
        assert event.actor_user_id == lab["admin"].id and event.before["status"] == "outbox"
        assert Queue("notify", connection=redis_client()).count == 1
        assert notifications.deliver(row.id) == "sent"
    finally:
        server.shutdown()
        server.server_close()


def test_admin_opts_a_referrer_in_to_reports(lab, session, client, auth):
    from app.models import Referrer

    auth.login(lab["admin"].username, PASSWORD)
    referrer = lab["referrer"]
    assert "notify_reports" in client.get(f"/admin/referrers/{referrer.id}").get_data(as_text=True)
    response = client.post_form(f"/admin/referrers/{referrer.id}", {
        "name": referrer.name, "kind": "doctor", "qualification": "", "phone": "98450 12345", "email": "",
        "active": "y", "notify_reports": "y"})
    assert response.status_code == 303
    security.use_tenant(session, lab["org"].id)
    session.expire_all()
    assert session.get(Referrer, referrer.id).notify_reports is True
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "referrer.updated")).scalar_one()
    assert event.after["notify_reports"] is True


def test_another_labs_admin_sees_none_of_these_messages(lab, factory, session, client, auth):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    other = factory.org()
    other_admin = factory.user(other, "admin")
    auth.login(other_admin.username, PASSWORD)
    assert f"/admin/notifications/{row.id}" not in client.get("/admin/notifications").get_data(as_text=True)
    assert client.get(f"/admin/notifications/{row.id}").status_code == 404
    assert client.post_form(f"/admin/notifications/{row.id}/retry").status_code == 404


# ---------------------------------------------------------------- workers, sweep, limits

def test_a_real_rq_worker_delivers_the_queued_message(lab, factory, session, graph):
    from rq import SimpleWorker

    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    conn = redis_client()
    SimpleWorker([Queue("notify", connection=conn)], connection=conn).work(burst=True)
    [row] = rows(session, lab["org"].id)
    assert row.status == "sent" and len(graph.requests) == 2


def test_a_row_left_sending_by_a_killed_worker_is_failed_not_resent(lab, factory, session, graph):
    report = issued_report(lab, factory, session)
    notifications.report_released(report)
    session.commit()
    [row] = rows(session, lab["org"].id)
    security.use_tenant(session, lab["org"].id)
    row.status, row.attempts = "sending", 1
    session.flush()
    session.execute(Notification.__table__.update().where(Notification.id == row.id)
                    .values(updated_at=utcnow() - timedelta(minutes=30)))
    session.commit()
    assert notifications.sweep() == {"queued": 0, "interrupted": 1}
    row = rows(session, lab["org"].id)[0]
    assert row.status == "failed" and "interrupted" in row.last_error
    assert notifications.deliver(row.id) == "failed" and graph.requests == []


def test_webhook_is_rate_limited_and_unreadable_bodies_are_kept(app, client, graph, session, monkeypatch):
    monkeypatch.setitem(app.config, "LIS_WEBHOOK_RATE_LIMIT", "2 per minute")
    raw = b"not json at all"
    first = _post(client, raw, sign(raw))
    assert first.status_code == 200 and first.get_json()["outcome"] == "unreadable"
    assert _deliveries(session) == 1
    other = b'{"object": "whatsapp_business_account", "entry": []}'
    assert _post(client, other, sign(other)).status_code == 200
    assert _post(client, other, sign(other)).status_code == 429
