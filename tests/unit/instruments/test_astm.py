"""ASTM E1394 / LIS2-A2 records (instruments.md §3, §4)."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.integrations.instruments import astm
from app.integrations.instruments.astm import Delimiters, parse_records, query_reply
from app.integrations.instruments.fields import parse_field_path
from app.integrations.instruments.parsed import ParsedMessage, ProtocolError

from . import samples

SYSMEX = {"sample_id_field": "O-4.3", "test_code_field": "R-3.5"}
DXH = {"result_fields": {"range": 7, "flag": 8, "status": 10, "completed": 14}}
ROCHE = {"query_id_field": "Q-3.3"}
NOW = datetime(2024, 6, 12, 12, 30, 0)


def test_delimiters_come_from_the_header():
    d, records = parse_records(samples.BECKMAN_DXH_ASTM)
    assert d == Delimiters(field="|", repeat="\\", component="!", escape="~")
    assert [r[0] for r in records] == ["H", "P", "O", "R", "R", "R", "L"]
    assert parse_records(samples.SYSMEX_XN_ASTM)[0] == Delimiters()
    assert parse_records("H#$%*#x\rL#1")[0] == Delimiters(field="#", repeat="$", component="%", escape="*")
    assert parse_records("H|\rL|1")[0] == Delimiters()   # no definition: defaults


def test_field_numbering_field_1_is_the_record_letter():
    d, records = parse_records(samples.SYSMEX_XN_ASTM)
    header, order = records[0], records[3]
    assert astm.record_value(header, parse_field_path("H-2"), d) == "\\^&"
    assert astm.record_value(header, parse_field_path("H-5.1"), d) == "XN-550"
    assert astm.record_value(header, parse_field_path("H-13"), d) == "E1394-97"
    assert astm.record_value(order, parse_field_path("O-4.3"), d) == "                24061205"
    assert astm.record_value(order, parse_field_path("O-12"), d) == "N"


@pytest.mark.parametrize("terminator", ["\r\n", "\n"])
def test_crlf_and_lf_records_are_tolerated(terminator):
    text = samples.ROCHE_E411_QUERY.replace(b"\r", terminator.encode())
    assert astm.extract(text, ROCHE).query_ids == ["24061177"]


@pytest.mark.parametrize("text", [b"", b"\r\n", b"P|1\rL|1", b"Hello", b"H", b"1H|\\^&"])
def test_first_record_must_be_a_header(text):
    with pytest.raises(ProtocolError):
        parse_records(text)


def test_sysmex_xn():
    parsed = astm.extract(samples.SYSMEX_XN_ASTM, SYSMEX)
    assert (parsed.protocol, parsed.kind, parsed.message_type, parsed.sender) == ("astm", "results", "ASTM", "XN-550")
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061205"              # padded O-4 component 3, stripped
    assert specimen.comments == ["Sample comment"]
    codes = [r.code for r in specimen.results]
    assert codes == ["WBC", "RBC", "HGB", "PLT", "WBC_Abn_Scattergram"]
    wbc, plt, scatter = specimen.results[0], specimen.results[3], specimen.results[4]
    assert (wbc.value, wbc.units, wbc.flags, wbc.observed_at) == ("7.08", "10*3/uL", ["N"], datetime(2024, 6, 12, 9, 35))
    assert (plt.value, plt.flags, plt.comments) == ("----", ["W"], ["Platelet clumps?"])
    assert scatter.value == "PNG\\20240612\\20240612_093500_WBC.PNG"   # &R& is the repeat delimiter
    assert parsed.warnings == []


def test_sysmex_with_the_default_profile_has_no_sample_id():
    parsed = astm.extract(samples.SYSMEX_XN_ASTM)
    assert parsed.specimens[0].sample_id == ""
    assert parsed.specimens[0].results[0].code == ""
    assert "an O record has no sample id" in parsed.warnings


def test_beckman_dxh_shifted_fields_and_bang_components():
    parsed = astm.extract(samples.BECKMAN_DXH_ASTM, DXH)
    assert (parsed.sender, parsed.kind) == ("DxH", "results")
    [specimen] = parsed.specimens
    assert specimen.sample_id == "24061210"
    rows = [(r.code, r.value, r.units, r.reference_range, r.flags, r.status) for r in specimen.results]
    assert rows == [("WBC", "9.87", "10^3/uL", "3.5 to 10.5", ["N"], "F"),
                    ("RBC", "3.12", "10^6/uL", "4.2 to 5.6", ["L"], "F"),
                    ("HGB", "8.9", "g/dL", "12.0 to 16.0", ["LL"], "F")]
    assert specimen.results[0].observed_at == datetime(2024, 6, 12, 9, 40)


def test_dxh_whole_value_field_when_asked():
    parsed = astm.extract(samples.BECKMAN_DXH_ASTM, dict(DXH, value_component=0))
    assert parsed.specimens[0].results[1].value == "3.12!L"


def test_roche_e411_query_id_in_component_3():
    parsed = astm.extract(samples.ROCHE_E411_QUERY, ROCHE)
    assert (parsed.kind, parsed.query_ids, parsed.sender) == ("query", ["24061177"], "cobas-e411")


def test_queries_with_several_ids_and_all():
    text = b"H|\\^&\rQ|1|^S1\\^S2\\^S1||ALL||||||||O\rQ|2|ALL||ALL||||||||O\rL|1|N\r"
    parsed = astm.extract(text)
    assert (parsed.kind, parsed.query_ids) == ("query", ["S1", "S2"])
    assert "query for ALL samples is not supported" in parsed.warnings


def test_dxh_query():
    parsed = astm.extract(b"H|\\!~|||DxH\rQ|1|!000004287888||ALL||||||||O\rL|1|N\r")
    assert parsed.query_ids == ["000004287888"]


def test_roche_results_latin1_dilution_and_qc():
    parsed = astm.extract(samples.ROCHE_E411_RESULTS_LATIN1)
    patient, control = parsed.specimens
    assert parsed.kind == "results"                     # mixed: QC flag per specimen
    assert (patient.sample_id, patient.qc, control.sample_id, control.qc) == ("24061177", False, "PC U1", True)
    assert [r.code for r in patient.results] == ["10", "A/G"]   # "10/" cut, "A/G" kept
    assert control.results[0].code == "10"                       # "10/2" cut
    assert patient.results[0].units == "µIU/mL"                  # Latin-1 µ read correctly


def test_only_qc_specimens_make_a_qc_message():
    text = b"H|\\^&\rP|1\rO|1|QC1||^^^GLU|R||||||Q\rR|1|^^^GLU|5.1\rL|1|N\r"
    assert astm.extract(text).kind == "qc"


def test_strip_dilution_can_be_turned_off():
    parsed = astm.extract(samples.ROCHE_E411_RESULTS_LATIN1, {"strip_dilution": False})
    assert parsed.specimens[0].results[0].code == "10/"


def test_utf8_text_and_escapes():
    text = "H|\\^&|||X\rO|1|S&F&1\rR|1|^^^T1|a&S&b&E&c|µmol/L\rC|1|L|Wert für Müller^zweite Zeile\rL|1|N\r"
    parsed = astm.extract(text.encode("utf-8"))
    [specimen] = parsed.specimens
    assert specimen.sample_id == "S|1"
    result = specimen.results[0]
    assert (result.value, result.units, result.comments) == ("a^b&c", "µmol/L", ["Wert für Müller zweite Zeile"])


def test_unknown_and_manufacturer_records_are_warnings():
    text = b"H|\\^&\rM|1|CAL^X\rO|1|S1\rR|1|^^^T|1|||||F||||2024-06-12\rX|1\rS|1\rL|1|N\rH|\\^&\r"
    parsed = astm.extract(text)
    assert parsed.kind == "results"
    assert "record 2: M record ignored" in parsed.warnings
    assert "record 5: unknown record type ignored" in parsed.warnings
    assert "record 6: S record ignored" in parsed.warnings
    assert "record 4: R-13 is not a valid timestamp" in parsed.warnings
    assert "record 8: a second H record; read as part of the same message" in parsed.warnings


def test_result_before_order_and_header_only():
    parsed = astm.extract(b"H|\\^&\rR|1|^^^T|1\rL|1|N\r")
    assert parsed.specimens[0].sample_id == "" and parsed.specimens[0].results[0].value == "1"
    assert parsed.warnings[0].startswith("record 2: R record before any O record")
    assert astm.extract(b"H|\\^&\rL|1|N\r").kind == "other"


def test_bad_profile_is_a_value_error():
    with pytest.raises(ValueError):
        astm.extract(samples.SYSMEX_XN_ASTM, {"test_code_field": "R3"})
    with pytest.raises(ValueError):
        astm.extract(samples.SYSMEX_XN_ASTM, {"result_fields": {"value": 1}})


# --- query reply -----------------------------------------------------------------------------


def test_query_reply_with_tests():
    query = astm.extract(samples.ROCHE_E411_QUERY, ROCHE)
    reply = query_reply(query_message=query, sample_id="24061177", test_codes=["10", "20"],
                        patient_name="Rao^Lakshmi", now=NOW)
    assert reply == (b"H|\\^&|||LIS|||||||P|1|20240612123000\r"
                     b"P|1||||Rao&S&Lakshmi\r"
                     b"O|1|24061177||^^^10\\^^^20|R||||||A||||||||||||||O\r"
                     b"L|1|N\r")
    d, records = parse_records(reply)
    assert astm.record_value(records[0], parse_field_path("H-12"), d) == "P"
    assert astm.record_value(records[2], parse_field_path("O-12"), d) == "A"
    assert astm.record_value(records[2], parse_field_path("O-26"), d) == "O"


def test_query_reply_no_information():
    query = astm.extract(samples.ROCHE_E411_QUERY, ROCHE)
    reply = query_reply(query_message=query, sample_id="24061177", test_codes=[], now=NOW, sender_id="HOST")
    assert reply == b"H|\\^&|||HOST|||||||P|1|20240612123000\rL|1|I\r"


def test_query_reply_roche_echo_and_dxh_delimiters():
    reply = query_reply(query_message=ParsedMessage("astm", "query", "ASTM"), sample_id="S1", test_codes=["CBC"],
                        delimiters=Delimiters(component="!", escape="~"), now=NOW,
                        instrument_specimen_id="0!50016!1!!S1!SC")
    assert reply.split(b"\r")[0] == b"H|\\!~|||LIS|||||||P|1|20240612123000"
    assert reply.split(b"\r")[2] == b"O|1|S1|0!50016!1!!S1!SC|!!!CBC|R||||||A||||||||||||||O"
    parsed = astm.extract(reply)
    assert parsed.specimens[0].sample_id == "S1"
