"""HL7 v2 parsing, extraction and replies (instruments.md §1.2-§1.5, §4)."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from app.integrations.instruments import hl7
from app.integrations.instruments.hl7 import Hl7Delimiters, ack_messages, escape, parse_message, unescape
from app.integrations.instruments.parsed import ProtocolError

from . import samples

NOW = datetime(2024, 6, 12, 10, 15, 1)
BC_PROFILE = {"sample_id_field": "OBR-3"}
BS_PROFILE = {"sample_id_field": "OBR-2", "sample_id_fallbacks": [], "test_name_field": "OBX-4",
              "qc_field": "MSH-16", "qc_values": ["1", "2"]}
ROCHE_PROFILE = {"sample_id_field": "SPM-2"}


# --- parsing ---------------------------------------------------------------------------------


def test_segments_fields_and_msh_numbering():
    msg = parse_message(samples.GENERIC_CHEMISTRY_ORU)
    assert [name for name, _ in msg.segments] == ["MSH", "PID", "OBR", "NTE", "OBX", "NTE", "NTE", "OBX", "OBX", "OBX"]
    assert msg.get("MSH-1") == "|"
    assert msg.get("MSH-2") == "^~\\&"
    assert msg.get("MSH-3") == "CHEMLAB"
    assert msg.get("MSH-9") == "ORU^R01^ORU_R01"
    assert msg.get("MSH-9.2") == "R01"
    assert msg.message_type == "ORU^R01"
    assert msg.control_id == "MSG00077"
    assert msg.get("PID-5.2") == "Ravi"
    assert msg.get("OBX-3.1", segment_index=1) == "K"
    assert msg.get("OBX-3.1", segment_index=9) == ""
    assert msg.get("ZZZ-1") == ""


def test_split_first_then_unescape_the_leaf():
    msg = parse_message(samples.GENERIC_CHEMISTRY_ORU)
    assert msg.get("OBX-6", segment_index=2) == "10^9/L"       # \S\ is not a component boundary
    assert msg.get("OBX-6.1", segment_index=2) == "10^9/L"
    assert msg.get("OBX-5", segment_index=2) == "A|B~C\\D&E"
    assert msg.get("OBX-5", segment_index=3) == ""             # "" is the HL7 null


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n"])
def test_any_line_ending_separates_segments(terminator):
    payload = samples.MINDRAY_BS240_ORU.replace(b"\r", terminator)
    assert [name for name, _ in parse_message(payload).segments] == ["MSH", "PID", "OBR", "OBX"]


def test_leading_whitespace_is_tolerated():
    assert parse_message(b"\r\n  " + samples.MINDRAY_BS240_ORU).control_id == "12"


@pytest.mark.parametrize("payload", [b"", b"   ", b"PID|1", b"MSH", b"MSH|", b"MSHA^~\\&", b"hello\rMSH|^~\\&|x"])
def test_no_usable_msh_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        parse_message(payload)


def test_non_default_delimiters():
    msg = parse_message(b"MSH#$*@%#A#B\rOBX#1#NM#GLU$Glucose##5@F@6#mg%dl\r")
    assert msg.delimiters == Hl7Delimiters(field="#", component="$", repetition="*", escape="@", subcomponent="%")
    assert msg.get("OBX-3.2") == "Glucose"
    assert msg.get("OBX-5") == "5#6"
    assert msg.get("OBX-6.1.2") == "dl"


def test_charset_from_msh18_utf8():
    msg = parse_message(samples.MINDRAY_BC6800_ORU)  # MSH-18 UNICODE
    assert msg.get("PID-5.2") == "शर्मा प्रिया"
    assert msg.encoding == "utf-8"
    assert msg.warnings == []


def test_undeclared_charset_falls_back_to_latin1_for_8bit_devices():
    payload = b"MSH|^~\\&|A|B|||||ORU^R01|1|P|2.3.1\rOBX|1|NM|TSH||2.4|\xb5IU/mL\r"
    msg = parse_message(payload)
    assert msg.get("OBX-6") == "µIU/mL"
    assert "text is not UTF-8; read as Latin-1" in msg.warnings


def test_declared_latin1_and_explicit_encoding():
    payload = b"MSH|^~\\&|A|B|||||ORU^R01|1|P|2.3.1||||||8859/1\rOBX|1|NM|TSH||2.4|\xb5IU/mL\r"
    msg = parse_message(payload)
    assert (msg.get("MSH-18"), msg.get("OBX-6"), msg.encoding, msg.warnings) == ("8859/1", "µIU/mL", "latin-1", [])
    utf8 = "MSH|^~\\&|A\rOBX|1|NM|TSH||2.4|µIU/mL\r".encode()
    assert parse_message(utf8, encoding="latin-1").get("OBX-6") == "Âµ" + "IU/mL"
    assert parse_message(utf8, encoding="no-such-codec").get("OBX-6") == "µIU/mL"


def test_declared_utf8_with_bad_bytes_is_replaced_not_raised():
    payload = b"MSH|^~\\&|A|B|||||ORU^R01|1|P|2.5.1||||||UNICODE UTF-8\rOBX|1|ST|X||\xff\xfe\r"
    msg = parse_message(payload)
    assert msg.get("OBX-5") == "\ufffd\ufffd"
    assert msg.warnings


# --- escapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, text", [
    ("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~"), ("\\E\\", "\\"),
    ("line1\\.br\\line2", "line1\nline2"), ("\\X41\\\\X42\\", "AB"), ("\\XC2B5\\", "µ"),
    ("\\E\\R\\", "\\R\\"),  # python-hl7 #84 loses this backslash
    ("\\H\\bold\\N\\", "bold"), ("\\Q\\", "\\Q\\"), ("50\\", "50\\"), ("a\\\\b", "a\\\\b"),
])
def test_unescape(raw, text):
    assert unescape(raw) == text


def test_escape_escapes_the_escape_char_first_and_line_breaks():
    assert escape("a|b^c&d~e\\f") == r"a\F\b\S\c\T\d\R\e\E\f"
    assert escape("one\r\ntwo\nthree") == r"one\.br\two\.br\three"
    assert escape(r"\.br\ literal") == r"\E\.br\E\ literal"
    for text in ["a|b^c&d~e\\f", "\\E\\R\\", "x\ny"]:
        assert unescape(escape(text)) == text


# --- extraction ------------------------------------------------------------------------------


def test_mindray_bc6800_hematology():
    parsed = hl7.extract(parse_message(samples.MINDRAY_BC6800_ORU), BC_PROFILE)
    assert (parsed.protocol, parsed.kind, parsed.message_type) == ("hl7", "results", "ORU^R01")
    assert (parsed.control_id, parsed.sender) == ("1017", "BC-6800^Mindray")
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061201" and not specimen.qc
    by_code = {r.code: r for r in specimen.results}
    wbc = by_code["6690-2"]
    assert (wbc.name, wbc.value, wbc.units, wbc.reference_range, wbc.flags, wbc.status, wbc.value_type) == \
        ("WBC", "12.45", "10*9/L", "3.50-9.50", ["H", "A"], "F", "NM")
    assert wbc.observed_at == datetime(2024, 6, 12, 9, 28)   # OBX-14 empty: OBR-7
    assert by_code["704-7"].flags == ["N"]                   # "~N": empty repetition dropped
    assert by_code["718-7"].flags == ["L", "A"]
    assert by_code["777-3"].value == "***"
    assert by_code["08001"].value_type == "IS" and by_code["08001"].value == "O"
    assert by_code["12002"].value == "T"
    assert "15000" not in by_code                             # ED histogram is not a result
    assert parsed.warnings == ["OBX 9: value type ED is not a result; skipped"]


def test_mindray_bc_default_profile_reads_obr3_as_fallback_with_a_warning():
    parsed = hl7.extract(parse_message(samples.MINDRAY_BC6800_ORU))
    assert parsed.specimens[0].sample_id == "24061201"
    assert "sample id taken from OBR-3 (OBR-2 is empty)" in parsed.warnings


@pytest.mark.parametrize("result_type, kind", [("0", "results"), ("1", "qc"), ("2", "qc")])
def test_mindray_bs240_one_test_name_in_obx4_and_msh16_result_type(result_type, kind):
    parsed = hl7.extract(parse_message(samples.mindray_bs240_oru(result_type)), BS_PROFILE)
    assert parsed.kind == kind
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061188"          # OBR-2; OBR-3 is the rack position
    assert specimen.qc is (kind == "qc")
    [result] = specimen.results
    assert (result.code, result.name, result.value, result.units, result.flags) == ("2", "ALT", "35.6", "U/L", ["N"])
    assert result.observed_at == datetime(2024, 6, 12, 10, 10)


def test_generic_chemistry_critical_flags_notes_and_escapes():
    parsed = hl7.extract(parse_message(samples.GENERIC_CHEMISTRY_ORU))
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061300"
    assert specimen.comments == ["Sample slightly haemolysed"]
    glu, k, note, crea = specimen.results
    assert (glu.code, glu.name, glu.flags) == ("GLU", "Glucose", ["HH"])
    assert glu.comments == ["Critical value called to Dr. Rao & team", "Read back\nconfirmed"]
    assert glu.observed_at == datetime(2024, 6, 12, 10, 55)
    assert (k.flags, k.comments) == (["LL"], [])
    assert (note.name, note.value, note.units) == ("Remark^Note", "A|B~C\\D&E", "10^9/L")
    assert (crea.value, crea.status) == ("", "X")
    assert parsed.warnings == []


def test_roche_cobas_pure_oul_r22():
    parsed = hl7.extract(parse_message(samples.ROCHE_COBAS_PURE_OUL), ROCHE_PROFILE)
    assert (parsed.kind, parsed.message_type, parsed.sender) == ("results", "OUL^R22", "cobas pure")
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061177" and not specimen.qc
    nm, ce, tsh = specimen.results
    assert (nm.code, nm.value_type, nm.value, nm.units, nm.flags) == ("20340", "NM", "47,3", "U/L", ["N"])
    assert (ce.code, ce.value_type, ce.value) == ("20340", "CE", "1")
    assert nm.observed_at == datetime(2024, 6, 12, 11, 55, 20)   # OBX-19
    assert (tsh.units, tsh.value) == ("µIU/mL", "2,41")
    assert parsed.warnings == []


def test_roche_default_profile_finds_spm2_after_obr2_null():
    parsed = hl7.extract(parse_message(samples.ROCHE_COBAS_PURE_OUL))
    assert parsed.specimens[0].sample_id == "24061177"
    assert parsed.warnings == ["sample id taken from SPM-2 (OBR-2 is empty)"]


def test_spm11_control_role_marks_qc():
    parsed = hl7.extract(parse_message(samples.ROCHE_COBAS_PURE_QC), ROCHE_PROFILE)
    assert parsed.kind == "qc" and parsed.specimens[0].qc


def test_two_patients_two_orders():
    payload = (
        "MSH|^~\\&|X|Y|||20240612||ORU^R01|5|P|2.3.1\r"
        "PID|1||P1\rOBR|1|S1\rOBX|1|NM|A||1\rNTE|1||note a\r"
        "PID|2||P2\rOBR|1|\rOBX|1|NM|B||2\r"
    ).encode()
    parsed = hl7.extract(parse_message(payload), {"sample_id_fallbacks": ["PID-3"]})
    assert [s.sample_id for s in parsed.specimens] == ["S1", "P2"]     # PID-3 of its own patient
    assert [[r.code for r in s.results] for s in parsed.specimens] == [["A"], ["B"]]
    assert parsed.specimens[0].results[0].comments == ["note a"]


def test_missing_sample_id_warns_and_values_stay():
    payload = b"MSH|^~\\&|X|Y|||||ORU^R01|5|P|2.3.1\rOBR|1\rOBX|1|SN|A||<^20|||<\r"
    parsed = hl7.extract(parse_message(payload), {"sample_id_fallbacks": []})
    assert parsed.specimens[0].sample_id == ""
    assert parsed.specimens[0].results[0].value == "<20"
    assert parsed.specimens[0].results[0].flags == ["<"]
    assert "a specimen has no sample id" in parsed.warnings


def test_obx_without_obr_and_unknown_segments_are_warnings():
    payload = b"MSH|^~\\&|X|Y|||||ORU^R01|5|P|2.3.1\rXYZ|1\rZMR|1\rOBX|1|NM|A||1||||||F|||2024xx\r"
    parsed = hl7.extract(parse_message(payload))
    assert [r.code for r in parsed.specimens[0].results] == ["A"]
    assert "unknown segment XYZ ignored" in parsed.warnings
    assert not any("ZMR" in w for w in parsed.warnings)   # Z segments are vendor extensions
    assert "OBX 1: OBX-14 is not a valid timestamp" in parsed.warnings
    assert parsed.specimens[0].results[0].status == "F"


def test_mindray_qry_q02_query():
    parsed = hl7.extract(parse_message(samples.MINDRAY_BS_QRY))
    assert (parsed.kind, parsed.message_type, parsed.query_ids) == ("query", "QRY^Q02", ["24061188"])


def test_qbp_q11_query():
    payload = b"MSH|^~\\&|cobas pure||Host||20240612||QBP^Q11^QBP_Q11|77|P|2.5.1\rQPD|WOS^Work Order Step^IHE_LABTF|Q1|24061177^BARCODE\rRCP|I\r"
    parsed = hl7.extract(parse_message(payload))
    assert (parsed.kind, parsed.query_ids) == ("query", ["24061177"])


def test_other_message_kind():
    parsed = hl7.extract(parse_message(b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1\r"))
    assert (parsed.kind, parsed.message_type, parsed.specimens) == ("other", "ADT^A01", [])


def test_bad_profile_path_is_a_value_error():
    with pytest.raises(ValueError, match="field path"):
        hl7.extract(parse_message(samples.MINDRAY_BS240_ORU), {"sample_id_field": "OBR3"})


# --- ACKs ------------------------------------------------------------------------------------


def acks(payload: bytes, **kwargs) -> list[bytes]:
    kwargs.setdefault("accepted", True)
    return ack_messages(parse_message(payload), payload, now=NOW, control_id="LIS0001", **kwargs)


def test_original_mode_aa_for_mindray_bs_whose_msh16_is_not_an_ack_type():
    assert acks(samples.mindray_bs240_oru("2")) == [
        b"MSH|^~\\&|||Mindray|BS-240|20240612101501||ACK^R01|LIS0001|P|2.3.1\rMSA|AA|12\r"]


def test_original_mode_ae_with_text_and_err_v251_and_three_component_type():
    assert acks(samples.GENERIC_CHEMISTRY_ORU, accepted=False, error_text="Unknown test & code") == [
        b"MSH|^~\\&|LIS|HOSPITAL|CHEMLAB|MAIN LAB|20240612101501||ACK^R01^ACK|LIS0001|P|2.5.1\r"
        b"MSA|AE|MSG00077|Unknown test \\T\\ code\r"
        b"ERR|||207^Application internal error^HL70357|E\r"]


def test_original_mode_ar_with_v231_err():
    assert acks(samples.MINDRAY_BS240_ORU, accepted=False, reject=True) == [
        b"MSH|^~\\&|||Mindray|BS-240|20240612101501||ACK^R01|LIS0001|P|2.3.1\r"
        b"MSA|AR|12\r"
        b"ERR|^^^207&Application internal error&HL70357\r"]


def test_enhanced_mode_ne_al_gives_application_ack_only():
    assert acks(samples.ROCHE_COBAS_PURE_OUL) == [
        b"MSH|^~\\&|Host||cobas pure||20240612101501||ACK^R22^ACK|LIS0001|P|2.5.1\rMSA|AA|13578\r"]


def with_ack_types(accept: str, application: str) -> bytes:
    return samples.ROCHE_COBAS_PURE_OUL.replace(b"|||NE|AL||", f"|||{accept}|{application}||".encode())


def test_enhanced_mode_al_al_gives_commit_then_application_ack():
    commit, application = acks(with_ack_types("AL", "AL"))
    assert commit == b"MSH|^~\\&|Host||cobas pure||20240612101501||ACK^R22^ACK|LIS0001|P|2.5.1\rMSA|CA|13578\r"
    assert application == b"MSH|^~\\&|Host||cobas pure||20240612101501||ACK^R22^ACK|LIS0001-2|P|2.5.1\rMSA|AA|13578\r"


@pytest.mark.parametrize("accept, application, accepted, reject, codes", [
    ("NE", "NE", True, False, []),
    ("ER", "SU", True, False, ["AA"]),
    ("ER", "SU", False, False, ["CE"]),
    ("SU", "ER", False, True, ["AR"]),
    ("SU", "ER", True, False, ["CA"]),
    ("AL", "", False, False, ["CE"]),
    ("", "ER", False, True, ["AR"]),
])
def test_enhanced_mode_conditions(accept, application, accepted, reject, codes):
    sent = acks(with_ack_types(accept, application), accepted=accepted, reject=reject)
    assert [a.split(b"\r")[1].split(b"|")[1].decode() for a in sent] == codes
    for ack in sent:
        if not ack.split(b"\r")[1].startswith((b"MSA|AA", b"MSA|CA")):
            assert b"\rERR|||207^Application internal error^HL70357|E\r" in ack


def test_unparseable_payload_gets_ar_with_defaults():
    assert ack_messages(None, b"\x00garbage", accepted=False, now=NOW, control_id="LIS0009") == [
        b"MSH|^~\\&|||||20240612101501||ACK|LIS0009|P|2.5.1\r"
        b"MSA|AR|\r"
        b"ERR|||100^Segment sequence error^HL70357|E\r"]


def test_unparseable_payload_with_an_msh_inside_keeps_msa2():
    [ack] = ack_messages(None, b"junk" + samples.MINDRAY_BS240_ORU, accepted=False, now=NOW, control_id="L1")
    assert ack.startswith(b"MSH|^~\\&|||Mindray|BS-240|20240612101501||ACK^R01|L1|P|2.3.1\rMSA|AR|12\r")


def test_ack_keeps_the_received_delimiters():
    payload = b"MSH#$*@%#APP#FAC#LIS#LAB#20240612##ORU$R01#C9#P#2.3.1\r"
    [ack] = ack_messages(parse_message(payload), payload, accepted=True, now=NOW, control_id="L2")
    assert ack == b"MSH#$*@%#LIS#LAB#APP#FAC#20240612101501##ACK$R01#L2#P#2.3.1\rMSA#AA#C9\r"


# --- query reply and orders ------------------------------------------------------------------


@pytest.mark.parametrize("found, qak", [(True, b"OK"), (False, b"NF")])
def test_mindray_qck_q02(found, qak):
    reply = hl7.query_response(parse_message(samples.MINDRAY_BS_QRY), found=found, now=NOW, control_id="L3")
    assert reply == (b"MSH|^~\\&|||Mindray|BS-240|20240612101501||QCK^Q02|L3|P|2.3.1\r"
                     b"MSA|AA|13|Message accepted|||0\rERR|0\rQAK|SR|" + qak + b"\r")


def test_order_message():
    payload = hl7.build_order_message(
        sample_id="24061188", patient_name="Rao^Lakshmi", patient_id="MRN-7", sex="female", dob=date(1990, 2, 3),
        priority="stat", test_codes=["ALT", "AST"], sender=("LIS", "LAB"), receiver=("BS-240", "Mindray"),
        control_id="ORD1", now=NOW)
    assert payload == (
        b"MSH|^~\\&|LIS|LAB|BS-240|Mindray|20240612101501||ORM^O01|ORD1|P|2.3.1\r"
        b"PID|1||MRN-7||Rao\\S\\Lakshmi||19900203|F\r"
        b"ORC|NW|24061188|||||||20240612101501\r"
        b"OBR|1|24061188||ALT|S|20240612101501\r"
        b"ORC|NW|24061188|||||||20240612101501\r"
        b"OBR|2|24061188||AST|S|20240612101501\r")
    parsed = parse_message(payload)
    assert parsed.get("PID-5") == "Rao^Lakshmi"
    assert parsed.message_type == "ORM^O01"


def test_order_message_non_ascii_declares_utf8():
    payload = hl7.build_order_message(
        sample_id="S1", patient_name="प्रिया", patient_id="", sex="", dob=None, priority="", test_codes=["GLU"],
        sender=("LIS", ""), receiver=("X", ""), control_id="O2", now=NOW)
    msg = parse_message(payload)
    assert msg.get("MSH-18") == "UNICODE UTF-8"
    assert msg.get("PID-5") == "प्रिया"
    assert msg.get("PID-8") == "U" and msg.get("OBR-5") == "R"


def test_order_message_rejects_unknown_style_and_no_tests():
    common = dict(sample_id="S1", patient_name="", patient_id="", sex="", dob=None, priority="",
                  sender=("LIS", ""), receiver=("X", ""), control_id="O2", now=NOW)
    with pytest.raises(ValueError):
        hl7.build_order_message(test_codes=["A"], style="OML^O33", **common)
    with pytest.raises(ValueError):
        hl7.build_order_message(test_codes=[], **common)
