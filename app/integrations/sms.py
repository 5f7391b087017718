"""SMS through a DLT-compliant gateway (TRAI TCCCPR 2018), as summarised in
../shared/reference/india.md §4.1: every message carries the **principal entity (PE) id**, the
approved **header** (sender id) and the **DLT template id**, and its text must equal the
registered template with each `{#var#}` filled in — anything else is blocked by scrubbing.

Gateways differ in field names (Exotel DltEntityId/DltTemplateId/From, Gupshup
principalEntityId/dltTemplateId, MSG91 DLT_TE_ID, …, §4.1); this client speaks one generic
JSON shape, which a small adapter at the gateway (or the gateway itself) accepts:

    POST {LIS_SMS_URL}
    Authorization: Bearer {LIS_SMS_API_KEY}
    Content-Type: application/json
    {"to": "+9198XXXXXXXX", "sender": "{LIS_SMS_SENDER}", "entity_id": "{LIS_SMS_ENTITY_ID}",
     "template_id": "<DLT template id>", "text": "<registered text, variables filled>"}

    2xx {"id": "<gateway message id>"}  (or "message_id"); 4xx/5xx {"error": "…"}

The text is built here (render) and checked against the template before anything is sent
(matches_template), so a message that scrubbing would block never leaves.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.integrations._http import ProviderError, request_json

VAR = "{#var#}"


def render(template_text: str, values: list[str]) -> str:
    """Fill each {#var#} in order. The number of values must match exactly."""
    pieces = template_text.split(VAR)
    if len(pieces) - 1 != len(values):
        raise ProviderError(f"the DLT template has {len(pieces) - 1} variables, {len(values)} given", retryable=False)
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:]):
        out.append(str(value).replace("\n", " "))
        out.append(piece)
    return "".join(out)


def matches_template(template_text: str, text: str) -> bool:
    """Does `text` equal the template with each {#var#} replaced by some non-empty value?"""
    pattern = ".+?".join(re.escape(piece) for piece in template_text.split(VAR))
    return re.fullmatch(pattern, text, flags=re.DOTALL) is not None


@dataclass(frozen=True)
class SmsClient:
    url: str
    api_key: str
    entity_id: str
    sender: str
    timeout: float = 15

    @classmethod
    def from_config(cls, config: Any) -> "SmsClient | None":
        if not all(config.get(k) for k in ("LIS_SMS_URL", "LIS_SMS_API_KEY", "LIS_SMS_ENTITY_ID", "LIS_SMS_SENDER")):
            return None
        return cls(config["LIS_SMS_URL"], config["LIS_SMS_API_KEY"], config["LIS_SMS_ENTITY_ID"],
                   config["LIS_SMS_SENDER"], config.get("LIS_NOTIFY_TIMEOUT", 15))

    def send(self, to: str, *, template_id: str, template_text: str, text: str) -> str:
        if not template_id:
            raise ProviderError("no DLT template id registered for this message", retryable=False)
        if not matches_template(template_text, text):
            raise ProviderError("the text does not match the registered DLT template", retryable=False)
        body = {"to": to, "sender": self.sender, "entity_id": self.entity_id, "template_id": template_id,
                "text": text}
        answer = request_json(self.url, body=json.dumps(body).encode(), timeout=self.timeout,
                              headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
        message_id = answer.get("id") or answer.get("message_id")
        if not message_id:
            raise ProviderError("the SMS gateway answered without a message id", retryable=False)
        return str(message_id)
