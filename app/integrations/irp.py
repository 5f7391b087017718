"""An IRP / GSP client for GST e-invoicing (../shared/reference/india.md §1).

The wire shape is the NIC e-invoice API v1.03/v1.04 as GSPs expose it in plain JSON (the GSP
does the NIC payload encryption on its side):

- auth:     POST {base}/eivital/v1.04/auth
            headers client_id, client_secret, gstin; body {"UserName", "Password"}
            → {"Status": 1, "Data": {"AuthToken", "TokenExpiry": "yyyy-MM-dd HH:mm:ss" (IST)}}
- generate: POST {base}/eicore/v1.03/Invoice   body = the INV-01 v1.1 JSON
- cancel:   POST {base}/eicore/v1.03/Invoice/Cancel   body {"Irn", "CnlRsn": "1".."4", "CnlRem"}
            → Data {"Irn", "CancelDate"}
- get:      GET  {base}/eicore/v1.03/Invoice/irn/{irn}
  (all three with headers client_id, client_secret, gstin, user_name, AuthToken)

Every answer is {"Status": 1, "Data": {...}} on success (Data may arrive as a JSON string) or
{"Status": 0, "ErrorDetails": [{"ErrorCode", "ErrorMessage"}], "InfoDtls": [...]}. A generate
for a document already reported answers error 2150 "Duplicate IRN" with InfoDtls
[{"InfoCd": "DUPIRN", "Desc": {"AckNo", "AckDt", "Irn"}}]: the caller checks that Irn against
its own hash and treats it as success (a retried job after a lost answer lands here).

Errors: a network failure, 429 or 5xx is IrpError(retryable=True) — send again later; a
Status 0 / 4xx answer is IrpError(retryable=False) carrying the IRP's error list for the clerk.
An expired or refused token (401, codes 1005/1004) is renewed once and the call repeated."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
AUTH_PATH = "/eivital/v1.04/auth"
GENERATE_PATH = "/eicore/v1.03/Invoice"
CANCEL_PATH = "/eicore/v1.03/Invoice/Cancel"
GET_PATH = "/eicore/v1.03/Invoice/irn/"
DUPLICATE_IRN = "2150"
TOKEN_ERRORS = {"1005", "1004"}  # "Invalid Token" / "Header AuthToken is missing or expired"
TOKEN_MARGIN = timedelta(minutes=10)  # renew a little before the IRP's stated expiry
# Cancellation reasons of the NIC cancel API (india.md §1.5: whole IRN only, within 24 hours).
CANCEL_REASONS = {"1": "Duplicate", "2": "Data entry mistake", "3": "Order cancelled", "4": "Others"}


class IrpError(Exception):
    """`errors` is the IRP's ErrorDetails list as [{"code", "message"}], for the clerk."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 errors: list[dict[str, str]] | None = None, info: list[Any] | None = None,
                 raw: dict[str, Any] | None = None):
        super().__init__(message)
        self.message, self.retryable, self.status = message, retryable, status
        self.errors = errors or [{"code": "", "message": message}]
        self.info = info or []
        self.raw = raw or {}

    @property
    def codes(self) -> set[str]:
        return {str(e.get("code", "")) for e in self.errors}


@dataclass
class _Token:
    value: str
    expires_at: datetime


# One token per (base, user, gstin) per process, shared by every job in the worker.
_TOKENS: dict[tuple[str, str, str], _Token] = {}
_TOKEN_LOCK = threading.Lock()


def forget_tokens() -> None:
    with _TOKEN_LOCK:
        _TOKENS.clear()


@dataclass
class IrpClient:
    base_url: str
    client_id: str
    client_secret: str
    username: str
    password: str
    gstin: str
    timeout: float = 20
    _now: Any = field(default=lambda: datetime.now(IST), repr=False)

    @classmethod
    def from_config(cls, config: Any, *, gstin: str | None = None) -> "IrpClient | None":
        """None when the IRP connection is not configured: e-invoices then wait, visibly."""
        needed = ("IRP_API_BASE", "IRP_CLIENT_ID", "IRP_CLIENT_SECRET", "IRP_USERNAME", "IRP_PASSWORD")
        if not all(config.get(name) for name in needed):
            return None
        return cls(config["IRP_API_BASE"].rstrip("/"), config["IRP_CLIENT_ID"], config["IRP_CLIENT_SECRET"],
                   config["IRP_USERNAME"], config["IRP_PASSWORD"], config.get("IRP_GSTIN") or gstin or "",
                   float(config.get("LIS_PROVIDER_TIMEOUT", 20)))

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - URL from settings
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
            if status == 429 or status >= 500:
                raise IrpError(f"the IRP answered HTTP {status}; it will be tried again", retryable=True,
                               status=status) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise IrpError(f"could not reach the IRP ({type(err).__name__}); it will be tried again",
                           retryable=True) from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            if status >= 400:
                raise IrpError(f"the IRP refused the request (HTTP {status})", retryable=False,
                               status=status) from None
            raise IrpError("the IRP answered with something that is not JSON", retryable=True,
                           status=status) from None
        if not isinstance(answer, dict):
            raise IrpError("the IRP answered with an unexpected shape", retryable=True, status=status)
        if status == 401 and not answer.get("ErrorDetails"):
            answer = {"Status": 0, "ErrorDetails": [{"ErrorCode": "1005", "ErrorMessage": "Invalid Token"}]}
        if str(answer.get("Status")) == "1" and status < 400:
            data_field = answer.get("Data")
            if isinstance(data_field, str):  # some GSPs pass NIC's Data through as a JSON string
                try:
                    data_field = json.loads(data_field)
                except ValueError:
                    raise IrpError("the IRP's Data is not JSON", retryable=True, status=status) from None
            return data_field if isinstance(data_field, dict) else {}
        errors = [{"code": str(e.get("ErrorCode", "")), "message": str(e.get("ErrorMessage", ""))[:500]}
                  for e in (answer.get("ErrorDetails") or []) if isinstance(e, dict)]
        if not errors:
            errors = [{"code": "", "message": f"the IRP refused the request (HTTP {status})"}]
        message = "; ".join(f"{e['code']}: {e['message']}".strip(": ") for e in errors)
        raise IrpError(message[:1000], retryable=False, status=status, errors=errors,
                       info=answer.get("InfoDtls") or [], raw=answer)

    # ------------------------------------------------------------------ auth

    def _key(self) -> tuple[str, str, str]:
        return (self.base_url, self.username, self.gstin)

    def token(self, *, renew: bool = False) -> str:
        """The cached AuthToken, fetched again when missing, near expiry or refused."""
        with _TOKEN_LOCK:
            cached = _TOKENS.get(self._key())
            if cached and not renew and cached.expires_at - TOKEN_MARGIN > self._now():
                return cached.value
        data = self._request("POST", AUTH_PATH, {"UserName": self.username, "Password": self.password},
                             {"client_id": self.client_id, "client_secret": self.client_secret,
                              "gstin": self.gstin})
        value = str(data.get("AuthToken") or "")
        if not value:
            raise IrpError("the IRP answered the login without a token", retryable=True)
        try:
            expires = datetime.strptime(str(data.get("TokenExpiry")), "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
        except ValueError:
            expires = self._now() + timedelta(hours=1)
        with _TOKEN_LOCK:
            _TOKENS[self._key()] = _Token(value, expires)
        return value

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in (0, 1):
            headers = {"client_id": self.client_id, "client_secret": self.client_secret, "gstin": self.gstin,
                       "user_name": self.username, "AuthToken": self.token(renew=attempt == 1)}
            try:
                return self._request(method, path, body, headers)
            except IrpError as err:
                if attempt == 0 and err.codes & TOKEN_ERRORS:
                    continue  # the token expired early or was revoked: log in again, once
                raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ operations

    def generate(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """Data {AckNo, AckDt, Irn, SignedInvoice, SignedQRCode, Status}; IrpError otherwise
        (a duplicate is IrpError with code 2150 and `info` naming the existing IRN)."""
        return self._call("POST", GENERATE_PATH, invoice)

    def cancel(self, irn: str, *, reason: str, remark: str) -> dict[str, Any]:
        if reason not in CANCEL_REASONS:
            raise ValueError("cancel reason must be 1, 2, 3 or 4")
        return self._call("POST", CANCEL_PATH, {"Irn": irn, "CnlRsn": reason, "CnlRem": remark[:100]})

    def get_by_irn(self, irn: str) -> dict[str, Any]:
        return self._call("GET", GET_PATH + urllib.parse.quote(irn, safe=""))


def duplicate_details(err: IrpError) -> dict[str, str] | None:
    """For a 2150 "Duplicate IRN" answer: {"Irn", "AckNo", "AckDt"} of the IRN already there."""
    if DUPLICATE_IRN not in err.codes:
        return None
    for item in err.info:
        if not isinstance(item, dict):
            continue
        desc = item.get("Desc")
        if isinstance(desc, str):
            try:
                desc = json.loads(desc)
            except ValueError:
                continue
        if isinstance(desc, dict) and desc.get("Irn"):
            return {"Irn": str(desc["Irn"]), "AckNo": str(desc.get("AckNo", "")), "AckDt": str(desc.get("AckDt", ""))}
    return None
