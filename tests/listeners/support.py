"""Shared pieces of the over-a-socket listener tests: message builders, ACK checks and the
database reads that say what the listener and the ingestion job really did."""
from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any

from tests.listeners.clients import MllpClient, msa


def uid() -> str:
    """A unique token: control ids and barcodes must differ per test (identical bytes dedupe)."""
    return uuid.uuid4().hex[:16]


def hl7(*segments: str, encoding: str = "utf-8") -> bytes:
    return ("\r".join(segments) + "\r").encode(encoding)


def msh(control_id: str, *, msg_type: str = "ORU^R01", version: str = "2.3.1", accept: str = "",
        application: str = "", charset: str = "") -> str:
    """The generic analyzer's MSH: ANALYZER/LAB -> LIS/LAB. MSH-15/16/18 exactly where HL7 puts them."""
    fields = ["MSH", "^~\\&", "ANALYZER", "LAB", "LIS", "LAB", "20261122101500", "", msg_type, control_id, "P",
              version, "", "", accept, application, "", charset]
    while fields[-1] == "":
        fields.pop()
    return "|".join(fields)


def oru(control_id: str, barcode: str, obx: list[str], *, accept: str = "", application: str = "",
        charset: str = "", after_obr: list[str] | None = None, pid: str = "PID|1||||") -> bytes:
    """ORU^R01 for the generic-hl7 instrument (sample id in OBR-2, code in OBX-3.1). Each `obx`
    line is the text after ``OBX|n|`` (value type first); a line starting with ``NTE|`` is put in as it is."""
    segments = [msh(control_id, accept=accept, application=application, charset=charset), pid,
                f"OBR|1|{barcode}||CHEM^Chemistry|||20261122100000", *(after_obr or [])]
    n = 0
    for line in obx:
        if line.startswith("NTE|"):
            segments.append(line)
        else:
            n += 1
            segments.append(f"OBX|{n}|{line}")
    return hl7(*segments)


# ------------------------------------------------------------------ ACKs

def ack_header(ack: bytes) -> tuple[str, str]:
    """MSH-7 and MSH-10 of an ACK, checked: a 14-digit timestamp of now, a unique 20-hex id."""
    fields = ack.split(b"\r", 1)[0].decode().split("|")
    stamp, control_id = fields[6], fields[9]
    assert re.fullmatch(r"\d{14}", stamp), ack
    assert abs((datetime.strptime(stamp, "%Y%m%d%H%M%S") - datetime.now()).total_seconds()) < 120, ack
    assert re.fullmatch(r"[0-9a-f]{20}(-2)?", control_id), ack
    return stamp, control_id


def generic_ack(ack: bytes, code: str, control_id: str, *, text: str = "", err: str = "",
                msh9: str = "ACK^R01", version: str = "2.3.1") -> bytes:
    """The exact bytes promised for an ACK to `msh()`: sender/receiver swapped, MSH-11/12 copied,
    MSA-2 = the control id received. Returns the expected bytes (stamp and id taken from `ack`)."""
    stamp, own_id = ack_header(ack)
    segments = [f"MSH|^~\\&|LIS|LAB|ANALYZER|LAB|{stamp}||{msh9}|{own_id}|P|{version}",
                "|".join(["MSA", code, control_id] + ([text] if text else []))]
    if err:
        segments.append(err)
    return "".join(s + "\r" for s in segments).encode()


def assert_aa(ack: bytes, control_id: str) -> None:
    assert ack == generic_ack(ack, "AA", control_id), ack


def probe(client: MllpClient, listener: Any, barcode: str = "PROBE") -> None:
    """Send a fresh message on this connection; the very next block must be its AA. Proves the
    connection still works and that nothing else (a stray ACK) was queued before it."""
    control_id = "P" + uid()
    ack = client.send(oru(control_id, barcode + uid(), ["NM|GLU^Glucose||100|mg/dL|70-100|N|||F"]))
    assert msa(ack)[1:3] == ["AA", control_id], ack
    assert listener.sql("SELECT outcome FROM instrument_message WHERE control_id = %s", control_id) == [("stored",)]


# ------------------------------------------------------------------ database reads

def wait_for(fn, timeout: float = 6.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll fn() until it returns something truthy (for what the listener stores after a close)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def messages_with(listener: Any, instrument: str, token: bytes | str) -> list[dict]:
    """This instrument's stored messages whose raw bytes contain token, oldest first."""
    needle = token.encode() if isinstance(token, str) else token
    rows = listener.sql(
        "SELECT id, outcome, detail, raw, resent, control_id, message_type, protocol, results_attached, "
        "results_unmatched FROM instrument_message WHERE instrument_id = %s AND position(%s::bytea in raw) > 0 "
        "ORDER BY id", listener.instrument_id(instrument), needle)
    keys = ("id", "outcome", "detail", "raw", "resent", "control_id", "message_type", "protocol", "attached",
            "unmatched")
    return [dict(zip(keys, (bytes(v) if isinstance(v, memoryview) else v for v in row))) for row in rows]


def message_by_control_id(listener: Any, instrument: str, control_id: str) -> dict:
    rows = listener.sql("SELECT id FROM instrument_message WHERE instrument_id = %s AND control_id = %s",
                        listener.instrument_id(instrument), control_id)
    assert len(rows) == 1, rows
    [found] = [m for m in messages_with(listener, instrument, control_id) if m["id"] == rows[0][0]]
    return found


def results_of(listener: Any, order_id: int, *, current_only: bool = False) -> list[dict]:
    """Every result row of an order (test code, value, flags, comment, attempt...), by code/attempt."""
    rows = listener.sql(
        "SELECT t.code, r.value_text, r.value_num, r.flag, r.instrument_flags, r.comment, r.source, r.status, "
        "r.attempt, r.is_current, r.message_id, r.instrument_id FROM result r "
        "JOIN lab_test t ON t.id = r.test_id JOIN order_test ot ON ot.id = r.order_test_id "
        "WHERE ot.order_id = %s" + (" AND r.is_current" if current_only else "") + " ORDER BY t.code, r.attempt",
        order_id)
    keys = ("code", "value", "number", "flag", "instrument_flags", "comment", "source", "status", "attempt",
            "current", "message_id", "instrument_id")
    return [dict(zip(keys, row)) for row in rows]


def unmatched_of(listener: Any, message_id: int) -> list[dict]:
    rows = listener.sql(
        "SELECT u.sample_id, u.code, t.code, u.value, u.units, u.flags, u.comment, u.reason, u.status "
        "FROM unmatched_result u LEFT JOIN lab_test t ON t.id = u.test_id WHERE u.message_id = %s ORDER BY u.id",
        message_id)
    keys = ("sample_id", "code", "test", "value", "units", "flags", "comment", "reason", "status")
    return [dict(zip(keys, row)) for row in rows]


def order_test_status(listener: Any, order_id: int) -> dict[str, str]:
    return dict(listener.sql("SELECT t.code, ot.status FROM order_test ot JOIN lab_test t ON t.id = ot.test_id "
                             "WHERE ot.order_id = %s", order_id))
