"""The LIS talking first on an HL7 connection, over real sockets: the Mindray host query answered
(QRY^Q02 -> QCK^Q02 + DSR^Q03, instruments.md §1.5) and orders pushed from the instrument_order
outbox (ORM^O01, ACK recorded), including across a listener restart.

These tests run their own listener on a database of their own, so they can stop and start it."""
from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.integrations.instruments import hl7 as hl7_codec
from tests.conftest import _with_redis_db, make_config, recreate_database
from tests.listeners.clients import CR, FS, VT, MllpClient, msa
from tests.listeners.conftest import LISTENER_DB_NAME, LISTENER_REDIS_DB, Lab, make_lab
from tests.listeners.support import ack_header, messages_with, probe, uid, wait_for

QUICK = {"read_timeout_seconds": 2}  # also how long a pushed order waits for its ACK
# name -> (profile, codes, send_orders)
INSTRUMENTS = {
    "bs-query": ({"qc_field": "MSH-16", "qc_values": ["1", "2"], **QUICK},
                 {"1": "GLUF", "3": "CREA", "9": "ALT"}, False),
    # Pushed tests differ from queried ones, so a tube of the query tests is never pushed even
    # once sample receipt queues orders by itself. Two codes for UREA: the lowest one is ordered.
    "bs-push": (QUICK, {"5": "UREA", "50": "UREA", "8": "AST"}, True),
    "bs-nopush": (QUICK, {"5": "UREA", "8": "AST"}, False),
}


class Listener:
    """workers.listeners.serve in a thread of its own, which a test may stop and start again."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        from workers.listeners import serve

        loop, ready = asyncio.new_event_loop(), threading.Event()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            ready.set()
            await serve(self.lab.dsn, self.stop_event)

        self.loop, self.thread = loop, threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        ready.wait(5)
        deadline = time.monotonic() + 15
        for spec in self.lab.instruments.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", spec["port"]), timeout=0.5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "listener did not bind its ports"
                    time.sleep(0.1)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive()


def _make_org(app: Any, code: str, instruments: dict) -> Lab:
    return make_lab(app, code, {
        name: {"protocol": "hl7", "sample_id_field": "OBR-2", "test_code_field": "OBX-3.1", "profile": profile,
               "codes": codes, "send_orders": send_orders}
        for name, (profile, codes, send_orders) in instruments.items()}, display_name=f"{code} Lab")


@pytest.fixture(scope="module")
def labs(base_urls) -> dict[str, Lab]:  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from app import create_app

    url = recreate_database(base_urls["DATABASE_URL"], LISTENER_DB_NAME + "_orders")
    app = create_app(make_config(url, _with_redis_db(base_urls["REDIS_URL"], LISTENER_REDIS_DB)))
    with app.app_context():
        upgrade()
    return {"ours": _make_org(app, "ours", INSTRUMENTS), "other": _make_org(app, "other", {})}


@pytest.fixture(scope="module")
def running(labs) -> Any:  # type: ignore[no-untyped-def]
    listener = Listener(labs["ours"])
    listener.start()
    yield listener
    if listener.thread.is_alive():
        listener.stop()


@pytest.fixture
def lab(labs, running) -> Lab:  # type: ignore[no-untyped-def]
    if not running.thread.is_alive():
        running.start()
    return labs["ours"]


# ------------------------------------------------------------------ host query (Mindray QRY^Q02)

def qry(control_id: str, barcode: str) -> bytes:
    """The Mindray BS query of tests/unit/instruments/samples.py with this control id and barcode."""
    return ("MSH|^~\\&|Mindray|BS-240|||20240612101600||QRY^Q02|" + control_id + "|P|2.3.1||||||ASCII|||\r"
            "QRD|20240612101600|R|D|1|||RD|" + barcode + "|OTH|||T|\r"
            "QRF|BS-240|||||RCT|COR|ALL||\r").encode()


def qck(reply: bytes, control_id: str, status: str) -> bytes:
    stamp, own_id = ack_header(reply)
    return (f"MSH|^~\\&|||Mindray|BS-240|{stamp}||QCK^Q02|{own_id}|P|2.3.1\r"
            f"MSA|AA|{control_id}|Message accepted|||0\rERR|0\rQAK|SR|{status}\r").encode()


def ask(lab: Lab, barcode: str) -> tuple[MllpClient, str, bytes]:
    control_id = "Q" + uid()
    analyzer = MllpClient(lab.port("bs-query"))
    return analyzer, control_id, analyzer.send(qry(control_id, barcode))


def tube_facts(lab: Lab, barcode: str) -> tuple[str, str]:
    mrn, collected = lab.sql("SELECT p.mrn, s.collected_at FROM sample s JOIN lab_order o ON o.id = s.order_id "
                             "JOIN patient p ON p.id = o.patient_id WHERE s.barcode = %s", barcode)[0]
    return mrn, collected.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y%m%d%H%M%S")


def test_query_for_a_received_tube_is_answered_with_its_pending_tests(lab):
    order = lab.order(["CREA", "ALT", "GLUF"], sex="female")
    barcode = order["tubes"]["Plain"]  # CREA and ALT; GLUF is on the fluoride tube
    analyzer, control_id, reply = ask(lab, barcode)
    with analyzer:
        assert reply == qck(reply, control_id, "OK")
        dsr = analyzer.read_block()
        stamp, dsr_id = ack_header(dsr)
        mrn, collected = tube_facts(lab, barcode)
        display = {1: mrn, 3: "Listener Test", 4: "19750301000000", 5: "F", 21: barcode, 23: collected, 24: "N",
                   26: "serum"}
        assert dsr == (
            f"MSH|^~\\&|||Mindray|BS-240|{stamp}||DSR^Q03|{dsr_id}|P|2.3.1\r"
            f"MSA|AA|{control_id}|Message accepted|||0\rERR|0\rQAK|SR|OK\r"
            f"QRD|20240612101600|R|D|1|||RD|{barcode}|OTH|||T|\rQRF|BS-240|||||RCT|COR|ALL||\r"
            + "".join(f"DSP|{n}||{display.get(n, '')}|||\r" for n in range(1, 29))
            + "DSP|29||3^^^|||\rDSP|30||9^^^|||\rDSC|\r").encode()
        ack_id = "A" + uid()
        analyzer.send_raw(VT + (f"MSH|^~\\&|Mindray|BS-240|||20240612101601||ACK^Q03|{ack_id}|P|2.3.1\r"
                                f"MSA|AA|{dsr_id}|Message accepted|||0\r").encode() + FS + CR)
        probe(analyzer, lab)  # no ACK for the ACK; the link goes on
    assert [m["message_type"] for m in messages_with(lab, "bs-query", ack_id)] == ["ACK^Q03"]
    lab.process()
    [query] = messages_with(lab, "bs-query", control_id)
    assert (query["outcome"], query["message_type"]) == ("query", "QRY^Q02")


def _assert_not_found(lab: Lab, barcode: str) -> None:
    analyzer, control_id, reply = ask(lab, barcode)
    with analyzer:
        assert reply == qck(reply, control_id, "NF")
        assert analyzer.closed_by_peer(0.8) is False  # silence: no DSR follows an NF
    assert [m["outcome"] for m in messages_with(lab, "bs-query", control_id)] == ["stored"]


def test_unknown_barcode_is_not_found(lab):
    _assert_not_found(lab, "NOSUCH" + uid())


def test_tube_not_yet_received_is_not_found(lab):
    _assert_not_found(lab, lab.order(["CREA"], receive=False)["tubes"]["Plain"])


def test_tube_whose_tests_this_analyzer_cannot_do_is_not_found(lab):
    _assert_not_found(lab, lab.order(["TSH"])["tubes"]["Plain"])


def test_tube_already_resulted_is_not_found(lab):
    order = lab.order(["CREA"])
    lab.sql("UPDATE order_test SET status = 'entered' WHERE order_id = %s RETURNING id", order["order_id"])
    _assert_not_found(lab, order["tubes"]["Plain"])


def test_tube_of_another_organization_is_not_found(lab, labs):
    _assert_not_found(lab, labs["other"].order(["CREA", "ALT"])["tubes"]["Plain"])


def test_query_without_a_barcode_is_not_found_and_the_link_survives(lab):
    analyzer, control_id, reply = ask(lab, "")
    with analyzer:
        assert reply == qck(reply, control_id, "NF")
        probe(analyzer, lab)


# ------------------------------------------------------------------ order push (ORM^O01 outbox)

def queue(lab: Lab, barcode: str) -> list[tuple[int, str]]:
    """instrument_orders.queue_orders_for_sample, as sample receipt calls it; returns the tube's
    rows still to send or sent, (id, control id) - the same whether receipt already queued them."""
    def run() -> None:
        from app.services import instrument_orders, samples

        instrument_orders.queue_orders_for_sample(samples.by_barcode(barcode))
    lab.run(run)
    return [(r["id"], r["control_id"]) for r in outbox(lab, barcode) if r["status"] != "superseded"]


def outbox(lab: Lab, barcode: str) -> list[dict]:
    rows = lab.sql("SELECT o.id, i.name, o.status, o.attempts, o.ack_code, o.error, o.test_codes, o.control_id, "
                   "o.payload, o.ack_message_id FROM instrument_order o JOIN instrument i ON i.id = o.instrument_id "
                   "JOIN sample s ON s.id = o.sample_id WHERE s.barcode = %s ORDER BY o.id", barcode)
    keys = ("id", "instrument", "status", "attempts", "ack_code", "error", "codes", "control_id", "payload", "ack_id")
    return [dict(zip(keys, (bytes(v) if isinstance(v, memoryview) else v for v in row))) for row in rows]


def answer(analyzer: MllpClient, control_id: str, code: str, text: str = "") -> str:
    ack_id = "K" + uid()
    analyzer.send_raw(VT + (f"MSH|^~\\&|BS-240|Mindray|LIS||20240612101601||ACK^O01|{ack_id}|P|2.3.1\r"
                            f"MSA|{code}|{control_id}" + (f"|{text}" if text else "") + "\r").encode() + FS + CR)
    return ack_id


def settled(lab: Lab, barcode: str, status: str) -> list[dict]:
    return wait_for(lambda: [r for r in outbox(lab, barcode) if r["status"] == status])


def test_received_tube_is_pushed_and_the_aa_is_recorded(lab):
    order = lab.order(["UREA", "AST"], sex="male")
    barcode = order["tubes"]["Plain"]
    [(row_id, control_id)] = queue(lab, barcode)
    assert queue(lab, barcode) == [(row_id, control_id)] and len(outbox(lab, barcode)) == 1  # idempotent
    with MllpClient(lab.port("bs-push")) as analyzer:
        pushed = analyzer.read_block(timeout=5)
        [row] = outbox(lab, barcode)
        assert pushed == row["payload"]
        msg = hl7_codec.parse_message(pushed)
        mrn, _ = tube_facts(lab, barcode)
        assert (msg.message_type, msg.control_id, msg.get("MSH-5"), msg.get("PID-3"), msg.get("PID-5"),
                msg.get("PID-8")) == ("ORM^O01", control_id, "bs-push", mrn, "Listener Test", "M")
        assert [(f[2], f[4]) for f in msg.segments_named("OBR")] == [(barcode, "5"), (barcode, "8")]  # not "50"
        ack_id = answer(analyzer, control_id, "AA", "Message accepted")
        [row] = settled(lab, barcode, "acked")
        assert (row["id"], row["instrument"], row["attempts"], row["ack_code"], row["error"], row["codes"]) == (
            row_id, "bs-push", 1, "AA", "", "5~8")
        [ack] = messages_with(lab, "bs-push", ack_id)
        assert (row["ack_id"], ack["message_type"]) == (ack["id"], "ACK^O01")
        assert analyzer.closed_by_peer(1.5) is False  # answered: never sent again
        probe(analyzer, lab)


def test_ae_is_recorded_as_failed_with_the_reason(lab):
    barcode = lab.order(["AST"])["tubes"]["Plain"]
    [(_, control_id)] = queue(lab, barcode)
    with MllpClient(lab.port("bs-push")) as analyzer:
        assert hl7_codec.parse_message(analyzer.read_block(timeout=5)).control_id == control_id
        answer(analyzer, control_id, "AE", "Test 8 not configured")
        [row] = settled(lab, barcode, "failed")
        assert (row["attempts"], row["ack_code"], row["error"]) == (1, "AE", "Test 8 not configured")
        assert analyzer.closed_by_peer(1.5) is False


def test_without_a_connection_the_order_waits_then_goes_when_the_analyzer_connects(lab):
    barcode = lab.order(["UREA"])["tubes"]["Plain"]
    [(_, control_id)] = queue(lab, barcode)
    time.sleep(2.5)  # two and more polls with nobody connected
    [row] = outbox(lab, barcode)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    with MllpClient(lab.port("bs-push")) as analyzer:
        assert hl7_codec.parse_message(analyzer.read_block(timeout=5)).control_id == control_id
        answer(analyzer, control_id, "AA")
        assert settled(lab, barcode, "acked")


def test_no_ack_in_time_is_retried_with_the_same_bytes_and_counted(lab):
    barcode = lab.order(["UREA"])["tubes"]["Plain"]
    [(_, control_id)] = queue(lab, barcode)
    with MllpClient(lab.port("bs-push")) as analyzer:
        first = analyzer.read_block(timeout=5)
        row = wait_for(lambda: [r for r in outbox(lab, barcode) if r["error"]], timeout=5)[0]
        assert (row["status"], row["attempts"], row["error"]) == ("queued", 1, "no ACK within 2 s")
        assert analyzer.read_block(timeout=6) == first  # the same MSH-10: the analyzer can tell a resend
        answer(analyzer, control_id, "AA")
        [row] = settled(lab, barcode, "acked")
        assert row["attempts"] == 2


def test_a_restart_while_waiting_resends_once_and_never_duplicates(lab, running):
    done = lab.order(["AST"])["tubes"]["Plain"]
    [(_, done_id)] = queue(lab, done)
    barcode = lab.order(["UREA", "AST"])["tubes"]["Plain"]
    with MllpClient(lab.port("bs-push")) as analyzer:
        assert hl7_codec.parse_message(analyzer.read_block(timeout=5)).control_id == done_id
        answer(analyzer, done_id, "AA")
        assert settled(lab, done, "acked")
        [(_, control_id)] = queue(lab, barcode)
        first = analyzer.read_block(timeout=5)  # ... and the listener stops before any ACK
        assert hl7_codec.parse_message(first).control_id == control_id
        running.stop()
        assert analyzer.closed_by_peer(5)
    [row] = outbox(lab, barcode)
    assert (row["status"], row["attempts"]) == ("queued", 1)
    running.start()
    assert queue(lab, barcode) == [(row["id"], control_id)]  # the receipt replayed: still one row
    with MllpClient(lab.port("bs-push")) as analyzer:
        assert analyzer.read_block(timeout=8) == first  # only this one: the acked order is not sent again
        answer(analyzer, control_id, "AA")
        [row] = settled(lab, barcode, "acked")
        assert row["attempts"] == 2
        assert analyzer.closed_by_peer(1.5) is False
    assert [r["status"] for r in outbox(lab, done)] == ["acked"]


def test_changed_tests_supersede_a_queued_order(lab):
    order = lab.order(["UREA", "AST"])
    barcode = order["tubes"]["Plain"]
    [(first_id, _)] = queue(lab, barcode)
    lab.sql("UPDATE order_test SET status = 'entered' FROM lab_test t WHERE t.id = order_test.test_id "
            "AND order_test.order_id = %s AND t.code = 'UREA' RETURNING order_test.id", order["order_id"])
    [(second_id, control_id)] = queue(lab, barcode)
    rows = outbox(lab, barcode)
    assert [(r["id"], r["status"], r["codes"]) for r in rows] == [(first_id, "superseded", "5~8"),
                                                                  (second_id, "queued", "8")]
    with MllpClient(lab.port("bs-push")) as analyzer:  # only the current order goes out
        assert hl7_codec.parse_message(analyzer.read_block(timeout=5)).control_id == control_id
        answer(analyzer, control_id, "AA")
        assert settled(lab, barcode, "acked")
        assert analyzer.closed_by_peer(1.5) is False


def test_nothing_is_queued_that_no_analyzer_wants(lab):
    assert queue(lab, lab.order(["TSH"])["tubes"]["Plain"]) == []  # no instrument has a code for it
    assert queue(lab, lab.order(["UREA"], receive=False)["tubes"]["Plain"]) == []  # not received
    barcode = lab.order(["UREA"])["tubes"]["Plain"]
    [(_, control_id)] = queue(lab, barcode)
    assert [r["instrument"] for r in outbox(lab, barcode)] == ["bs-push"]  # not bs-nopush (send_orders off)
    with MllpClient(lab.port("bs-push")) as analyzer:  # leave nothing queued for the next test
        assert hl7_codec.parse_message(analyzer.read_block(timeout=5)).control_id == control_id
        answer(analyzer, control_id, "AA")
        assert settled(lab, barcode, "acked")


def test_an_ack_for_nothing_we_sent_is_stored_and_ignored(lab):
    with MllpClient(lab.port("bs-push")) as analyzer:
        ack_id = answer(analyzer, "NEVER" + uid(), "AA")
        probe(analyzer, lab)
    assert [m["message_type"] for m in messages_with(lab, "bs-push", ack_id)] == ["ACK^O01"]


def test_receipt_itself_queues_the_order_and_it_is_pushed(lab):
    """samples.receive queues the ORM^O01 in the receipt's transaction: no other call needed."""
    order = lab.order(["UREA", "AST"], sex="male", receive=False)
    barcode = order["tubes"]["Plain"]
    assert outbox(lab, barcode) == []  # collected, not in the lab yet: nothing for the analyzer

    def receive() -> None:
        from app.services import samples

        samples.receive(samples.by_barcode(barcode), user_id=None)
    lab.run(receive)
    [row] = outbox(lab, barcode)
    assert (row["instrument"], row["codes"]) == ("bs-push", "5~8")
    with MllpClient(lab.port("bs-push")) as analyzer:
        assert analyzer.read_block(timeout=5) == row["payload"]
        answer(analyzer, row["control_id"], "AA")
        [acked] = settled(lab, barcode, "acked")
        assert acked["id"] == row["id"]
