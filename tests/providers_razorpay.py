"""A local server that speaks Razorpay's API shape, and signed webhook events.

Used by tests/integration/test_gateway*.py and by bench/webhook_storm.py. It answers the three
calls the LIS makes (../shared/reference/india.md §3.3), with HTTP basic auth (key id : key
secret) checked and Razorpay's error shape ({"error": {"code": "BAD_REQUEST_ERROR",
"description": …}}) for bad requests:

- POST /v1/payment_links          -> a payment link entity (plink_…, short_url)
- POST /v1/payments/qr_codes      -> a QR code entity (qr_…, image_url)
- POST /v1/payments/{id}/refund   -> a refund entity (rfnd_…)

Webhook bodies are built as Razorpay sends them ({"entity":"event","event":…,"contains":[…],
"payload":{"payment":{"entity":{…}}},"created_at":…}) and signed with a real HMAC-SHA256.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY_ID = "rzp_test_LabKey0001"
KEY_SECRET = "test_key_secret"
WEBHOOK_SECRET = "whsec_test"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """Razorpay-looking ids: a prefix and 14 alphanumerics."""
    return f"{prefix}_{secrets.token_hex(4).upper()}{next(_ids):06d}"[:len(prefix) + 15]


def _error(status: int, description: str, code: str = "BAD_REQUEST_ERROR") -> tuple[int, dict]:
    return status, {"error": {"code": code, "description": description, "source": "business", "step": "payment_initiation",
                              "reason": "input_validation_failed", "metadata": {}}}


class _Handler(BaseHTTPRequestHandler):
    server: "RazorpayServer"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
        status, answer = self.server.answer(self.path, self.headers.get("Authorization", ""), raw)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class RazorpayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key_id: str = KEY_ID, key_secret: str = KEY_SECRET):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key_id, self.key_secret = key_id, key_secret
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict]] = []  # answers to give first (errors, outages)
        self.links: dict[str, dict] = {}
        self.qr_codes: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.captured: dict[str, int] = {}  # payment id -> amount, for refund checks
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def bodies(self, path_part: str) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if path_part in r["path"]]

    def answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict]:
        expected = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if not hmac.compare_digest(authorization, expected):
            return _error(401, "Authentication failed")
        with self._lock:
            if self.script:
                return self.script.pop(0)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "The request body is not valid JSON")
        path = path.split("?")[0].rstrip("/")
        if path == "/v1/payment_links":
            return self._payment_link(body)
        if path == "/v1/payments/qr_codes":
            return self._qr_code(body)
        match = re.fullmatch(r"/v1/payments/(pay_[A-Za-z0-9]+)/refund", path)
        if match:
            return self._refund(match.group(1), body)
        return _error(404, "The requested URL was not found on the server.")

    def _payment_link(self, body: dict) -> tuple[int, dict]:
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 100:
            return _error(400, "The amount must be atleast INR 1.00")
        ref = body.get("reference_id")
        with self._lock:
            if ref and any(link["reference_id"] == ref for link in self.links.values()):
                return _error(400, f"Payment Link with reference {ref} already exists")
            if body.get("upi_link") and body.get("accept_partial"):
                return _error(400, "accept_partial is not supported for UPI Payment Links")
            link_id = new_id("plink")
            now = int(time.time())
            link = {"id": link_id, "entity": "payment_link", "amount": amount, "amount_paid": 0, "currency": "INR",
                    "accept_partial": bool(body.get("accept_partial")), "upi_link": bool(body.get("upi_link")),
                    "reference_id": ref or "", "description": body.get("description", ""),
                    "expire_by": body.get("expire_by", 0), "expired_at": 0, "cancelled_at": 0, "created_at": now,
                    "notes": body.get("notes") or [], "notify": body.get("notify") or {}, "payments": None,
                    "short_url": f"https://rzp.io/i/{link_id[6:14]}", "status": "created", "order_id": new_id("order"),
                    "user_id": ""}
            self.links[link_id] = link
        return 200, link

    def _qr_code(self, body: dict) -> tuple[int, dict]:
        if body.get("type") != "upi_qr":
            return _error(400, "The type field is invalid.")
        if body.get("fixed_amount") and not isinstance(body.get("payment_amount"), int):
            return _error(400, "The payment amount field is required when fixed amount is true.")
        if int(body.get("close_by") or 0) < time.time() + 120:
            return _error(400, "close_by should be at least 2 minutes after current time")
        qr_id = new_id("qr")
        qr = {"id": qr_id, "entity": "qr_code", "created_at": int(time.time()), "name": body.get("name"),
              "usage": body.get("usage", "multiple_use"), "type": "upi_qr",
              "image_url": f"https://rzp.io/i/{qr_id[3:11]}", "payment_amount": body.get("payment_amount"),
              "status": "active", "description": body.get("description"), "fixed_amount": bool(body.get("fixed_amount")),
              "payments_amount_received": 0, "payments_count_received": 0, "notes": body.get("notes") or [],
              "customer_id": None, "close_by": body.get("close_by"), "closed_at": None, "close_reason": None}
        with self._lock:
            self.qr_codes[qr_id] = qr
        return 200, qr

    def _refund(self, payment_id: str, body: dict) -> tuple[int, dict]:
        amount = body.get("amount")
        with self._lock:
            captured = self.captured.get(payment_id)
            if captured is None:
                return _error(400, "The id provided does not exist")
            refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_id"] == payment_id)
            if not isinstance(amount, int) or amount <= 0 or refunded + amount > captured:
                return _error(400, "The refund amount provided is greater than amount captured")
            refund = {"id": new_id("rfnd"), "entity": "refund", "amount": amount, "currency": "INR",
                      "payment_id": payment_id, "notes": body.get("notes") or [], "receipt": body.get("receipt"),
                      "acquirer_data": {"arn": None}, "created_at": int(time.time()), "batch_id": None,
                      "status": "pending", "speed_processed": "normal", "speed_requested": body.get("speed", "normal")}
            self.refunds[refund["id"]] = refund
        return 200, refund


# ---------------------------------------------------------------- webhook events

def sign(body: str, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def payment(pid: str | None = None, *, amount: int, status: str = "captured", method: str = "upi",
            order_id: str | None = None, notes: dict | None = None, rrn: str | None = None,
            vpa: str = "patient@okicici") -> dict:
    """A payment entity as Razorpay's webhooks show it."""
    pid = pid or new_id("pay")
    return {"id": pid, "entity": "payment", "amount": amount, "currency": "INR", "status": status,
            "order_id": order_id, "invoice_id": None, "international": False, "method": method,
            "amount_refunded": 0, "refund_status": None, "captured": status == "captured",
            "description": "Lab bill", "card_id": None, "bank": None, "wallet": None,
            "vpa": vpa if method == "upi" else None, "email": "patient@example.com", "contact": "+919812345678",
            "notes": notes or [], "fee": 0, "tax": 0,
            "error_code": "BAD_REQUEST_ERROR" if status == "failed" else None,
            "error_description": "Payment was unsuccessful" if status == "failed" else None,
            "acquirer_data": {"rrn": rrn or f"{secrets.randbelow(10**12):012d}"} if method == "upi" else {},
            "created_at": int(time.time())}


def event(name: str, *, payment_entity: dict | None = None, link: dict | None = None, qr: dict | None = None,
          order: dict | None = None, refund: dict | None = None, account: str = "acc_LabAccount01") -> str:
    """The body text of one webhook delivery, compact as Razorpay sends it."""
    payload: dict[str, Any] = {}
    for key, entity in (("payment_link", link), ("qr_code", qr), ("order", order), ("payment", payment_entity),
                        ("refund", refund)):
        if entity is not None:
            payload[key] = {"entity": entity}
    return json.dumps({"entity": "event", "account_id": account, "event": name, "contains": list(payload),
                       "payload": payload, "created_at": int(time.time())}, separators=(",", ":"))


def link_entity(link_id: str, *, amount: int, reference_id: str, notes: dict, status: str = "paid",
                amount_paid: int | None = None, order_id: str | None = None) -> dict:
    return {"id": link_id, "entity": "payment_link", "amount": amount, "amount_paid": amount if amount_paid is None
            else amount_paid, "currency": "INR", "reference_id": reference_id, "status": status, "notes": notes,
            "order_id": order_id, "short_url": f"https://rzp.io/i/{link_id[-8:]}", "upi_link": True}


def qr_entity(qr_id: str, *, amount: int, notes: dict) -> dict:
    return {"id": qr_id, "entity": "qr_code", "type": "upi_qr", "usage": "single_use", "fixed_amount": True,
            "payment_amount": amount, "payments_amount_received": amount, "payments_count_received": 1,
            "status": "closed", "close_reason": "paid", "notes": notes}


def order_entity(order_id: str, *, amount: int, notes: dict, receipt: str | None = None) -> dict:
    return {"id": order_id, "entity": "order", "amount": amount, "amount_paid": amount, "amount_due": 0,
            "currency": "INR", "receipt": receipt, "status": "paid", "attempts": 1, "notes": notes}


def refund_entity(refund_id: str, *, payment_id: str, amount: int, status: str = "processed") -> dict:
    return {"id": refund_id, "entity": "refund", "amount": amount, "currency": "INR", "payment_id": payment_id,
            "status": status, "notes": [], "created_at": int(time.time()), "speed_processed": "normal"}


def headers(body: str, *, event_id: str | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Razorpay-Signature": sign(body, secret),
            "X-Razorpay-Event-Id": event_id or new_id("evt")}
