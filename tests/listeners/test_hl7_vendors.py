"""Vendor HL7 messages replayed over MLLP into their configured instruments (instruments.md §1.3,
§1.5, §4): Mindray BC-6800, Mindray BS-240, Roche cobas pure (IHE LAW OUL^R22)."""
from __future__ import annotations

import pytest

from tests.listeners.clients import MllpClient
from tests.listeners.support import (ack_header, hl7, message_by_control_id, order_test_status, results_of, uid,
                                     unmatched_of)
from tests.unit.instruments import samples


def ack_from(ack: bytes, head: str, code: str, control_id: str, *, msh9: str, version: str) -> bytes:
    """Expected ACK bytes: `head` is MSH-3..6 as the analyzer should see them (swapped)."""
    stamp, own_id = ack_header(ack)
    return f"MSH|^~\\&|{head}|{stamp}||{msh9}|{own_id}|P|{version}\rMSA|{code}|{control_id}\r".encode()


# ------------------------------------------------------------------ Mindray BC-6800 (hematology)

IS_ROWS = [("08001", "O"), ("08002", "W"), ("08003", "CBC+DIFF"), ("12002", "T")]  # mode and suspect-flag rows


@pytest.mark.parametrize("instrument", ["mindray-bc", "mindray-bc-demo"])
def test_mindray_bc6800_cbc(listener, instrument):
    order = listener.order(["CBC"])
    barcode, control_id = order["tubes"]["EDTA"], uid()
    payload = (samples.MINDRAY_BC6800_ORU.replace(b"|24061201|", f"|{barcode}|".encode())
               .replace(b"|ORU^R01|1017|", f"|ORU^R01|{control_id}|".encode()))
    assert barcode.encode() in payload and control_id.encode() in payload
    with MllpClient(listener.port(instrument)) as analyzer:
        ack = analyzer.send(payload)
    assert ack == ack_from(ack, "||BC-6800|Mindray", "AA", control_id, msh9="ACK^R01", version="2.3.1"), ack
    listener.process()
    message = message_by_control_id(listener, instrument, control_id)
    assert message["raw"] == payload  # the UTF-8 (Devanagari) PID-5 kept byte for byte
    skip_is = instrument == "mindray-bc-demo"
    assert (message["outcome"], message["attached"], message["unmatched"]) == (
        "partly_matched", 3, 1 if skip_is else 5)
    results = {r["code"]: r for r in results_of(listener, order["order_id"])}
    assert sorted(results) == ["HB", "PLT", "WBC"]
    # sample id from OBR-3, LOINC codes; HGB 98 g/L x 0.1 = 9.8 g/dL, flagged by our own interval
    # (adult male 13-17), the analyzer's H~A / L~A kept as instrument flags
    assert {code: (r["value"], r["flag"], r["instrument_flags"], r["source"], r["message_id"])
            for code, r in results.items()} == {
        "WBC": ("12.5", "H", "H~A", "instrument", message["id"]),
        "HB": ("9.8", "L", "L~A", "instrument", message["id"]),
        "PLT": ("***", None, "", "instrument", message["id"]),  # '***' kept as sent for a technician
    }
    # With the default profile the IS rows (take/blood/test mode, the Leucocytosis suspect flag)
    # are not dropped: they wait in the unmatched queue as unmapped codes, like the unmapped BAS#.
    # With skip_value_types ED+IS (the demo lab's setting) they stay in the raw message only.
    # The ED histogram is skipped either way.
    unmatched = [(u["sample_id"], u["code"], u["value"], u["flags"], u["reason"])
                 for u in unmatched_of(listener, message["id"])]
    bas = (barcode, "704-7", "0.03", "N", "unknown_code")
    if skip_is:
        assert unmatched == [bas]
    else:
        assert unmatched == [(barcode, code, value, "", "unknown_code") for code, value in IS_ROWS[:3]] + [
            bas, (barcode, "12002", "T", "", "unknown_code")]
    detail = message_detail(listener, message["id"])
    assert "OBX 9: value type ED is not a result; skipped" in detail
    assert ("OBX 1: value type IS is not a result; skipped" in detail) is skip_is
    statuses = order_test_status(listener, order["order_id"])
    assert (statuses["WBC"], statuses["HB"], statuses["PLT"], statuses["HCT"]) == (
        "entered", "entered", "entered", "pending")


def message_detail(listener, message_id: int) -> str:  # type: ignore[no-untyped-def]
    return listener.sql("SELECT detail FROM instrument_message WHERE id = %s", message_id)[0][0]


# ------------------------------------------------------------------ Mindray BS-240 (chemistry)

def bs240(barcode: str, control_id: str, result_type: str) -> bytes:
    payload = (samples.mindray_bs240_oru(result_type, control_id)
               .replace(b"OBR|1|24061188|", f"OBR|1|{barcode}|".encode())
               .replace(b"OBX|1|NM|2|ALT|", b"OBX|1|NM|9|ALT|"))  # test number 9 is ALT on this analyzer
    assert barcode.encode() in payload and b"|9|ALT|" in payload
    return payload


@pytest.mark.parametrize("result_type", ["2", "1"])  # 2 = QC, 1 = calibration (MSH-16, Mindray's own use)
def test_mindray_bs240_qc_and_calibration_never_become_patient_results(listener, result_type):
    order = listener.order(["ALT"])
    barcode, qc_id, patient_id = order["tubes"]["Plain"], uid(), uid()
    with MllpClient(listener.port("mindray-bs")) as analyzer:
        qc_ack = analyzer.send(bs240(barcode, qc_id, result_type))
        listener.process()
        qc = message_by_control_id(listener, "mindray-bs", qc_id)
        assert (qc["outcome"], qc["attached"], qc["unmatched"]) == ("qc", 0, 0)
        assert message_detail(listener, qc["id"]) == "Quality control or calibration: kept for QC, not patient results."
        assert results_of(listener, order["order_id"]) == [] and unmatched_of(listener, qc["id"]) == []
        assert order_test_status(listener, order["order_id"]) == {"ALT": "pending"}
        patient_ack = analyzer.send(bs240(barcode, patient_id, "0"))
    # MSH-16 here is not an HL7 ack type, so both are original-mode AA ACKs
    for ack, control_id in ((qc_ack, qc_id), (patient_ack, patient_id)):
        assert ack == ack_from(ack, "||Mindray|BS-240", "AA", control_id, msh9="ACK^R01", version="2.3.1"), ack
    listener.process()
    patient = message_by_control_id(listener, "mindray-bs", patient_id)
    assert (patient["outcome"], patient["attached"]) == ("matched", 1)
    assert [(r["code"], r["value"], r["instrument_flags"], r["attempt"], r["message_id"])
            for r in results_of(listener, order["order_id"])] == [("ALT", "36", "N", 1, patient["id"])]


# ------------------------------------------------------------------ Roche cobas pure (IHE LAW OUL^R22)

def cobas_pure(barcode: str, control_id: str, *, role: str = "P") -> bytes:
    """OUL^R22 in the shape of samples.ROCHE_COBAS_PURE_OUL, with this lab's codes: 8717
    creatinine (an NM row and its CE row, as cobas sends them) and 8719 TSH."""
    return hl7(
        rf"MSH|^~\&|cobas pure||Host||20240612120000+0530||OUL^R22^OUL_R22|{control_id}|P|2.5.1|||NE|AL||UNICODE UTF-8|||LAB-29^IHE",
        r"PID|||||^^^^^^U|||U",
        rf"SPM|1|{barcode}&BARCODE||SERUM^^99ROC|||||||{role}^^HL70369",
        rf"SAC|||{barcode}^BARCODE|||||||50016|1",
        r'OBR|1|""||8717^^99ROC^^^IHELAW|||||||A',
        r"ORC|SC||||CM",
        r"TQ1|||||||||R^^HL70485",
        r"OBX|1|NM|8717^^99ROC^^^IHELAW|1|0,93|mg/dL^^UCUM|0.7-1.3|N^^HL70078|||F|||||BatchID||c503^ROCHE~1^ROCHE|20240612115520",
        r"OBX|2|CE|8717^^99ROC^^^IHELAW|1|1^^99ROC||||||F|||||||c503^ROCHE|20240612115520",
        r"OBX|3|NM|8719^^99ROC^^^IHELAW|1|2,41|µIU/mL^^UCUM|0.27-4.2|N^^HL70078|||F|||||||e801^ROCHE|20240612115610",
        r"TCD|8717^^99ROC^^^IHELAW|^1^:^1",
    )


def send_cobas_pure(listener, payload: bytes) -> bytes:  # type: ignore[no-untyped-def]
    with MllpClient(listener.port("roche-pure")) as analyzer:
        return analyzer.send(payload)


def test_cobas_pure_oul_r22_ack_and_values(listener):
    order = listener.order(["CREA", "TSH"])
    barcode, control_id = order["tubes"]["Plain"], uid()
    ack = send_cobas_pure(listener, cobas_pure(barcode, control_id))
    # IHE LAW: MSH-15 NE / MSH-16 AL -> one application ACK, ACK^R22^ACK, v2.5.1 copied
    assert ack == ack_from(ack, "Host||cobas pure|", "AA", control_id, msh9="ACK^R22^ACK", version="2.5.1"), ack
    listener.process()
    message = message_by_control_id(listener, "roche-pure", control_id)
    assert message["message_type"] == "OUL^R22"
    current = {r["code"]: r for r in results_of(listener, order["order_id"], current_only=True)}
    # id from SPM-2 (OBR-2 is the HL7 null), comma decimals normalised, N^^HL70078 kept as N
    assert (current["CREA"]["value"], current["CREA"]["instrument_flags"]) == ("0.93", "N")
    assert (current["TSH"]["value"], current["TSH"]["instrument_flags"]) == ("2.41", "N")


def test_cobas_pure_ce_row_does_not_become_a_second_result(listener):
    """Found by this suite: the CE row was saved as a new attempt of CREA ('1.00'), the real
    0.93 marked 'rerun'. Fixed in app/services/ingestion.py."""
    order = listener.order(["CREA"])
    control_id = uid()
    send_cobas_pure(listener, cobas_pure(order["tubes"]["Plain"], control_id))
    listener.process()
    assert [(r["code"], r["value"], r["attempt"], r["current"], r["status"])
            for r in results_of(listener, order["order_id"])] == [("CREA", "0.93", 1, True, "entered")]
    message = message_by_control_id(listener, "roche-pure", control_id)
    # the CE row is neither a result nor an unmatched row (8719 TSH was not ordered: that one is)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 1, 1)
    assert [(u["code"], u["reason"]) for u in unmatched_of(listener, message["id"])] == [("8719", "not_ordered")]
    assert "CE row of 8717 kept in the message only" in message_detail(listener, message["id"])


def test_cobas_pure_qc_specimen_role_is_qc(listener):
    order = listener.order(["CREA"])
    control_id = uid()
    ack = send_cobas_pure(listener, cobas_pure(order["tubes"]["Plain"], control_id, role="Q"))
    assert ack == ack_from(ack, "Host||cobas pure|", "AA", control_id, msh9="ACK^R22^ACK", version="2.5.1"), ack
    listener.process()
    message = message_by_control_id(listener, "roche-pure", control_id)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("qc", 0, 0)
    assert results_of(listener, order["order_id"]) == []
