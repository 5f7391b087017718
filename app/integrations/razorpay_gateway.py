"""Razorpay client: payment links, UPI QR codes, refunds, webhook signatures.

Built on the official SDK (`razorpay` 2.0.1) pointed at RAZORPAY_API_BASE, so tests and the
storm bench talk to a local server that speaks the same API. Facts from
../shared/reference/india.md §3.3:

- amounts are integers in paise everywhere;
- `POST /v1/payment_links/` (`upi_link: true` makes a UPI link; `reference_id` unique per
  link, at most 40 characters; `notes` at most 15 pairs of 256 characters);
- `POST /v1/payments/qr_codes` (`type: upi_qr`, `usage: single_use`, `fixed_amount`,
  `payment_amount`, `close_by`);
- `POST /v1/payments/{id}/refund`;
- webhooks: `X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body with the webhook
  secret; the SDK wants the body as *text* (bytes raise TypeError under Python 3) and raises
  SignatureVerificationError on a mismatch.

Unconfigured (no RAZORPAY_KEY_ID / secret) `from_config` answers None and callers say so.

The SDK (with `requests`, ~5 MB a process) is imported on first use, not by every web worker
that never talks to Razorpay (docs/PERFORMANCE.md, worker memory).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import razorpay

log = logging.getLogger(__name__)

MAX_REFERENCE_ID = 40  # payment link reference_id (india.md §3.3)
MAX_NOTE_VALUE = 256


class RazorpayError(Exception):
    """Razorpay refused or could not be reached. `retryable` is False when Razorpay said the
    request itself is wrong (BAD_REQUEST_ERROR): sending it again would fail again."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.message, self.retryable = message, retryable


@dataclass(frozen=True)
class RazorpayGateway:
    key_id: str
    key_secret: str
    api_base: str = "https://api.razorpay.com"
    timeout: float = 20

    @classmethod
    def from_config(cls, config: Any) -> "RazorpayGateway | None":
        if not (config.get("RAZORPAY_KEY_ID") and config.get("RAZORPAY_KEY_SECRET")):
            return None
        return cls(config["RAZORPAY_KEY_ID"], config["RAZORPAY_KEY_SECRET"],
                   (config.get("RAZORPAY_API_BASE") or "https://api.razorpay.com").rstrip("/"),
                   float(config.get("LIS_PROVIDER_TIMEOUT") or 20))

    def _client(self) -> "razorpay.Client":
        import razorpay

        return razorpay.Client(auth=(self.key_id, self.key_secret), base_url=self.api_base)

    def _call(self, what: str, fn: Any, *args: Any) -> dict[str, Any]:
        import requests
        from razorpay.errors import BadRequestError, GatewayError, ServerError

        # The SDK sends no timeout of its own: a hung gateway must not hold a clerk's request.
        try:
            answer = fn(*args, timeout=self.timeout)
        except BadRequestError as err:
            raise RazorpayError(f"Razorpay refused the {what}: {err}", retryable=False) from None
        except (GatewayError, ServerError) as err:
            raise RazorpayError(f"Razorpay could not make the {what} now: {err}", retryable=True) from None
        except requests.RequestException as err:  # connection, timeout, a non-JSON answer
            raise RazorpayError(f"Razorpay could not be reached ({type(err).__name__}).", retryable=True) from None
        except ValueError:
            raise RazorpayError("Razorpay answered with something that is not JSON.", retryable=True) from None
        if not isinstance(answer, dict) or not answer.get("id"):
            raise RazorpayError(f"Razorpay answered the {what} without an id.", retryable=True)
        return answer

    def create_payment_link(self, *, amount_paise: int, reference_id: str, description: str,
                            notes: dict[str, str], accept_partial: bool = False,
                            expire_by: int | None = None) -> dict[str, Any]:
        """A UPI payment link (upi_link true) for `amount_paise`. With accept_partial the link is
        a standard one (Razorpay takes part payments on standard links) with the UPI option."""
        data: dict[str, Any] = {
            "amount": int(amount_paise), "currency": "INR", "reference_id": reference_id[:MAX_REFERENCE_ID],
            "description": description[:2048], "notes": _notes(notes),
            # The lab shares the link itself (QR on screen, its own WhatsApp message): no
            # contact details go to Razorpay, and Razorpay sends nothing.
            "notify": {"sms": False, "email": False}, "reminder_enable": False,
        }
        if accept_partial:
            data["accept_partial"] = True
        else:
            data["upi_link"] = True
        if expire_by:
            data["expire_by"] = int(expire_by)
        return self._call("payment link", self._client().payment_link.create, data)

    def create_upi_qr(self, *, amount_paise: int, name: str, description: str, notes: dict[str, str],
                      close_by: int) -> dict[str, Any]:
        """A single-use UPI QR code for exactly `amount_paise` (fixed_amount), closing at close_by."""
        data = {"type": "upi_qr", "name": name[:100], "usage": "single_use", "fixed_amount": True,
                "payment_amount": int(amount_paise), "description": description[:2048], "close_by": int(close_by),
                "notes": _notes(notes)}
        return self._call("UPI QR code", self._client().qrcode.create, data)

    def refund(self, payment_id: str, *, amount_paise: int, notes: dict[str, str] | None = None,
               receipt: str | None = None, speed: str = "normal") -> dict[str, Any]:
        """Refund part or all of a captured payment. Answers Razorpay's refund entity:
        {"id": "rfnd_…", "status": "pending"|"processed"|"failed", "amount": …}. The final
        state arrives later by webhook (refund.processed / refund.failed)."""
        data: dict[str, Any] = {"amount": int(amount_paise), "speed": speed, "notes": _notes(notes or {})}
        if receipt:
            data["receipt"] = receipt[:40]
        return self._call("refund", self._client().payment.refund, payment_id, data)


def _notes(notes: dict[str, str]) -> dict[str, str]:
    return {str(k)[:40]: str(v)[:MAX_NOTE_VALUE] for k, v in list(notes.items())[:15]}


@cache
def _utility() -> Any:
    from razorpay.utility.utility import Utility

    return Utility(None)  # verify_webhook_signature needs no client credentials


def verify_webhook(body: str, signature: str | None, secret: str) -> bool:
    """True when `signature` is the webhook secret's HMAC of `body` (the raw text, as
    received: india.md §3.3 "do not parse or cast the webhook request body")."""
    from razorpay.errors import SignatureVerificationError

    if not secret or not signature:
        return False
    try:
        return bool(_utility().verify_webhook_signature(body, signature.strip(), secret))
    except SignatureVerificationError:
        return False
    except TypeError:  # a signature with non-ASCII characters cannot be compared: not ours
        return False
