"""WhatsApp Business Cloud API client (Meta Graph API), as summarised in
../shared/reference/india.md §4.2:

- messages: POST {api}/{phone-number-id}/messages with a Bearer token. A **template** message
  is `{"messaging_product":"whatsapp","recipient_type":"individual","to":<E.164 digits>,
  "type":"template","template":{"name":…,"language":{"code":…},"components":[{"type":"header",
  "parameters":[{"type":"document","document":{"id":<MEDIA_ID>,"filename":…}}]},{"type":"body",
  "parameters":[{"type":"text","text":…}]}]}}`; the answer names the message id in
  `messages[0].id` (the "wamid" that status webhooks refer to).
- media: the report PDF is uploaded first (POST {api}/{phone-number-id}/media, multipart, with
  `messaging_product=whatsapp`) and referred to by its `id` — "uploaded media id recommended over
  link" (§4.2) — so no patient document ever sits behind a public URL for Meta to fetch.
- free-form (type "text") only inside the 24-hour customer-service window; outside it Meta
  refuses with error 131047 "Re-engagement message" (§4.2). The service checks the window
  before calling send_text; a 131047 answer is treated as permanent.
- status webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, App Secret)>`,
  checked in constant time (verify_signature); statuses sent, delivered, read, failed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from app.integrations._http import ProviderError, request_json

# Meta error codes worth another try: rate limits and temporary service trouble.
RETRYABLE_CODES = {4, 80007, 130429, 131000, 131016, 131048, 131056, 133004}


@dataclass(frozen=True)
class WhatsAppClient:
    api_url: str
    token: str
    phone_id: str
    timeout: float = 15

    @classmethod
    def from_config(cls, config: Any) -> "WhatsAppClient | None":
        """None when not configured: the caller puts the message in the visible outbox."""
        if not (config.get("LIS_WHATSAPP_TOKEN") and config.get("LIS_WHATSAPP_PHONE_ID")):
            return None
        return cls(config["LIS_WHATSAPP_API_URL"].rstrip("/"), config["LIS_WHATSAPP_TOKEN"],
                   config["LIS_WHATSAPP_PHONE_ID"], config.get("LIS_NOTIFY_TIMEOUT", 15))

    def _headers(self, content_type: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}

    def _post(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        try:
            return request_json(f"{self.api_url}/{self.phone_id}/{path}", body=body,
                                headers=self._headers(content_type), timeout=self.timeout)
        except ProviderError as err:
            if err.code is not None:
                err.retryable = err.code in RETRYABLE_CODES or (err.status or 0) >= 500
            raise

    def upload_media(self, data: bytes, *, filename: str, mime: str = "application/pdf") -> str:
        boundary = "lis" + secrets.token_hex(12)
        parts = []
        for name, value in (("messaging_product", "whatsapp"), ("type", mime)):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        answer = self._post("media", b"".join(parts), f"multipart/form-data; boundary={boundary}")
        media_id = answer.get("id")
        if not media_id:
            raise ProviderError("media upload answered without an id", retryable=True)
        return str(media_id)

    def _message(self, to: str, kind: str, content: dict[str, Any]) -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to.lstrip("+"),
                "type": kind, kind: content}
        answer = self._post("messages", json.dumps(body).encode(), "application/json")
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ProviderError("the Graph API answered without a message id", retryable=False) from None

    def send_template(self, to: str, *, name: str, language: str, body_params: list[str],
                      document: dict[str, str] | None = None, button_params: list[str] | None = None) -> str:
        components: list[dict[str, Any]] = []
        if document is not None:  # {"id": media id, "filename": ...}
            components.append({"type": "header", "parameters": [{"type": "document", "document": document}]})
        if body_params:
            components.append({"type": "body", "parameters": [{"type": "text", "text": str(v)} for v in body_params]})
        if button_params:  # authentication (OTP) templates: the copy-code URL button carries the code
            components.append({"type": "button", "sub_type": "url", "index": "0",
                               "parameters": [{"type": "text", "text": str(v)} for v in button_params]})
        return self._message(to, "template", {"name": name, "language": {"code": language},
                                              "components": components})

    def send_text(self, to: str, text: str) -> str:
        """Free-form: only inside the 24-hour window (the caller checks it; india.md §4.2)."""
        return self._message(to, "text", {"preview_url": False, "body": text})


def signature(app_secret: str, raw_body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """X-Hub-Signature-256 over the raw body with the App Secret, compared in constant time."""
    if not app_secret or not header:
        return False
    return hmac.compare_digest(signature(app_secret, raw_body).encode(), header.strip().encode())


def statuses(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """entry[].changes[].value.statuses[] of a status webhook (india.md §4.2)."""
    found = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value") or {}
            found.extend(s for s in value.get("statuses") or [] if isinstance(s, dict))
    return found


def inbound_messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """entry[].changes[].value.messages[]: a user wrote to us (opens the 24-hour window)."""
    found = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value") or {}
            found.extend(m for m in value.get("messages") or [] if isinstance(m, dict))
    return found
