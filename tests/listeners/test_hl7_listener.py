"""HL7 v2 over MLLP into a configured instrument: durable, byte-correct ACKs, right results on
the right tubes, and bad input kept raw without harming anything else."""
from __future__ import annotations

from tests.listeners.clients import MllpClient, msa


def oru(control_id: str, barcode: str, obx: list[str], *, msh15: str = "", msh16: str = "") -> bytes:
    segments = [f"MSH|^~\\&|ANALYZER|LAB|LIS|LAB|20261122101500||ORU^R01|{control_id}|P|2.3.1|||{msh15}|{msh16}",
                "PID|1||||",
                f"OBR|1|{barcode}||CHEM^Chemistry|||20261122100000"]
    segments += [f"OBX|{i}|NM|{line}" for i, line in enumerate(obx, start=1)]
    return "\r".join(segments).encode() + b"\r"


def test_results_attach_to_the_received_tube_with_flags(listener):
    order = listener.order(["GLUF", "CREA"])
    fluoride, plain = order["tubes"]["Fluoride"], order["tubes"]["Plain"]
    with MllpClient(listener.port("generic-hl7")) as analyzer:
        ack1 = analyzer.send(oru("C1", fluoride, ["GLU^Glucose||250|mg/dL|70-100|H|||F"]))
        ack2 = analyzer.send(oru("C2", plain, ["CREA^Creatinine||1.1|mg/dL|0.7-1.3|N|||F"]))
    assert msa(ack1)[1:3] == ["AA", "C1"] and msa(ack2)[1:3] == ["AA", "C2"]
    stored = listener.sql("SELECT control_id, outcome FROM instrument_message WHERE control_id IN ('C1','C2')")
    assert sorted(stored) == [("C1", "stored"), ("C2", "stored")]  # committed before the ACK came back
    listener.process()
    rows = listener.sql(
        "SELECT t.code, r.value_text, r.flag, r.source, r.status FROM result r JOIN lab_test t ON t.id = r.test_id "
        "JOIN order_test ot ON ot.id = r.order_test_id WHERE ot.order_id = %s ORDER BY t.code", order["order_id"])
    assert rows == [("CREA", "1.10", None, "instrument", "entered"), ("GLUF", "250", "H", "instrument", "entered")]


def test_an_acknowledgement_is_stored_but_never_acknowledged(listener):
    import uuid

    control = uuid.uuid4().hex[:12]
    ack = (f"MSH|^~\\&|ANALYZER|LAB|LIS|LAB|20261122101500||ACK^O01|{control}|P|2.3.1\rMSA|AA|ORD1\r").encode()
    with MllpClient(listener.port("generic-hl7"), timeout=1.0) as analyzer:
        analyzer.send_raw(b"\x0b" + ack + b"\x1c\r")
        follow_up = analyzer.send(oru("F" + control[:10], "123", ["GLU^Glucose||90|mg/dL||N|||F"]))
    # The next block on the wire answers the ORU, not the ACK.
    assert msa(follow_up)[2] == "F" + control[:10]
    assert listener.sql("SELECT message_type FROM instrument_message WHERE control_id = %s", control) == [("ACK^O01",)]
