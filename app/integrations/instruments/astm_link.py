"""ASTM E1381 / CLSI LIS1-A low-level protocol (instruments.md §2), as pure state machines.

No sockets and no clock: the caller feeds bytes with the current ``time.monotonic()`` and
performs the returned actions in order, so the same code serves TCP and RS-232 and the tests
can replay any timing. Frames are ``STX FN text ETB|ETX C1 C2 CR LF`` (§2.2).
"""
from __future__ import annotations

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"
STX, ETX, ETB = b"\x02", b"\x03", b"\x17"
CR, LF = b"\r", b"\n"

_ENQ, _ACK, _NAK, _EOT, _STX, _ETX, _ETB, _CR, _LF = (c[0] for c in (ENQ, ACK, NAK, EOT, STX, ETX, ETB, CR, LF))
# Never inside frame text (instruments.md §2.1): SOH STX ETX EOT ENQ ACK DLE NAK SYN ETB LF DC1-DC4.
RESTRICTED = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x15, 0x16, 0x17, 0x0A, 0x11, 0x12, 0x13, 0x14})
_NOISE = b" \t\r\n\x00"
_MAX_CONSECUTIVE_NAKS = 8  # a conforming sender gives up after 6 (§2.3); past this it is broken

Action = tuple[str, bytes]


def checksum(fn_through_terminator: bytes) -> bytes:
    """Low 8 bits of the byte sum from FN through ETB/ETX inclusive, as two uppercase hex
    characters (§2.2). Sum the *encoded* bytes: UTF-8 text is checksummed as sent."""
    return f"{sum(fn_through_terminator) & 0xFF:02X}".encode("ascii")


def _frame(fn: int, text: bytes, last: bool) -> bytes:
    body = str(fn % 8).encode("ascii") + text + (ETX if last else ETB)
    return STX + body + checksum(body) + CR + LF


def _records(message: bytes) -> list[bytes]:
    """The message's records, each ending with CR (CRLF and lone LF read as CR)."""
    normalized = bytes(message).replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    bad = set(normalized) & RESTRICTED
    if bad:
        raise ValueError(f"restricted control characters in ASTM text: {sorted(bad)}")
    return [record + CR for record in normalized.split(CR) if record]


def _chunks(text: bytes, max_text: int) -> list[bytes]:
    """Split text into pieces of at most max_text bytes, never inside a UTF-8 sequence (some
    receivers decode frame by frame). A Latin-1 byte in 0x80-0xBF only makes a frame shorter."""
    pieces, start = [], 0
    while len(text) - start > max_text:
        cut = start + max_text
        while cut > start + max_text - 3 and 0x80 <= text[cut] <= 0xBF:
            cut -= 1
        pieces.append(text[start:cut])
        start = cut
    return pieces + [text[start:]] if start < len(text) else pieces


def build_frames(message: bytes, *, max_text: int = 240, first_fn: int = 1, per_record: bool = True) -> list[bytes]:
    """Frames for one E1394 message. FN starts at ``first_fn`` and goes +1 modulo 8 (1..7,0,1..).

    ``per_record=True`` (default, Sysmex/Elecsys style, §2.2): each record in its own frame,
    a record over ``max_text`` continues in ETB frames, the last frame of every record ends
    with ETX. ``per_record=False`` ("cobas type"): the whole message is one text cut into
    ``max_text`` pieces, ETB on each but the last, which gets ETX."""
    if max_text < 4:
        raise ValueError("max_text must leave room for a record")
    records = _records(message)
    texts = [records] if not per_record else [[r] for r in records]
    frames: list[bytes] = []
    for group in texts:
        pieces = _chunks(b"".join(group), max_text)
        for index, piece in enumerate(pieces):
            frames.append(_frame(first_fn + len(frames), piece, index == len(pieces) - 1))
    return frames


def _parse_frame(frame: bytes) -> tuple[int, bytes, int] | None:
    """(FN, text, ETB|ETX) of a well-formed frame ``STX .. LF``, else None (answer NAK)."""
    if len(frame) < 7 or frame[0] != _STX or frame[-2:] != CR + LF:
        return None
    fn_char, end, received = frame[1], frame[-5], frame[-4:-2]
    if end not in (_ETX, _ETB) or not 0x30 <= fn_char <= 0x37:
        return None
    if checksum(frame[1:-4]) != received.upper():  # lower-case hex accepted: harmless tolerance
        return None
    text = frame[2:-5]
    if RESTRICTED.intersection(text):
        return None
    return fn_char - 0x30, text, end


class AstmReceiver:
    """Pure receiver state machine. Call feed() with bytes and the current monotonic time; it
    returns a list of actions to perform IN ORDER:

    * ``("send", bytes)``: write these bytes to the peer (ACK / NAK);
    * ``("message", bytes)``: a complete E1394 message (records, each ending with CR). Store it
      durably BEFORE performing the actions after it: the ACK of the frame that completed it
      comes next, and an ACK is the instrument's licence to forget the data;
    * ``("discarded", bytes)``: a partial message thrown away (EOT after an unfinished record,
      timeout, too many errors, ENQ in mid-transfer) or line noise, to be kept raw;
    * ``("eot", b"")``: the sender ended the transmission (the caller may now bid with ENQ to
      send a query reply, §2.3).

    Message boundaries (§2.2): frame texts are concatenated and split into records; a message
    ends at its L record, or where a new H record starts. Checked after every ETX frame, so
    "one record per frame" senders (ETX on each record) and "all records in one frame" senders
    both work. Several messages in one transfer give several "message" actions.

    At EOT with records but no L record: if the last frame was accepted and ended with ETX the
    records are complete, so they are emitted as a "message" (many instruments end with EOT and
    no L; the records were already ACKed, so this is the only chance to keep them) unless
    ``require_terminator`` is set; after an ETB frame or a NAK the record is cut in the middle
    (the sender gave up), so it is "discarded" (§2.3: a partial message at EOT is discarded).

    Line noise in neutral (anything but ENQ; stray ACK/NAK/EOT are ignored) is collected and
    returned as one "discarded" action at the next ENQ, after ``frame_timeout``, or from close().
    An ENQ in neutral is always answered ACK: contention with the LIS's own bid is the caller's
    business (the instrument wins, §2.3). feed() never raises.
    """

    def __init__(self, *, max_message_bytes: int = 1_048_576, frame_timeout: float = 30.0,
                 require_terminator: bool = False) -> None:
        self.max_message_bytes = max_message_bytes
        self.frame_timeout = frame_timeout
        self.require_terminator = require_terminator
        self._transfer = False
        self._frame: bytearray | None = None
        self._text = bytearray()
        self._garbage = bytearray()
        self._garbage_since = 0.0
        self._last_fn: int | None = None
        self._last_end = 0
        self._last_ok = True
        self._naks = 0
        self._scanned = 0
        self._last_activity = 0.0

    @property
    def idle(self) -> bool:
        """Neutral: no transfer phase, no frame being read."""
        return not self._transfer and self._frame is None

    def feed(self, data: bytes, now: float) -> list[Action]:
        actions = self.check_timeout(now)
        buf = bytes(data)
        i = 0
        while i < len(buf):
            if self._frame is not None:
                i = self._collect_frame(buf, i, now, actions)
            elif self._transfer:
                i = self._transfer_byte(buf, i, now, actions)
            else:
                i = self._neutral_byte(buf, i, now, actions)
        return actions

    def check_timeout(self, now: float) -> list[Action]:
        """§2.3: 30 s without a frame or EOT during transfer -> discard, back to neutral."""
        actions: list[Action] = []
        if (self._transfer or self._frame is not None) and now - self._last_activity >= self.frame_timeout:
            self._abandon(actions)
        if self._garbage and now - self._garbage_since >= self.frame_timeout:
            self._flush_garbage(actions)
        return actions

    def close(self) -> list[Action]:
        """The link went down: whatever is pending is discarded (never a message)."""
        actions: list[Action] = []
        self._flush_garbage(actions)
        self._abandon(actions)
        return actions

    # -- neutral and transfer bytes ------------------------------------------------------------

    def _neutral_byte(self, buf: bytes, i: int, now: float, actions: list[Action]) -> int:
        byte = buf[i]
        if byte == _ENQ:
            self._flush_garbage(actions)
            self._begin_transfer(now)
            actions.append(("send", ACK))
        elif byte not in (_EOT, _ACK, _NAK):
            if not self._garbage:
                self._garbage_since = now
            self._garbage.append(byte)
            if len(self._garbage) >= self.max_message_bytes:
                self._flush_garbage(actions)
        return i + 1

    def _transfer_byte(self, buf: bytes, i: int, now: float, actions: list[Action]) -> int:
        byte = buf[i]
        if byte == _STX:
            self._frame = bytearray(STX)
        elif byte == _EOT:
            self._end_transfer(actions)
        elif byte == _ENQ:  # the sender started over without EOT: what we had is incomplete
            self._abandon(actions)
            self._begin_transfer(now)
            actions.append(("send", ACK))
        return i + 1  # anything else between frames (CR, LF, NUL) is ignored

    def _collect_frame(self, buf: bytes, i: int, now: float, actions: list[Action]) -> int:
        """Read up to the LF that ends every frame. A new STX first restarts the frame (the one
        before was cut off); an EOT or ENQ first drops the cut-off frame and is then handled as
        itself, so a sender that gave up mid-frame is not answered NAK forever. A frame that never
        ends is dropped at the size cap with NAK."""
        assert self._frame is not None
        stop = _first_of(buf, i, (LF, STX, EOT, ENQ))
        if stop < 0:
            self._frame += buf[i:]
            if len(self._frame) > self.max_message_bytes + 8:
                self._frame = None
                self._reply(False, actions)
            return len(buf)
        if buf[stop] == _LF:
            frame, self._frame = bytes(self._frame + buf[i:stop + 1]), None
            self._handle_frame(frame, now, actions)
            return stop + 1
        self._last_ok = False  # a frame was cut off: an EOT now means the sender gave up
        if buf[stop] == _STX:
            self._frame = bytearray(STX)
            return stop + 1
        self._frame = None
        return stop  # EOT / ENQ: processed by _transfer_byte

    def _handle_frame(self, frame: bytes, now: float, actions: list[Action]) -> None:
        self._last_activity = now
        parsed = _parse_frame(frame)
        if parsed is None:
            self._reply(False, actions)
            return
        fn, text, end = parsed
        expected = 1 if self._last_fn is None else (self._last_fn + 1) % 8
        if fn == self._last_fn:  # a retransmission whose ACK was lost: ACK it, drop it (§2.3)
            self._reply(True, actions)
        elif fn != expected or len(self._text) + len(text) > self.max_message_bytes:
            self._reply(False, actions)
        else:
            self._text += text
            self._last_fn, self._last_end = fn, end
            if end == _ETX:
                self._complete_messages(actions)
            self._reply(True, actions)

    def _reply(self, ok: bool, actions: list[Action]) -> None:
        self._last_ok = ok
        if ok:
            self._naks = 0
            actions.append(("send", ACK))
            return
        self._naks += 1
        actions.append(("send", NAK))
        if self._naks >= _MAX_CONSECUTIVE_NAKS:
            self._abandon(actions)

    # -- message boundaries --------------------------------------------------------------------

    def _complete_messages(self, actions: list[Action]) -> None:
        """After an ETX: emit every message that ends at an L record (or before a new H).

        Only records not scanned before are looked at, so a long message costs linear time."""
        text = self._text
        if not text.endswith(CR):
            text += CR  # ETX ends the record even when the sender left out its CR
        start, pos = 0, self._scanned
        separator = _field_separator(text)
        while pos < len(text):
            end = text.index(CR, pos) + 1
            record = bytes(text[pos:min(end - 1, pos + 2)])  # the type letter and separator suffice
            if _is_header(record) and pos > start:
                actions.append(("message", bytes(text[start:pos])))
                start, separator = pos, record[1:2]
            if _is_terminator(record, separator, end - 1 - pos):
                actions.append(("message", bytes(text[start:end])))
                start = end
            pos = end
        del text[:start]
        self._scanned = len(text)

    def _end_transfer(self, actions: list[Action]) -> None:
        text = bytes(self._text)
        if text.strip(_NOISE):
            complete = self._last_ok and self._last_end == _ETX and not self.require_terminator
            actions.append(("message" if complete else "discarded", text))
        self._reset()
        actions.append(("eot", b""))

    # -- helpers -------------------------------------------------------------------------------

    def _begin_transfer(self, now: float) -> None:
        self._reset()
        self._transfer = True
        self._last_activity = now

    def _abandon(self, actions: list[Action]) -> None:
        partial = bytes(self._text) + bytes(self._frame or b"")
        if partial:
            actions.append(("discarded", partial))
        self._reset()

    def _reset(self) -> None:
        self._transfer, self._frame, self._text = False, None, bytearray()
        self._last_fn, self._last_end, self._last_ok, self._naks = None, 0, True, 0
        self._scanned = 0  # offset in _text up to which records were checked for boundaries

    def _flush_garbage(self, actions: list[Action]) -> None:
        if self._garbage.strip(_NOISE):
            actions.append(("discarded", bytes(self._garbage)))
        self._garbage = bytearray()


def _first_of(buf: bytes, start: int, needles: tuple[bytes, ...]) -> int:
    found = [p for p in (buf.find(n, start) for n in needles) if p >= 0]
    return min(found) if found else -1


def _is_header(record: bytes) -> bool:
    return len(record) >= 2 and record[:1] == b"H" and not chr(record[1]).isalnum()


def _field_separator(text: bytes) -> bytes:
    return text[1:2] if _is_header(text[:2]) else b"|"


def _is_terminator(head: bytes, separator: bytes, length: int) -> bool:
    """Is the record whose first bytes are ``head`` (``length`` bytes long) an L record?"""
    return head[:1] == b"L" and (length == 1 or head[1:2] == separator)


class AstmSender:
    """Pure sender state machine, used to answer host queries (§2.3).

    ``start(now)`` -> ENQ to send. ``on_reply(data, now)`` -> actions in order:
    ``("send", bytes)``, ``("done", b"")``, ``("failed", reason)`` or ``("yield", b"")``.

    * ACK to ENQ -> first frame; ACK to a frame -> next frame; after the last, EOT + done.
    * NAK to a frame -> the same frame again, up to ``max_attempts`` transmissions, then EOT +
      failed. NAK to ENQ (receiver busy) -> yield: bid again later (~10 s); after
      ``max_attempts`` busy replies -> failed.
    * ENQ in reply to our ENQ is contention: the instrument wins -> yield. That ENQ is consumed
      here; do not feed it to the receiver: the instrument bids again after >= 1 s (§2.3).
    * EOT in reply to a frame is a receiver interrupt: the frame was accepted; we stop with EOT
      (done if it was the last frame, else failed so the caller resends the message later).
    * ``check_timeout(now)``: ``reply_timeout`` (15 s) without a reply -> EOT + failed.
    Frames of all messages are numbered continuously within the transfer phase, starting at 1.
    """

    def __init__(self, messages: list[bytes], *, reply_timeout: float = 15.0, max_attempts: int = 6,
                 max_text: int = 240, per_record: bool = True) -> None:
        self.reply_timeout = reply_timeout
        self.max_attempts = max_attempts
        self._frames: list[bytes] = []
        for message in messages:
            fn = (1 + len(self._frames)) % 8
            self._frames += build_frames(message, max_text=max_text, first_fn=fn, per_record=per_record)
        self.state = "idle"   # idle | bidding | sending | done | failed
        self._index = 0
        self._attempts = 0
        self._bids_refused = 0
        self._sent_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def start(self, now: float | None = None) -> bytes:
        """Bid for the line. Without ``now`` the reply timer starts at the next check_timeout."""
        self.state, self._sent_at = "bidding", now
        return ENQ

    def on_reply(self, data: bytes, now: float) -> list[Action]:
        actions: list[Action] = []
        for byte in bytes(data):
            if self.state == "bidding":
                self._on_bid_reply(byte, now, actions)
            elif self.state == "sending":
                self._on_frame_reply(byte, now, actions)
        return actions

    def check_timeout(self, now: float) -> list[Action]:
        if self.state not in ("bidding", "sending"):
            return []
        if self._sent_at is None:
            self._sent_at = now
            return []
        if now - self._sent_at >= self.reply_timeout:
            return self._fail(b"timeout")
        return []

    def _on_bid_reply(self, byte: int, now: float, actions: list[Action]) -> None:
        if byte == _ACK:
            self.state, self._index, self._attempts = "sending", 0, 0
            self._send_current(now, actions)
        elif byte == _ENQ:
            self.state = "idle"
            actions.append(("yield", b""))
        elif byte == _NAK:
            self._bids_refused += 1
            if self._bids_refused >= self.max_attempts:
                self.state = "failed"
                actions.append(("failed", b"receiver busy"))
            else:
                self.state = "idle"
                actions.append(("yield", b""))

    def _on_frame_reply(self, byte: int, now: float, actions: list[Action]) -> None:
        if byte in (_ACK, _EOT):
            self._index, self._attempts = self._index + 1, 0
            if self._index >= len(self._frames):
                self._finish(actions)
            elif byte == _EOT:
                actions.extend(self._fail(b"receiver interrupt"))
            else:
                self._send_current(now, actions)
        elif byte == _NAK:
            if self._attempts >= self.max_attempts:
                actions.extend(self._fail(b"too many NAKs"))
            else:
                self._send_current(now, actions)

    def _send_current(self, now: float, actions: list[Action]) -> None:
        if self._index >= len(self._frames):
            self._finish(actions)
            return
        self._attempts += 1
        self._sent_at = now
        actions.append(("send", self._frames[self._index]))

    def _finish(self, actions: list[Action]) -> None:
        self.state = "done"
        actions.extend([("send", EOT), ("done", b"")])

    def _fail(self, reason: bytes) -> list[Action]:
        self.state = "failed"
        return [("send", EOT), ("failed", reason)]
