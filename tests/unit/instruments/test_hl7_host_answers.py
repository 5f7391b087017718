"""The HL7 messages the LIS sends on its own: the Mindray DSR^Q03 query answer (instruments.md
§1.5) and reading the analyzer's ACK to a message of ours (§1.2)."""
from __future__ import annotations

from datetime import date, datetime

from app.integrations.instruments import hl7
from app.integrations.instruments.hl7 import QueriedSample, parse_message

from . import samples

NOW = datetime(2024, 6, 12, 10, 15, 1)

TUBE = QueriedSample(barcode="24061188", patient_id="1000017", patient_name="Rao^Lakshmi|B", dob=date(1990, 2, 3),
                     sex="female", collected_at=datetime(2024, 6, 12, 9, 40), urgent=True, specimen="Serum",
                     test_codes=["1", "A&B"])


def dsp_lines(values: dict[int, str], tests: list[str]) -> bytes:
    lines = [f"DSP|{n}||{values.get(n, '')}|||" for n in range(1, 29)]
    lines += [f"DSP|{n}||{code}^^^|||" for n, code in enumerate(tests, start=29)]
    return "".join(line + "\r" for line in lines).encode()


def test_dsr_q03_bytes():
    reply = hl7.query_orders(parse_message(samples.MINDRAY_BS_QRY), TUBE, now=NOW, control_id="L4")
    assert reply == (
        b"MSH|^~\\&|||Mindray|BS-240|20240612101501||DSR^Q03|L4|P|2.3.1\r"
        b"MSA|AA|13|Message accepted|||0\r"
        b"ERR|0\r"
        b"QAK|SR|OK\r"
        b"QRD|20240612101600|R|D|1|||RD|24061188|OTH|||T|\r"   # the query's QRD and QRF, as received
        b"QRF|BS-240|||||RCT|COR|ALL||\r"
        + dsp_lines({1: "1000017", 3: "Rao\\S\\Lakshmi\\F\\B", 4: "19900203000000", 5: "F", 21: "24061188",
                     23: "20240612094000", 24: "Y", 26: "serum"}, ["1", "A\\T\\B"])
        + b"DSC|\r")


def test_dsr_q03_reads_back_and_marks_a_continuation():
    routine = QueriedSample(barcode="X1", patient_id="", patient_name="प्रिया", dob=None, sex="", collected_at=None,
                            urgent=False, specimen="", test_codes=["GLU"])
    reply = hl7.query_orders(parse_message(samples.MINDRAY_BS_QRY), routine, now=NOW, control_id="L5",
                             continuation="2")
    msg = parse_message(reply)
    assert msg.message_type == "DSR^Q03" and msg.control_id == "L5"
    dsp = {int(f[1]): hl7.unescape(f[3]) for f in msg.segments_named("DSP")}
    assert (dsp[3], dsp[4], dsp[5], dsp[24], dsp[29], len(dsp)) == ("प्रिया", "", "", "N", "GLU^^^", 29)
    assert msg.get("DSC-1") == "2"


def test_read_ack_codes_and_reasons():
    aa = parse_message(b"MSH|^~\\&|BS|M|LIS||20240612||ACK^O01|9|P|2.3.1\rMSA|AA|ORD1|Message accepted\r")
    assert hl7.read_ack(aa) == ("AA", "ORD1", "Message accepted")
    ae25 = parse_message(b"MSH|^~\\&|A|B|||||ACK^O01^ACK|9|P|2.5.1\rMSA|ae|ORD2\rERR|||207^Unknown test^HL70357|E\r")
    assert hl7.read_ack(ae25) == ("AE", "ORD2", "Unknown test")
    ar231 = parse_message(b"MSH|^~\\&|A|B|||||ACK|9|P|2.3.1\rMSA|AR|ORD3\rERR|^^^100&Bad \\T\\ seg&HL70357\r")
    assert hl7.read_ack(ar231) == ("AR", "ORD3", "Bad & seg")
    bare = parse_message(b"MSH|^~\\&|A|B|||||ACK|9|P|2.3.1\r")
    assert hl7.read_ack(bare) == ("", "", "")


def test_order_message_of_a_queued_tube_is_what_the_outbox_stores():
    """The ORM^O01 the outbox keeps: PID-3 the MRN, one ORC/OBR per instrument code, S for STAT."""
    payload = hl7.build_order_message(
        sample_id="100000017", patient_name="Listener Test", patient_id="1000017", sex="male", dob=date(1975, 3, 1),
        priority="stat", test_codes=["1", "3"], sender=("LIS", ""), receiver=("mindray-bs", ""),
        control_id="c0ffee", now=NOW)
    msg = parse_message(payload)
    assert (msg.message_type, msg.control_id, msg.get("MSH-5"), msg.get("PID-3"), msg.get("PID-8")) == (
        "ORM^O01", "c0ffee", "mindray-bs", "1000017", "M")
    assert [(f[2], f[4], f[5]) for f in msg.segments_named("OBR")] == [("100000017", "1", "S"), ("100000017", "3", "S")]
