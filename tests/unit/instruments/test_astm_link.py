"""ASTM E1381 / LIS1-A link layer (instruments.md §2)."""
from __future__ import annotations

from app.integrations.instruments.astm_link import (ACK, CR, ENQ, EOT, ETB, ETX, LF, NAK, STX, AstmReceiver,
                                                    AstmSender, build_frames, checksum)

from . import samples


def frame(fn: int, text: bytes, end: bytes = ETX) -> bytes:
    body = str(fn).encode() + text + end
    return STX + body + checksum(body) + CR + LF


def run(receiver: AstmReceiver, chunks: list[bytes], now: float = 0.0) -> list[tuple[str, bytes]]:
    actions = []
    for chunk in chunks:
        actions += receiver.feed(chunk, now)
    return actions


def sends(actions) -> list[bytes]:
    return [data for kind, data in actions if kind == "send"]


def messages(actions) -> list[bytes]:
    return [data for kind, data in actions if kind == "message"]


# --- checksum and frames ---------------------------------------------------------------------


def test_checksum_vector_from_python_astm():
    assert checksum(b"1A|B|C|D\r\x03") == b"BF"


def test_checksum_is_over_encoded_bytes():
    text = "1P|1||||Müller\r\x03"
    assert checksum(text.encode("utf-8")) == f"{sum(text.encode()) & 0xFF:02X}".encode()
    assert checksum(text.encode("utf-8")) != f"{sum(map(ord, text)) & 0xFF:02X}".encode()


def test_checksum_two_uppercase_hex_digits():
    assert checksum(b"\x00\x0a") == b"0A"
    assert checksum(b"\xff\xff") == b"FE"


def test_build_frames_one_record_per_frame():
    frames = build_frames(b"H|\\^&\rP|1\rL|1|N\r")
    assert frames == [frame(1, b"H|\\^&\r"), frame(2, b"P|1\r"), frame(3, b"L|1|N\r")]
    assert all(len(f) <= 247 for f in frames)


def test_build_frames_fn_wraps_modulo_8():
    message = b"".join(b"R|%d\r" % i for i in range(10))
    fns = [f[1:2] for f in build_frames(message)]
    assert fns == [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"0", b"1", b"2"]


def test_build_frames_long_record_continues_in_etb_frames():
    record = b"R|1|^^^X|" + b"9" * 500 + b"\r"
    frames = build_frames(b"H|\\^&\r" + record + b"L|1|N\r")
    ends = [f[-5:-4] for f in frames]
    assert ends == [ETX, ETB, ETB, ETX, ETX]
    assert [len(f) - 7 for f in frames[1:4]] == [240, 240, len(record) - 480]
    assert b"".join(f[2:-5] for f in frames[1:4]) == record


def test_build_frames_whole_message_style():
    message = b"H|\\^&\rQ|1|^^X||ALL||||||||O\rL|1|N\r"
    [only] = build_frames(message, per_record=False)
    assert only == frame(1, message)


def test_build_frames_does_not_cut_inside_utf8():
    record = ("R|1|" + "é" * 200 + "\r").encode()
    frames = build_frames(record, max_text=101)
    for f in frames:
        f[2:-5].decode("utf-8")  # every piece decodes on its own
    assert b"".join(f[2:-5] for f in frames) == record


# --- receiver --------------------------------------------------------------------------------


def test_receiver_happy_path_one_record_per_frame():
    receiver = AstmReceiver()
    frames = build_frames(samples.SYSMEX_XN_ASTM)
    actions = run(receiver, [ENQ, *frames, EOT])
    assert actions[0] == ("send", ACK)
    assert messages(actions) == [samples.SYSMEX_XN_ASTM]
    # the message comes before the ACK of the frame that completed it (store, then ACK)
    index = actions.index(("message", samples.SYSMEX_XN_ASTM))
    assert actions[index + 1] == ("send", ACK)
    assert sends(actions) == [ACK] * (len(frames) + 1)
    assert actions[-1] == ("eot", b"")
    assert receiver.idle


def test_receiver_all_records_in_one_frame_roche():
    receiver = AstmReceiver()
    [only] = build_frames(samples.ROCHE_E411_QUERY, per_record=False)
    actions = run(receiver, [ENQ, only, EOT])
    assert actions == [("send", ACK), ("message", samples.ROCHE_E411_QUERY), ("send", ACK), ("eot", b"")]


def test_receiver_two_messages_in_one_transfer():
    one, two = samples.ROCHE_E411_QUERY, samples.BECKMAN_DXH_ASTM
    frames = build_frames(one) + build_frames(two, first_fn=(1 + len(build_frames(one))) % 8)
    actions = run(AstmReceiver(), [ENQ, *frames, EOT])
    assert messages(actions) == [one, two]


def test_receiver_new_header_without_terminator_closes_the_previous_message():
    first = b"H|\\^&\rP|1\rO|1|A\r"
    second = b"H|\\^&\rP|1\rL|1|N\r"
    actions = run(AstmReceiver(), [ENQ, *build_frames(first + second), EOT])
    assert messages(actions) == [first, second]


def test_receiver_eot_after_complete_records_without_l_record_keeps_them():
    message = b"H|\\^&\rP|1\rO|1|S1\rR|1|^^^GLU|5\r"
    actions = run(AstmReceiver(), [ENQ, *build_frames(message), EOT])
    assert actions[-2:] == [("message", message), ("eot", b"")]
    strict = run(AstmReceiver(require_terminator=True), [ENQ, *build_frames(message), EOT])
    assert strict[-2:] == [("discarded", message), ("eot", b"")]


def test_receiver_fn_wraps_7_to_0_to_1():
    records = b"H|\\^&\r" + b"".join(b"R|%d|^^^T|1\r" % i for i in range(1, 9)) + b"L|1|N\r"
    frames = build_frames(records)
    assert [f[1:2] for f in frames] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"0", b"1", b"2"]
    actions = run(AstmReceiver(), [ENQ, *frames, EOT])
    assert NAK not in sends(actions)
    assert messages(actions) == [records]


def test_receiver_duplicate_frame_is_acked_and_dropped():
    f1, f2, f3 = build_frames(b"H|\\^&\rP|1\rL|1|N\r")
    actions = run(AstmReceiver(), [ENQ, f1, f2, f2, f3, EOT])
    assert sends(actions) == [ACK, ACK, ACK, ACK, ACK]
    assert messages(actions) == [b"H|\\^&\rP|1\rL|1|N\r"]


def test_receiver_bad_checksum_is_naked_and_the_resend_accepted():
    f1, f2, f3 = build_frames(b"H|\\^&\rP|1\rL|1|N\r")
    corrupted = f2[:-4] + (b"00" if f2[-4:-2] != b"00" else b"01") + CR + LF
    actions = run(AstmReceiver(), [ENQ, f1, corrupted, f2, f3, EOT])
    assert sends(actions) == [ACK, ACK, NAK, ACK, ACK]
    assert messages(actions) == [b"H|\\^&\rP|1\rL|1|N\r"]


def test_receiver_lowercase_checksum_is_tolerated():
    f1 = frame(1, b"H|\\^&\r")
    lower = f1[:-4] + f1[-4:-2].lower() + CR + LF
    assert sends(run(AstmReceiver(), [ENQ, lower])) == [ACK, ACK]


def test_receiver_skipped_fn_is_naked():
    actions = run(AstmReceiver(), [ENQ, frame(1, b"H|\\^&\r"), frame(3, b"P|1\r")])
    assert sends(actions) == [ACK, ACK, NAK]


def test_receiver_first_frame_must_be_1():
    assert sends(run(AstmReceiver(), [ENQ, frame(0, b"H|\\^&\r")])) == [ACK, NAK]


def test_receiver_malformed_frames_are_naked():
    receiver = AstmReceiver()
    actions = run(receiver, [ENQ,
                             STX + b"9H|\r" + ETX + checksum(b"9H|\r" + ETX) + CR + LF,  # FN out of range
                             STX + b"1H|\r" + b"X" + b"00" + CR + LF,                   # no ETX/ETB
                             STX + b"1H|\x10\r" + ETX + checksum(b"1H|\x10\r" + ETX) + CR + LF,  # DLE in text
                             STX + b"1\r" + ETX + checksum(b"1\r" + ETX) + LF])          # LF without CR
    assert sends(actions) == [ACK, NAK, NAK, NAK, NAK]


def test_receiver_eot_mid_message_discards_the_partial_record():
    record = b"R|1|^^^X|" + b"9" * 400 + b"\r"
    frames = build_frames(b"H|\\^&\r" + record + b"L|1|N\r")
    actions = run(AstmReceiver(), [ENQ, frames[0], frames[1], EOT])   # header, first half of the R
    assert messages(actions) == []
    assert ("discarded", b"H|\\^&\r" + frames[1][2:-5]) in actions
    assert actions[-1] == ("eot", b"")


def test_receiver_eot_after_a_nak_discards():
    f1, f2, _ = build_frames(b"H|\\^&\rP|1\rL|1|N\r")
    bad = f2[:3] + b"#" + f2[4:]
    actions = run(AstmReceiver(), [ENQ, f1, bad, EOT])
    assert messages(actions) == [] and ("discarded", b"H|\\^&\r") in actions


def test_receiver_eot_inside_a_frame_is_handled_as_eot():
    f1 = frame(1, b"H|\\^&\r")
    actions = run(AstmReceiver(), [ENQ, f1, STX + b"2P|1", EOT])
    assert actions[-2:] == [("discarded", b"H|\\^&\r"), ("eot", b"")]


def test_receiver_timeout_discards_and_returns_to_neutral():
    receiver = AstmReceiver()
    receiver.feed(ENQ, 0.0)
    receiver.feed(frame(1, b"H|\\^&\r"), 1.0)
    assert receiver.check_timeout(30.9) == []
    assert receiver.check_timeout(31.0) == [("discarded", b"H|\\^&\r")]
    assert receiver.idle
    # a frame after the timeout is noise until the next ENQ
    assert receiver.feed(frame(2, b"P|1\r"), 32.0) == []


def test_receiver_feed_applies_the_timeout_first():
    receiver = AstmReceiver(frame_timeout=30.0)
    receiver.feed(ENQ + frame(1, b"H|\\^&\r"), 0.0)
    actions = receiver.feed(ENQ, 100.0)
    assert actions == [("discarded", b"H|\\^&\r"), ("send", ACK)]


def test_receiver_neutral_noise_is_returned_at_next_enq():
    receiver = AstmReceiver()
    assert receiver.feed(b"\x00noise" + ACK + NAK + EOT + b"\r\n", 0.0) == []
    assert receiver.feed(ENQ, 1.0) == [("discarded", b"\x00noise\r\n"), ("send", ACK)]


def test_receiver_enq_in_mid_transfer_restarts():
    actions = run(AstmReceiver(), [ENQ, frame(1, b"H|\\^&\r"), ENQ, *build_frames(b"H|\\^&\rL|1|N\r")])
    assert actions[2:4] == [("discarded", b"H|\\^&\r"), ("send", ACK)]
    assert messages(actions) == [b"H|\\^&\rL|1|N\r"]


def test_receiver_too_many_errors_gives_up():
    receiver = AstmReceiver()
    bad = STX + b"1H|\r" + ETX + b"00" + CR + LF
    actions = run(receiver, [ENQ, frame(1, b"H|\\^&\r")] + [bad.replace(b"1H", b"2H")] * 8)
    assert sends(actions) == [ACK, ACK] + [NAK] * 8
    assert actions[-1] == ("discarded", b"H|\\^&\r")
    assert receiver.idle


def test_receiver_oversize_message_is_naked():
    receiver = AstmReceiver(max_message_bytes=20)
    actions = run(receiver, [ENQ, frame(1, b"H|\\^&\r"), frame(2, b"R|1|" + b"x" * 30 + b"\r")])
    assert sends(actions) == [ACK, ACK, NAK]


def test_receiver_frame_split_across_feeds():
    data = ENQ + b"".join(build_frames(samples.BECKMAN_DXH_ASTM)) + EOT
    receiver = AstmReceiver()
    actions = []
    for byte in data:
        actions += receiver.feed(bytes([byte]), 0.0)
    assert messages(actions) == [samples.BECKMAN_DXH_ASTM]


def test_receiver_close_discards_pending():
    receiver = AstmReceiver()
    receiver.feed(ENQ + frame(1, b"H|\\^&\r") + STX + b"2P", 0.0)
    assert receiver.close() == [("discarded", b"H|\\^&\r" + STX + b"2P")]
    assert receiver.idle


# --- sender ----------------------------------------------------------------------------------


def test_sender_happy_path():
    message = b"H|\\^&\rP|1\rL|1|N\r"
    frames = build_frames(message)
    sender = AstmSender([message])
    assert sender.start(0.0) == ENQ
    out = []
    for _ in range(len(frames) + 1):
        out += sender.on_reply(ACK, 1.0)
    assert out == [("send", f) for f in frames] + [("send", EOT), ("done", b"")]
    assert sender.state == "done" and sender.finished


def test_sender_resends_on_nak_then_gives_up_after_six_attempts():
    sender = AstmSender([b"H|\\^&\rL|1|N\r"])
    sender.start(0.0)
    first = build_frames(b"H|\\^&\rL|1|N\r")[0]
    assert sender.on_reply(ACK, 0.0) == [("send", first)]
    for _ in range(5):
        assert sender.on_reply(NAK, 0.0) == [("send", first)]
    assert sender.on_reply(NAK, 0.0) == [("send", EOT), ("failed", b"too many NAKs")]
    assert sender.state == "failed"
    assert sender.on_reply(ACK, 0.0) == []


def test_sender_contention_yields_to_the_instrument():
    sender = AstmSender([b"H|\\^&\rL|1|N\r"])
    sender.start(0.0)
    assert sender.on_reply(ENQ, 0.5) == [("yield", b"")]
    assert sender.state == "idle"
    assert sender.start(25.0) == ENQ
    assert sender.on_reply(ACK, 25.1)[0][0] == "send"


def test_sender_busy_receiver():
    sender = AstmSender([b"H|\\^&\rL|1|N\r"], max_attempts=2)
    sender.start(0.0)
    assert sender.on_reply(NAK, 0.1) == [("yield", b"")]
    sender.start(10.0)
    assert sender.on_reply(NAK, 10.1) == [("failed", b"receiver busy")]


def test_sender_receiver_interrupt():
    message = b"H|\\^&\rP|1\rL|1|N\r"
    sender = AstmSender([message])
    sender.start(0.0)
    sender.on_reply(ACK, 0.0)
    assert sender.on_reply(EOT, 0.0) == [("send", EOT), ("failed", b"receiver interrupt")]
    last = AstmSender([b"H|\\^&\r"])
    last.start(0.0)
    last.on_reply(ACK, 0.0)
    assert last.on_reply(EOT, 0.0) == [("send", EOT), ("done", b"")]


def test_sender_timeouts():
    sender = AstmSender([b"H|\\^&\rL|1|N\r"])
    sender.start(0.0)
    assert sender.check_timeout(14.9) == []
    assert sender.check_timeout(15.0) == [("send", EOT), ("failed", b"timeout")]
    waiting = AstmSender([b"H|\\^&\rL|1|N\r"])
    waiting.start(0.0)
    waiting.on_reply(ACK, 100.0)          # frame sent at 100: the timer restarts
    assert waiting.check_timeout(114.0) == []
    assert waiting.check_timeout(115.0)[-1] == ("failed", b"timeout")
    lazy = AstmSender([b"H|\\^&\r"])
    lazy.start()                           # no clock given: the timer starts at the first check
    assert lazy.check_timeout(500.0) == []
    assert lazy.check_timeout(515.0)[-1] == ("failed", b"timeout")


def test_sender_numbers_frames_across_messages():
    one, two = b"H|\\^&\rP|1\rL|1|N\r", b"H|\\^&\rP|1\rO|1|X\rR|1\rR|2\rL|1|N\r"
    sender = AstmSender([one, two])
    sender.start(0.0)
    sent = []
    while not sender.finished:
        sent += [d for k, d in sender.on_reply(ACK, 0.0) if k == "send"]
    assert [f[1:2] for f in sent[:-1]] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"0", b"1"]


def round_trip(messages_: list[bytes], **kwargs) -> list[bytes]:
    """Sender frames fed to a receiver, replies fed back, until the sender is finished."""
    sender, receiver = AstmSender(messages_, **kwargs), AstmReceiver()
    received: list[bytes] = []
    to_receiver = sender.start(0.0)
    while True:
        actions = receiver.feed(to_receiver, 0.0)
        received += messages(actions)
        replies = b"".join(sends(actions))
        if sender.finished:
            return received
        out = sender.on_reply(replies, 0.0)
        to_receiver = b"".join(sends(out))


def test_round_trip_with_long_record_and_utf8():
    long_record = ("R|1|^^^NOTE|" + "x" * 300 + "\r").encode()
    utf8 = "H|\\^&\rP|1||||शर्मा^प्रिया\rO|1|S1||^^^GLU\rC|1|L|µmol/L für Müller\rL|1|N\r".encode()
    msgs = [b"H|\\^&\rP|1\rO|1|S1\r" + long_record + b"L|1|N\r", utf8]
    assert round_trip(msgs) == msgs
    assert round_trip(msgs, per_record=False) == msgs
