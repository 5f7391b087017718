"""A small JSON-over-HTTPS helper for provider clients (stdlib urllib: no new dependency).

Provider errors come back as ProviderError with `retryable` set the way the delivery job
needs it: network trouble, 429 and 5xx are worth another try; other 4xx answers are not
(the request itself is wrong, and sending it again would fail again)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ProviderError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None, code: Any = None):
        super().__init__(message)
        self.message, self.retryable, self.status, self.code = message, retryable, status, code


def request_json(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from settings
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            detail = json.loads(raw or b"{}")
        except ValueError:
            detail = {}
        raise ProviderError(f"HTTP {err.code}: {_snippet(detail, raw)}", retryable=err.code == 429 or err.code >= 500,
                            status=err.code, code=(detail.get("error") or {}).get("code")
                            if isinstance(detail.get("error"), dict) else None) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise ProviderError(f"connection failed: {type(err).__name__}", retryable=True) from None
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ProviderError("the provider answered with something that is not JSON", retryable=True) from None
    return data if isinstance(data, dict) else {"data": data}


def _snippet(detail: dict[str, Any], raw: bytes) -> str:
    """The provider's own error message (no request data: it could hold a phone number)."""
    error = detail.get("error")
    if isinstance(error, dict):
        return f"{error.get('code', '')} {error.get('message', '')}".strip()[:300]
    if isinstance(error, str):
        return error[:300]
    if "message" in detail:
        return str(detail["message"])[:300]
    return raw[:200].decode("utf-8", "replace")
