"""HL7 v2 over MLLP, bad and awkward input over a real socket (instruments.md §1.1, §1.2, §1.4).

None of these may crash the listener or touch another connection; every one is kept raw with
its outcome, and results land only on the received tube whose barcode the analyzer sent."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.listeners.clients import CR, FS, VT, MllpClient, msa
from tests.listeners.support import (ack_header, assert_aa, generic_ack, message_by_control_id, messages_with,
                                     msh, order_test_status, oru, probe, results_of, uid, unmatched_of, wait_for)

INSTRUMENT = "generic-hl7"  # max_message_bytes 65536, read_timeout_seconds 2
GLU = "NM|GLU^Glucose||250|mg/dL|70-100|H|||F"
CREA = "NM|CREA^Creatinine||1.1|mg/dL|0.7-1.3|N|||F"


@pytest.fixture
def analyzer(listener):  # type: ignore[no-untyped-def]
    with MllpClient(listener.port(INSTRUMENT)) as client:
        yield client


def test_garbage_before_vt_is_kept_rejected_and_the_message_after_it_is_acked(listener, analyzer):
    order = listener.order(["GLUF"])
    control_id, garbage = "G" + uid(), b"\x00\xffline noise " + uid().encode() + b" |^~\r\n"
    payload = oru(control_id, order["tubes"]["Fluoride"], [GLU])
    analyzer.send_raw(garbage + VT + payload + FS + CR)
    ack = analyzer.read_block()
    assert_aa(ack, control_id)
    [junk] = messages_with(listener, INSTRUMENT, garbage)
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert (junk["outcome"], junk["raw"], junk["detail"]) == (
        "rejected", garbage, "bytes outside an MLLP block (discarded)")
    assert (message["outcome"], message["raw"], message["message_type"]) == ("stored", payload, "ORU^R01")
    assert junk["id"] < message["id"]  # kept in arrival order, both before the ACK went out
    listener.process()
    assert [(r["code"], r["value"], r["flag"]) for r in results_of(listener, order["order_id"])] == [
        ("GLUF", "250", "H")]
    assert messages_with(listener, INSTRUMENT, garbage)[0]["outcome"] == "rejected"  # ingestion leaves it alone


def test_truncated_block_then_a_full_one_only_the_full_one_is_acked(listener, analyzer):
    order = listener.order(["GLUF"])
    cut_id, full_id = "T" + uid(), "F" + uid()
    partial = (msh(cut_id) + "\rPID|1\rOBR|1|" + order["tubes"]["Fluoride"]).encode()
    full = oru(full_id, order["tubes"]["Fluoride"], [GLU])
    analyzer.send_raw(VT + partial + VT + full + FS + CR)
    assert_aa(analyzer.read_block(), full_id)
    probe(analyzer, listener)  # the next block is the probe's ACK: the partial one was never ACKed
    [kept] = messages_with(listener, INSTRUMENT, cut_id)
    assert (kept["outcome"], kept["raw"], kept["control_id"]) == ("rejected", VT + partial, "")
    stored = message_by_control_id(listener, INSTRUMENT, full_id)
    assert stored["raw"] == full
    listener.process()
    [result] = results_of(listener, order["order_id"])
    assert (result["value"], result["message_id"]) == ("250", stored["id"])


def test_two_messages_in_one_read_get_two_acks_in_order(listener, analyzer):
    order = listener.order(["GLUF", "CREA"])
    first, second = "A" + uid(), "B" + uid()
    analyzer.send_raw(VT + oru(first, order["tubes"]["Fluoride"], [GLU]) + FS + CR
                      + VT + oru(second, order["tubes"]["Plain"], [CREA]) + FS + CR)
    ack1, ack2 = analyzer.read_block(), analyzer.read_block()
    assert_aa(ack1, first)
    assert_aa(ack2, second)
    assert ack_header(ack1)[1] != ack_header(ack2)[1]  # every ACK has its own control id
    assert message_by_control_id(listener, INSTRUMENT, first)["id"] < message_by_control_id(
        listener, INSTRUMENT, second)["id"]
    listener.process()
    assert [(r["code"], r["value"]) for r in results_of(listener, order["order_id"])] == [
        ("CREA", "1.10"), ("GLUF", "250")]


def test_message_larger_than_the_cap_gets_ar_and_the_connection_stays_usable(listener, analyzer):
    order = listener.order(["GLUF"])
    control_id = "O" + uid()
    big = oru(control_id, order["tubes"]["Fluoride"], [GLU, "NTE|1|L|" + "x" * 70_000])
    assert len(big) > 65536
    analyzer.send_raw(VT + big + FS + CR)
    ack = analyzer.read_block()
    assert ack == generic_ack(ack, "AR", control_id, text="Message too large",
                              err="ERR|^^^100&Segment sequence error&HL70357"), ack
    probe(analyzer, listener)  # the rest of the big block was skipped, the next message is read cleanly
    [kept] = messages_with(listener, INSTRUMENT, control_id)
    assert (kept["outcome"], kept["raw"], kept["detail"]) == (
        "rejected", big[:65536], "message larger than 65536 bytes; first part kept")
    listener.process()
    assert results_of(listener, order["order_id"]) == []
    assert order_test_status(listener, order["order_id"]) == {"GLUF": "pending"}


def test_slow_sender_is_acked_and_another_connection_is_served_meanwhile(listener):
    order = listener.order(["GLUF", "CREA"])
    slow_id, fast_id = "S" + uid(), "Q" + uid()
    slow_bytes = VT + oru(slow_id, order["tubes"]["Fluoride"], [GLU]) + FS + CR
    slow_ack: list[bytes] = []
    finished: list[float] = []

    def dribble() -> None:
        with MllpClient(listener.port(INSTRUMENT)) as slow:
            slow.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in slow_bytes:
                slow.send_raw(bytes([byte]))
                time.sleep(0.01)
            slow_ack.append(slow.read_block())
            finished.append(time.monotonic())

    thread = threading.Thread(target=dribble)
    thread.start()
    time.sleep(0.3)  # the slow block is half-way in
    with MllpClient(listener.port(INSTRUMENT)) as fast:
        started = time.monotonic()
        fast_ack = fast.send(oru(fast_id, order["tubes"]["Plain"], [CREA]))
        fast_elapsed, fast_done = time.monotonic() - started, time.monotonic()
    thread.join(10)
    assert_aa(fast_ack, fast_id)
    assert fast_elapsed < 1.0, fast_elapsed
    assert len(slow_bytes) * 0.01 > 1.0 and finished and finished[0] > fast_done
    assert_aa(slow_ack[0], slow_id)
    assert message_by_control_id(listener, INSTRUMENT, slow_id)["raw"] == slow_bytes[1:-2]


def test_dropped_connection_mid_message_keeps_the_partial_and_acks_nothing(listener):
    order = listener.order(["GLUF"])
    control_id = "D" + uid()
    partial = oru(control_id, order["tubes"]["Fluoride"], [GLU])[:-20]
    with MllpClient(listener.port(INSTRUMENT)) as analyzer:
        analyzer.send_raw(VT + partial)
        time.sleep(0.1)
    [kept] = wait_for(lambda: messages_with(listener, INSTRUMENT, control_id))
    assert (kept["outcome"], kept["raw"], kept["detail"], kept["control_id"]) == (
        "rejected", VT + partial, "connection closed in the middle of a message; not acknowledged", "")
    with MllpClient(listener.port(INSTRUMENT)) as next_connection:
        probe(next_connection, listener)
    listener.process()
    assert results_of(listener, order["order_id"]) == []


def test_read_timeout_closes_a_half_block_and_keeps_it_but_an_idle_link_stays_open(listener, analyzer):
    """The read timeout applies to a half-received block only: analyzers keep one link all day."""
    control_id = "R" + uid()
    partial = (msh(control_id) + "\rPID|1\rOBR|1|NOTHING").encode()
    with MllpClient(listener.port(INSTRUMENT)) as idle:
        probe(idle, listener)
        analyzer.send_raw(VT + partial)
        started = time.monotonic()
        assert analyzer.closed_by_peer(timeout=5.0)  # closed without a byte sent back
        assert 1.8 < time.monotonic() - started < 4.0  # read_timeout_seconds = 2
        probe(idle, listener)  # idle as long as the other one, and still open
    [kept] = wait_for(lambda: messages_with(listener, INSTRUMENT, control_id))
    assert (kept["outcome"], kept["raw"], kept["detail"]) == (
        "rejected", VT + partial, "read timeout in the middle of a message; not acknowledged")


def test_unknown_test_code_is_kept_and_reported_and_known_codes_attach(listener, analyzer):
    order = listener.order(["GLUF"])
    control_id, code = "U" + uid(), "X" + uid()[:8]
    assert_aa(analyzer.send(oru(control_id, order["tubes"]["Fluoride"],
                                [GLU, f"NM|{code}^Mystery||42|U/L|10-50|N|||F"])), control_id)
    listener.process()
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 1, 1)
    assert [(r["code"], r["value"], r["message_id"]) for r in results_of(listener, order["order_id"])] == [
        ("GLUF", "250", message["id"])]
    assert unmatched_of(listener, message["id"]) == [{
        "sample_id": order["tubes"]["Fluoride"], "code": code, "test": None, "value": "42", "units": "U/L",
        "flags": "N", "comment": "", "reason": "unknown_code", "status": "open"}]


def test_unknown_sample_id_goes_to_the_unmatched_queue_and_nothing_is_attached(listener, analyzer):
    order = listener.order(["GLUF", "CREA"])  # a real order that must stay untouched
    control_id, sample_id = "N" + uid(), "NOSUCH" + uid()[:8]
    assert_aa(analyzer.send(oru(control_id, sample_id, [GLU, CREA])), control_id)
    listener.process()
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("unmatched", 0, 2)
    assert [(u["sample_id"], u["code"], u["test"], u["value"], u["reason"]) for u in unmatched_of(
        listener, message["id"])] == [(sample_id, "GLU", "GLUF", "250", "unknown_sample"),
                                       (sample_id, "CREA", "CREA", "1.1", "unknown_sample")]
    assert listener.sql("SELECT count(*) FROM result WHERE message_id = %s", message["id"]) == [(0,)]
    assert results_of(listener, order["order_id"]) == []


def test_tube_not_yet_received_is_unmatched_not_received(listener, analyzer):
    order = listener.order(["GLUF"], receive=False)
    control_id = "NR" + uid()
    assert_aa(analyzer.send(oru(control_id, order["tubes"]["Fluoride"], [GLU])), control_id)
    listener.process()
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert (message["outcome"], message["unmatched"]) == ("unmatched", 1)
    assert [(u["sample_id"], u["test"], u["reason"]) for u in unmatched_of(listener, message["id"])] == [
        (order["tubes"]["Fluoride"], "GLUF", "not_received")]
    assert results_of(listener, order["order_id"]) == []
    assert order_test_status(listener, order["order_id"]) == {"GLUF": "pending"}


def test_hl7_escapes_in_values_units_and_comments_are_resolved_after_splitting(listener, analyzer):
    order = listener.order(["GLUF"])
    control_id = "E" + uid()
    payload = oru(control_id, order["tubes"]["Fluoride"], [
        GLU,
        r"NTE|1|L|Called Dr. Rao \T\ team\F\ward 3\S\bed\R\12 in C:\E\lab",
        r"NTE|2|L|Read back\.br\confirmed",
        r"ST|REM^Remark\S\Note||A\F\B\S\C\T\D\R\E\E\F|10\S\9/L|||||F",
        r"NTE|1|L|x\S\y",
    ])
    assert_aa(analyzer.send(payload), control_id)
    listener.process()
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert message["raw"] == payload  # kept escaped, as sent
    [glucose] = results_of(listener, order["order_id"])
    assert glucose["value"] == "250"
    assert glucose["comment"] == "Called Dr. Rao & team|ward 3^bed~12 in C:\\lab\nRead back\nconfirmed"
    [remark] = unmatched_of(listener, message["id"])
    assert (remark["code"], remark["value"], remark["units"], remark["comment"], remark["reason"]) == (
        "REM", "A|B^C&D~E\\F", "10^9/L", "x^y", "unknown_code")


def test_non_ascii_utf8_is_stored_byte_exact_and_processed(listener, analyzer):
    order = listener.order(["CREA"])
    control_id = "U8" + uid()
    payload = oru(control_id, order["tubes"]["Plain"], [
        "NM|CREA^Creatinine||1.1|mg/dL|0.7-1.3|N|||F",
        "NTE|1|L|नमूना ठीक है – µ ok",
        "NM|UA^Uric acid||300|µmol/L|150-420|N|||F",
    ], charset="UNICODE UTF-8", pid="PID|1||MRN1||शर्मा^प्रिया||19800101|F")
    assert "शर्मा".encode() in payload and "µ".encode() in payload
    ack = analyzer.send(payload)
    assert_aa(ack, control_id)
    listener.process()
    message = message_by_control_id(listener, INSTRUMENT, control_id)
    assert message["raw"] == payload
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 1, 1)
    [crea] = results_of(listener, order["order_id"])
    assert (crea["value"], crea["comment"]) == ("1.10", "नमूना ठीक है – µ ok")
    [uric] = unmatched_of(listener, message["id"])
    assert (uric["code"], uric["value"], uric["units"]) == ("UA", "300", "µmol/L")


def test_a_resend_after_a_lost_ack_is_stored_once_and_attached_once(listener):
    order = listener.order(["GLUF"])
    control_id = "RS" + uid()
    payload = oru(control_id, order["tubes"]["Fluoride"], [GLU])
    with MllpClient(listener.port(INSTRUMENT)) as first:
        ack1 = first.send(payload)
    listener.process()
    with MllpClient(listener.port(INSTRUMENT)) as second:  # "our ACK never arrived": the same bytes again
        ack2 = second.send(payload)
    listener.process()
    assert_aa(ack1, control_id)
    assert_aa(ack2, control_id)
    assert ack_header(ack1)[1] != ack_header(ack2)[1]
    [row] = messages_with(listener, INSTRUMENT, control_id)
    assert (row["resent"], row["outcome"], row["attached"]) == (1, "matched", 1)
    assert [(r["code"], r["value"], r["attempt"], r["current"]) for r in results_of(listener, order["order_id"])] == [
        ("GLUF", "250", 1, True)]


@pytest.mark.parametrize("accept, application, codes", [
    ("NE", "AL", ["AA"]),          # IHE LAW analyzers: application ACK only
    ("AL", "AL", ["CA", "AA"]),    # commit ACK, then application ACK
    ("AL", "NE", ["CA"]),
    ("AL", "", ["CA"]),            # an empty MSH-16 next to a filled MSH-15 asks for nothing
    ("SU", "ER", ["CA"]),          # success: commit ACK asked for on success only
    ("NE", "NE", []),              # nothing asked for, nothing sent
])
def test_enhanced_mode_sends_exactly_the_acks_msh15_and_msh16_ask_for(listener, analyzer, accept, application,
                                                                       codes):
    order = listener.order(["GLUF"])
    control_id = "EN" + uid()
    analyzer.send_raw(VT + oru(control_id, order["tubes"]["Fluoride"], [GLU], accept=accept,
                               application=application) + FS + CR)
    acks = [analyzer.read_block() for _ in codes]
    for code, ack in zip(codes, acks):
        assert ack == generic_ack(ack, code, control_id), ack
    if len(acks) == 2:
        assert ack_header(acks[1])[1] == ack_header(acks[0])[1] + "-2"
    probe(analyzer, listener)  # and nothing more than those was sent
    assert message_by_control_id(listener, INSTRUMENT, control_id)["outcome"] == "stored"


def test_a_non_hl7_payload_inside_a_block_gets_ar_and_is_kept(listener, analyzer):
    junk = b"HELLO " + uid().encode() + b" this is not HL7\r"
    analyzer.send_raw(VT + junk + FS + CR)
    ack = analyzer.read_block()
    stamp, own_id = ack_header(ack)
    assert ack == (f"MSH|^~\\&|||||{stamp}||ACK|{own_id}|P|2.5.1\r"
                   "MSA|AR||Not an HL7 message\r"
                   "ERR|||100^Segment sequence error^HL70357|E\r").encode()
    [kept] = messages_with(listener, INSTRUMENT, junk)
    assert (kept["outcome"], kept["raw"], kept["detail"]) == (
        "rejected", junk, "not an HL7 message: the message does not start with an MSH segment")
    probe(analyzer, listener)


def test_garbage_then_msh_inside_one_block_is_rejected_with_the_right_msa2(listener, analyzer):
    """A block whose MSH is preceded by junk is not parsed as a message, but the AR still names
    the control id it found (the analyzer can tell which message was refused)."""
    control_id = "GM" + uid()
    payload = b"junk" + oru(control_id, "NOSUCH", [GLU])
    analyzer.send_raw(VT + payload + FS + CR)
    ack = analyzer.read_block()
    assert ack == generic_ack(ack, "AR", control_id, text="Not an HL7 message",
                              err="ERR|^^^100&Segment sequence error&HL70357"), ack
    [kept] = messages_with(listener, INSTRUMENT, control_id)
    assert (kept["outcome"], kept["raw"]) == ("rejected", payload)
    assert msa(ack)[2] == control_id
