"""MLLP framing and resync (instruments.md §1.1)."""
from __future__ import annotations

from app.integrations.instruments.mllp import CR, FS, VT, MllpEvent, MllpFramer, frame

from . import samples

MSG1 = samples.MINDRAY_BS240_ORU
MSG2 = samples.MINDRAY_BC6800_ORU


def kinds(events: list[MllpEvent]) -> list[tuple[str, bytes]]:
    return [(e.kind, e.data) for e in events]


def test_frame_wraps_payload():
    assert frame(b"MSH|x\r") == b"\x0bMSH|x\r\x1c\x0d"
    assert (VT, FS, CR) == (b"\x0b", b"\x1c", b"\r")


def test_one_message():
    assert kinds(MllpFramer().feed(frame(MSG1))) == [("message", MSG1)]


def test_garbage_before_vt_is_discarded_and_the_message_still_arrives():
    events = MllpFramer().feed(b"noise\x00\xff" + frame(MSG1))
    assert kinds(events) == [("discarded", b"noise\x00\xff"), ("message", MSG1)]


def test_whitespace_between_blocks_is_dropped_silently():
    events = MllpFramer().feed(frame(MSG1) + b"\r\n" + frame(MSG2))
    assert kinds(events) == [("message", MSG1), ("message", MSG2)]


def test_two_messages_in_one_feed():
    events = MllpFramer().feed(frame(MSG1) + frame(MSG2))
    assert kinds(events) == [("message", MSG1), ("message", MSG2)]


def test_byte_by_byte_feed():
    framer = MllpFramer()
    events = []
    for byte in frame(MSG1) + frame(MSG2):
        events += framer.feed(bytes([byte]))
    assert kinds(events) == [("message", MSG1), ("message", MSG2)]
    assert framer.idle


def test_truncated_block_then_new_vt_resyncs():
    truncated = frame(MSG1)[:40]
    events = MllpFramer().feed(truncated + frame(MSG2))
    assert kinds(events) == [("discarded", truncated), ("message", MSG2)]


def test_fs_without_cr_still_ends_the_block():
    events = MllpFramer().feed(VT + MSG1 + FS + VT + MSG2 + FS)
    assert kinds(events) == [("message", MSG1), ("message", MSG2)]


def test_fs_and_cr_split_across_feeds():
    framer = MllpFramer()
    assert kinds(framer.feed(VT + MSG1 + FS)) == [("message", MSG1)]
    assert framer.feed(CR) == []
    assert kinds(framer.feed(frame(MSG2))) == [("message", MSG2)]


def test_oversize_block_reported_once_then_skipped_to_its_end():
    framer = MllpFramer(max_message_bytes=100)
    big = b"MSH|" + b"x" * 300
    events = []
    for start in range(0, 400, 37):  # arrives in chunks
        events += framer.feed((frame(big) + frame(b"MSH|ok\r"))[start:start + 37])
    assert kinds(events) == [("oversize", big[:100]), ("message", b"MSH|ok\r")]


def test_payload_of_exactly_the_limit_is_a_message():
    payload = b"M" * 100
    assert kinds(MllpFramer(max_message_bytes=100).feed(frame(payload))) == [("message", payload)]


def test_close_returns_unfinished_block_and_garbage():
    framer = MllpFramer()
    assert kinds(framer.feed(b"junk" + VT + b"MSH|half")) == [("discarded", b"junk")]
    assert kinds(framer.close()) == [("discarded", VT + b"MSH|half")]
    assert framer.idle
    assert framer.close() == []


def test_unframed_garbage_is_returned_at_close():
    framer = MllpFramer()
    assert framer.feed(b"hello") == []
    assert kinds(framer.close()) == [("discarded", b"hello")]
