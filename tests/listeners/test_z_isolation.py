"""Isolation and survival (runs last in this directory on purpose: the file name sorts last).

One connection's garbage or oversize block never holds up another connection; random bytes never
cost the valid message that follows them its AA; and after everything the other files threw at
the listener it still answers every instrument port, with nothing logged as an error."""
from __future__ import annotations

import threading
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.listeners.clients import ACK, CR, ENQ, EOT, FS, VT, AstmClient, MllpClient, msa
from tests.listeners.conftest import INSTRUMENTS
from tests.listeners.support import (assert_aa, generic_ack, message_by_control_id, messages_with, oru, probe,
                                     results_of, uid, wait_for)

INSTRUMENT = "generic-hl7"
GLU = "NM|GLU^Glucose||250|mg/dL|70-100|H|||F"
CREA = "NM|CREA^Creatinine||1.1|mg/dL|0.7-1.3|N|||F"


def test_oversize_and_garbage_on_one_connection_do_not_hold_up_another(listener):
    order = listener.order(["GLUF", "CREA"])
    big_id = "BIG" + uid()
    with MllpClient(listener.port(INSTRUMENT)) as flooder, MllpClient(listener.port(INSTRUMENT)) as normal:
        flooder.send_raw(VT + oru(big_id, "NOSUCH", [GLU])[:-1] + b"\rNTE|1|L|")
        for round_ in range(4):  # 4 x 20 000 bytes: past the 65 536-byte cap while the other link works
            flooder.send_raw(b"y" * 20_000)
            control_id = f"N{round_}" + uid()
            started = time.monotonic()
            ack = normal.send(oru(control_id, order["tubes"]["Plain"], [CREA]))
            assert time.monotonic() - started < 1.0
            assert_aa(ack, control_id)
        flooder.send_raw(FS + CR)
        refused = flooder.read_block()
        assert refused == generic_ack(refused, "AR", big_id, text="Message too large",
                                      err="ERR|^^^100&Segment sequence error&HL70357"), refused
        noise = b"\x00\x07garbage " + uid().encode() + b" " + bytes(range(0x20, 0x7f)) * 100
        flooder.send_raw(noise)  # no VT in it: all garbage
        control_id = "N9" + uid()
        assert_aa(normal.send(oru(control_id, order["tubes"]["Fluoride"], [GLU])), control_id)
        probe(flooder, listener)  # the flooder's own link recovers at its next VT
    [kept_noise] = messages_with(listener, INSTRUMENT, noise)
    assert (kept_noise["outcome"], kept_noise["raw"]) == ("rejected", noise)
    [big] = messages_with(listener, INSTRUMENT, big_id)
    assert (big["outcome"], len(big["raw"])) == ("rejected", 65536)
    listener.process()
    assert [(r["code"], r["attempt"]) for r in results_of(listener, order["order_id"])] == [
        ("CREA", 1), ("GLUF", 1)]  # four identical CREA values: one result, the others are the same value


def test_many_connections_at_once_each_get_their_own_acks(listener):
    errors: list[BaseException] = []

    def analyzer(n: int) -> None:
        try:
            with MllpClient(listener.port(INSTRUMENT)) as client:
                for i in range(5):
                    control_id = f"M{n}-{i}-" + uid()
                    assert_aa(client.send(oru(control_id, "NOSUCH" + uid(), [GLU])), control_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=analyzer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []


def msa_fields(ack: bytes) -> list[bytes]:
    [segment] = [s for s in ack.split(b"\r") if s.startswith(b"MSA")]
    return segment.split(b"|")


# random bytes, with the framing bytes and a bare MSH start mixed in often enough to matter
NOISE = st.lists(st.one_of(st.binary(max_size=120),
                           st.sampled_from([VT, FS, CR, FS + CR, b"\n", b"\x00", VT + b"MSH|^~\\&|", b"MSH|"])),
                 max_size=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=NOISE, cut=st.integers(min_value=0, max_value=400))
def test_random_bytes_then_a_valid_message_still_gets_its_aa(listener, noise, cut):
    control_id = "H" + uid()
    block = VT + oru(control_id, "NOSUCH" + uid(), [GLU]) + FS + CR
    cut = min(cut, len(block))
    with MllpClient(listener.port(INSTRUMENT)) as client:
        for chunk in noise:
            client.send_raw(chunk)
        client.send_raw(block[:cut])
        client.send_raw(block[cut:])
        for _ in range(len(b"".join(noise)) + 1):  # the noise may hold whole blocks of its own: ACKed first
            ack = client.read_block()
            if msa_fields(ack)[2:3] == [control_id.encode()]:
                break
            assert control_id.encode() not in ack, ack
        assert_aa(ack, control_id)
    assert message_by_control_id(listener, INSTRUMENT, control_id)["outcome"] == "stored"


def test_after_everything_every_port_still_answers_and_nothing_was_logged_as_an_error(listener, listener_errors):
    for name, (protocol, *_rest) in INSTRUMENTS.items():
        if protocol == "hl7":
            with MllpClient(listener.port(name)) as client:
                control_id = "LAST" + uid()
                ack = client.send(oru(control_id, "NOSUCH" + uid(), [GLU]))
                assert msa(ack)[1:3] == ["AA", control_id], (name, ack)
        else:
            with AstmClient(listener.port(name)) as client:
                client.send_raw(ENQ)
                assert client.reply() == ACK, name
                client.send_raw(EOT)
    with MllpClient(listener.port(INSTRUMENT)) as client:
        probe(client, listener)
    assert [r.getMessage() for r in listener_errors] == []
    # every connection of the whole session was counted out again
    assert wait_for(lambda: listener.sql("SELECT sum(connections) FROM instrument")[0][0] == 0), listener.sql(
        "SELECT name, connections FROM instrument ORDER BY name")
