"""The JSON log line format, in a module light enough for the listener process to import."""
from __future__ import annotations

import json
import logging
from typing import Any


_FIELDS = ("request_id", "endpoint", "method", "status", "duration_ms", "user_id", "org_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Messages carry ids and codes, never names or phone numbers."""

    _last: tuple[int, str] = (-1, "")  # (second, its text), replaced whole: threads share it

    def timestamp(self, record: logging.LogRecord) -> str:
        """The record's time to the second, formatted once per second (a web worker writes
        hundreds of lines a second; strftime is the formatter's dearest step)."""
        second, stamp = self._last
        if int(record.created) != second:
            stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
            self._last = (int(record.created), stamp)
        return stamp

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        attributes = record.__dict__  # where `extra=` puts them
        for key in _FIELDS:
            value = attributes.get(key)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)
