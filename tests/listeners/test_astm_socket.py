"""ASTM E1381 / E1394 over a real socket (instruments.md §2, §3, §4): vendor messages, the host
query round trip, and link-layer errors answered byte by byte."""
from __future__ import annotations

import re
import time

from app.integrations.instruments.astm_link import ETB, ETX, build_frames
from tests.listeners.clients import ACK, NAK, AstmClient
from tests.listeners.support import (messages_with, order_test_status, results_of, uid, unmatched_of, wait_for)
from tests.unit.instruments import samples


def astm(*records: str, encoding: str = "utf-8") -> bytes:
    return ("\r".join(records) + "\r").encode(encoding)


def only_message(listener, instrument: str, token: str) -> dict:  # type: ignore[no-untyped-def]
    rows = messages_with(listener, instrument, token)
    assert len(rows) == 1, rows
    return rows[0]


def dxh(barcode: str, control_id: str) -> bytes:
    """Beckman DxH (samples.BECKMAN_DXH_ASTM) with a unique H-3 and this tube's id in O-3."""
    payload = (samples.BECKMAN_DXH_ASTM.replace(b"H|\\!~|||DxH|", f"H|\\!~|{control_id}||DxH|".encode())
               .replace(b"O|1|24061210|", f"O|1|{barcode}|".encode()))
    assert control_id.encode() in payload and barcode.encode() in payload
    return payload


# ------------------------------------------------------------------ vendor messages

def test_sysmex_xn_results(listener):
    order = listener.order(["CBC"])
    barcode = order["tubes"]["EDTA"]
    payload = samples.SYSMEX_XN_ASTM.replace(b"24061205", barcode.encode())
    assert re.search(rb"\^\^ +" + barcode.encode() + rb"\^B", payload)  # O-4.3, space-padded
    frames = build_frames(payload)
    with AstmClient(listener.port("sysmex-xn")) as analyzer:
        assert analyzer.send_frames(frames) == [ACK] * (len(frames) + 1)
    message = only_message(listener, "sysmex-xn", barcode)  # committed before the last frame's ACK
    assert (message["outcome"], message["raw"], message["protocol"], message["message_type"]) == (
        "stored", payload, "astm", "ASTM")
    listener.process()
    message = only_message(listener, "sysmex-xn", barcode)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 4, 1)
    every = results_of(listener, order["order_id"])
    results = {r["code"]: (r["value"], r["flag"], r["instrument_flags"], r["comment"])
               for r in every if r["source"] == "instrument"}
    assert results == {
        "WBC": ("7.1", None, "N", ""),
        "RBC": ("4.52", None, "N", ""),
        "HB": ("13.1", None, "N", ""),
        "PLT": ("----", None, "W", "Platelet clumps?"),  # '----' kept as text, W flag, the C record on it
    }
    assert [(u["code"], u["value"], u["reason"]) for u in unmatched_of(listener, message["id"])] == [
        ("WBC_Abn_Scattergram", "PNG\\20240612\\20240612_093500_WBC.PNG", "unknown_code")]  # &R& unescaped
    # and the calculated test that HB and RBC make possible: MCH = 13.1 / 4.52 x 10
    assert [(r["code"], r["value"]) for r in every if r["source"] == "calculated"] == [("MCH", "29.0")]


def test_beckman_dxh_delimiters_and_shifted_fields(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    payload = dxh(order["tubes"]["EDTA"], control_id)
    frames = build_frames(payload)
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        assert analyzer.send_frames(frames) == [ACK] * (len(frames) + 1)
    listener.process()
    message = only_message(listener, "beckman-dxh", control_id)
    assert (message["raw"], message["control_id"]) == (payload, control_id)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 2, 1)
    # value!flag in R-4, flag at R-8 (after DxH's dilution field), our own flags from our intervals
    assert [(r["code"], r["value"], r["flag"], r["instrument_flags"])
            for r in results_of(listener, order["order_id"])] == [("HB", "8.9", "L", "LL"), ("WBC", "9.9", None, "N")]
    # RBC is not mapped on this DxH: kept for a technician, '^' in its unit literal (component is '!')
    assert [(u["code"], u["value"], u["units"], u["flags"], u["reason"]) for u in unmatched_of(
        listener, message["id"])] == [("RBC", "3.12", "10^6/uL", "L", "unknown_code")]


def test_cobas_e411_results_latin1_dilution_and_a_qc_order(listener):
    order = listener.order(["TSH"])
    barcode = order["tubes"]["Plain"]
    payload = samples.ROCHE_E411_RESULTS_LATIN1.replace(b"O|1|24061177|", f"O|1|{barcode}|".encode())
    assert b"\xb5IU/mL" in payload  # an 8-bit device's micro sign
    frames = build_frames(payload, per_record=False)  # "cobas type": records packed into frames
    with AstmClient(listener.port("roche-e411")) as analyzer:
        assert analyzer.send_frames(frames) == [ACK] * (len(frames) + 1)
    listener.process()
    message = only_message(listener, "roche-e411", barcode)
    assert message["raw"] == payload
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("partly_matched", 1, 1)
    assert [(r["code"], r["value"]) for r in results_of(listener, order["order_id"])] == [("TSH", "2.41")]
    assert [(u["code"], u["value"], u["reason"]) for u in unmatched_of(listener, message["id"])] == [
        ("A/G", "1.4", "unknown_code")]  # '10/' is code 10 without its dilution; 'A/G' stays itself
    detail = listener.sql("SELECT detail FROM instrument_message WHERE id = %s", message["id"])[0][0]
    assert "QC specimen PC U1 skipped." in detail


def test_qc_order_action_code_q_is_kept_as_qc(listener):
    order = listener.order(["CBC"])
    barcode = order["tubes"]["EDTA"]
    payload = (samples.SYSMEX_XN_ASTM.replace(b"24061205", barcode.encode())
               .replace(b"|||||||N||||", b"|||||||Q||||"))
    assert b"|||||||Q||||" in payload
    with AstmClient(listener.port("sysmex-xn")) as analyzer:
        analyzer.send_frames(build_frames(payload))
    listener.process()
    message = only_message(listener, "sysmex-xn", barcode)
    assert (message["outcome"], message["attached"], message["unmatched"]) == ("qc", 0, 0)
    assert results_of(listener, order["order_id"]) == []
    assert set(order_test_status(listener, order["order_id"]).values()) == {"pending"}


# ------------------------------------------------------------------ host query (cobas e 411)

def e411_query(sample_id: str, control_id: str) -> bytes:
    payload = (samples.ROCHE_E411_QUERY.replace(b"24061177", sample_id.encode())
               .replace(b"H|\\^&|||cobas-e411^1|", f"H|\\^&|{control_id}||cobas-e411^1|".encode()))
    assert sample_id.encode() in payload and control_id.encode() in payload
    return payload


def ask(listener, sample_id: str, control_id: str) -> bytes:  # type: ignore[no-untyped-def]
    frames = build_frames(e411_query(sample_id, control_id), per_record=False)
    with AstmClient(listener.port("roche-e411")) as analyzer:
        assert analyzer.send_frames(frames) == [ACK] * (len(frames) + 1)  # ... then our EOT
        return analyzer.receive_transmission(timeout=5.0)


def reply_header(reply: bytes) -> str:
    match = re.match(rb"H\|\\\^&\|\|\|LIS\|\|\|\|\|\|\|P\|1\|(\d{14})\r", reply)
    assert match, reply
    return match.group(1).decode()


def test_host_query_is_answered_with_the_pending_tests_instrument_codes(listener):
    order = listener.order(["TSH", "FT4"])
    barcode, control_id = order["tubes"]["Plain"], uid()
    reply = ask(listener, barcode, control_id)
    stamp = reply_header(reply)
    assert reply == (f"H|\\^&|||LIS|||||||P|1|{stamp}\r"
                     "P|1||||Listener Test\r"
                     # O-4 echoes the analyzer's own seq^rack^pos^^S1^SC from Q-3 (Roche, §3)
                     f"O|1|{barcode}|0^50016^1^^S1^SC|^^^10\\^^^20|R||||||A{'|' * 14}O\r"
                     "L|1|N\r").encode()
    listener.process()
    message = only_message(listener, "roche-e411", control_id)
    assert (message["outcome"], message["control_id"]) == ("query", control_id)
    assert listener.sql("SELECT detail FROM instrument_message WHERE id = %s", message["id"]) == [
        (f"Host query for {barcode}.",)]


def test_host_query_for_an_unknown_id_says_no_information(listener):
    sample_id, control_id = "NOSUCH" + uid()[:6], uid()
    reply = ask(listener, sample_id, control_id)
    stamp = reply_header(reply)
    assert reply == f"H|\\^&|||LIS|||||||P|1|{stamp}\rL|1|I\r".encode()
    assert only_message(listener, "roche-e411", control_id)["outcome"] == "stored"


def test_host_query_leaves_out_tests_already_done(listener):
    order = listener.order(["TSH", "FT4"])
    barcode = order["tubes"]["Plain"]
    results = astm(r"H|\^&|||cobas-e411^1|||||host|RSUPL^REAL|P|1", "P|1",
                   f"O|1|{barcode}|0^50016^1^^S1^SC|^^^10^|R||||||N||||1||||||||||F",
                   r"R|1|^^^10/|2.41|µIU/mL||N||F||||20240612121500", "L|1|N")
    with AstmClient(listener.port("roche-e411")) as analyzer:
        analyzer.send_frames(build_frames(results))
    listener.process()
    assert order_test_status(listener, order["order_id"]) == {"TSH": "entered", "FT4": "pending"}
    reply = ask(listener, barcode, uid())
    assert f"O|1|{barcode}|0^50016^1^^S1^SC|^^^20|R|".encode() in reply and b"^^^10" not in reply


# ------------------------------------------------------------------ link-layer errors

def test_wrong_checksum_is_naked_and_the_corrected_resend_accepted(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    payload = dxh(order["tubes"]["EDTA"], control_id)
    frames = build_frames(payload)
    good = frames[1]
    bad = good[:-4] + (b"00" if good[-4:-2] != b"00" else b"01") + b"\r\n"
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        replies = analyzer.send_frames([frames[0], bad, good, *frames[2:]])
    assert replies == [ACK, ACK, NAK, ACK] + [ACK] * (len(frames) - 2)
    message = only_message(listener, "beckman-dxh", control_id)
    assert message["raw"] == payload
    listener.process()
    assert [r["code"] for r in results_of(listener, order["order_id"])] == ["HB", "WBC"]


def test_a_skipped_frame_number_is_naked(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    payload = dxh(order["tubes"]["EDTA"], control_id)
    frames = build_frames(payload)
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        replies = analyzer.send_frames([frames[0], frames[2], *frames[1:]])  # FN 1, 3 (skips 2), then 2, 3, ...
    assert replies == [ACK, ACK, NAK] + [ACK] * (len(frames) - 1)
    assert only_message(listener, "beckman-dxh", control_id)["raw"] == payload


def test_a_repeated_frame_is_acked_and_dropped(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    payload = dxh(order["tubes"]["EDTA"], control_id)
    frames = build_frames(payload)
    with AstmClient(listener.port("beckman-dxh")) as analyzer:  # "the ACK of frame 3 was lost"
        replies = analyzer.send_frames([*frames[:3], frames[2], *frames[3:]])
    assert replies == [ACK] * (len(frames) + 2)
    message = only_message(listener, "beckman-dxh", control_id)
    assert message["raw"] == payload  # the O record is in it once
    listener.process()
    assert [(r["code"], r["attempt"]) for r in results_of(listener, order["order_id"])] == [
        ("HB", 1), ("WBC", 1)]


def test_eot_in_the_middle_of_a_message_keeps_the_partial_as_rejected(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    frames = build_frames(dxh(order["tubes"]["EDTA"], control_id), max_text=30)
    cut = next(i for i, f in enumerate(frames) if i >= 3 and f[-5:-4] == ETB) + 1  # ends on an ETB frame
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        assert analyzer.send_frames(frames[:cut]) == [ACK] * (cut + 1)  # ... and EOT
        [kept] = wait_for(lambda: messages_with(listener, "beckman-dxh", control_id))
        # the same connection then carries a complete message
        second = uid()
        second_payload = dxh(order["tubes"]["EDTA"], second)
        assert analyzer.send_frames(build_frames(second_payload)) == [ACK] * (len(build_frames(second_payload)) + 1)
    assert (kept["outcome"], kept["detail"]) == (
        "rejected", "incomplete transmission (EOT, timeout or errors); not acknowledged")
    assert kept["raw"] == b"".join(f[2:-5] for f in frames[:cut])
    assert only_message(listener, "beckman-dxh", second)["raw"] == second_payload
    listener.process()
    assert messages_with(listener, "beckman-dxh", control_id)[0]["outcome"] == "rejected"
    assert [(r["code"], r["message_id"]) for r in results_of(listener, order["order_id"])] == [
        (code, only_message(listener, "beckman-dxh", second)["id"]) for code in ("HB", "WBC")]


def test_a_connection_dropped_mid_frame_keeps_the_partial_as_rejected(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    frames = build_frames(dxh(order["tubes"]["EDTA"], control_id))
    half = frames[1][: len(frames[1]) // 2]
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        assert analyzer.send_frames(frames[:1], eot=False) == [ACK, ACK]
        analyzer.send_raw(half)
    [kept] = wait_for(lambda: messages_with(listener, "beckman-dxh", control_id))
    assert (kept["outcome"], kept["raw"]) == ("rejected", frames[0][2:-5] + half)
    listener.process()
    assert results_of(listener, order["order_id"]) == []


def test_a_message_split_across_etb_frames_is_joined(listener):
    order = listener.order(["CBC"])
    control_id = uid()
    payload = dxh(order["tubes"]["EDTA"], control_id)
    frames = build_frames(payload, max_text=16)
    assert len(frames) > 8 and sum(f[-5:-4] == ETB for f in frames) > 5  # FN wraps 7 -> 0
    assert [f[1:2] for f in frames[6:9]] == [b"7", b"0", b"1"]
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        assert analyzer.send_frames(frames) == [ACK] * (len(frames) + 1)
    message = only_message(listener, "beckman-dxh", control_id)
    assert message["raw"] == payload
    listener.process()
    assert [r["code"] for r in results_of(listener, order["order_id"])] == ["HB", "WBC"]
    assert frames[-1][-5:-4] == ETX


def test_line_noise_before_enq_is_kept_and_the_transfer_still_works(listener):
    order = listener.order(["CBC"])
    control_id, noise = uid(), b"\x00noise " + uid().encode() + b"\xff"
    payload = dxh(order["tubes"]["EDTA"], control_id)
    with AstmClient(listener.port("beckman-dxh")) as analyzer:
        analyzer.send_raw(noise)
        time.sleep(0.05)
        assert analyzer.send_frames(build_frames(payload))[0] == ACK
    [kept] = messages_with(listener, "beckman-dxh", noise)
    assert (kept["outcome"], kept["raw"]) == ("rejected", noise)
    assert only_message(listener, "beckman-dxh", control_id)["raw"] == payload
