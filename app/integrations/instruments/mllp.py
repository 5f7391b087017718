"""MLLP block framing (instruments.md §1.1): ``VT payload FS CR``.

An incremental, resynchronising framer: analyzers keep one connection open and may put two
blocks in one ``recv()`` or split one block over many. Unlike python-hl7's reader (which loses
the following message after garbage, instruments.md §1.1) this one hands garbage back as a
"discarded" event and carries on at the next VT. It never raises, whatever the bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
_VT, _FS, _CR = VT[0], FS[0], CR[0]
_NOISE = b" \t\r\n\x00"  # whitespace between blocks (e.g. a stray LF after FS CR) is dropped silently


@dataclass
class MllpEvent:
    kind: str   # "message" | "discarded" | "oversize"
    data: bytes  # payload between VT and FS; the discarded raw bytes; the first max bytes of an oversize block


def frame(payload: bytes) -> bytes:
    """One MLLP block. The payload must not contain VT or FS (HL7 text never does)."""
    return VT + payload + FS + CR


class MllpFramer:
    """Feed it bytes as they arrive; it returns the events completed by those bytes.

    Rules (instruments.md §1.1):
    * bytes before a VT are garbage: returned as one "discarded" event when the next VT arrives
      (or from :meth:`close`), whitespace-only noise is dropped silently;
    * a VT inside an unfinished block means that block was truncated: "discarded" (with its VT)
      and a new block starts;
    * a block whose payload grows past ``max_message_bytes`` gives one "oversize" event and the
      rest of it is skipped up to its FS;
    * the block ends at FS. FS CR is the standard end; an FS followed by anything else is
      accepted as the end too (the byte after it is then read as the start of what follows),
      because a missing CR is a harmless deviation and waiting for it would hold the ACK.
    """

    def __init__(self, max_message_bytes: int = 1_048_576) -> None:
        self.max_message_bytes = max_message_bytes
        self._state = "seek"          # "seek" | "block" | "skip"
        self._block = bytearray()
        self._garbage = bytearray()
        self._after_fs = False        # the last byte was FS: swallow one CR if it comes next

    def feed(self, data: bytes) -> list[MllpEvent]:
        events: list[MllpEvent] = []
        buf = bytes(data)
        i = 0
        while i < len(buf):
            if self._after_fs:
                self._after_fs = False
                if buf[i] == _CR:
                    i += 1
                    continue
            if self._state == "seek":
                i = self._seek(buf, i, events)
            elif self._state == "block":
                i = self._in_block(buf, i, events)
            else:
                i = self._skip(buf, i)
        return events

    def close(self) -> list[MllpEvent]:
        """The connection ended: anything pending (garbage, an unfinished block) is "discarded".

        An unfinished block is never a message: no ACK, nothing stored (instruments.md §1.1)."""
        events: list[MllpEvent] = []
        self._flush_garbage(events)
        if self._state == "block":
            events.append(MllpEvent("discarded", VT + bytes(self._block)))
        self._state, self._block, self._after_fs = "seek", bytearray(), False
        return events

    @property
    def idle(self) -> bool:
        """No unfinished block and no pending garbage."""
        return self._state == "seek" and not self._garbage

    # -- states -------------------------------------------------------------------------------

    def _seek(self, buf: bytes, i: int, events: list[MllpEvent]) -> int:
        j = buf.find(VT, i)
        if j < 0:
            self._garbage += buf[i:]
            if len(self._garbage) > self.max_message_bytes:
                self._flush_garbage(events)
            return len(buf)
        self._garbage += buf[i:j]
        self._flush_garbage(events)
        self._start_block()
        return j + 1

    def _in_block(self, buf: bytes, i: int, events: list[MllpEvent]) -> int:
        end, stop = _next_control(buf, i)
        self._block += buf[i:end]
        if len(self._block) > self.max_message_bytes:
            events.append(MllpEvent("oversize", bytes(self._block[: self.max_message_bytes])))
            self._block = bytearray()
            self._state = "skip"
        if stop is None:
            return len(buf)
        if self._state == "block" and stop == _FS:
            events.append(MllpEvent("message", bytes(self._block)))
        elif self._state == "block":  # a VT: the block we were reading was truncated
            events.append(MllpEvent("discarded", VT + bytes(self._block)))
        return self._after_control(stop, end)

    def _skip(self, buf: bytes, i: int) -> int:
        end, stop = _next_control(buf, i)
        if stop is None:
            return len(buf)
        return self._after_control(stop, end)

    def _after_control(self, stop: int, end: int) -> int:
        if stop == _FS:
            self._state, self._block, self._after_fs = "seek", bytearray(), True
        else:
            self._start_block()
        return end + 1

    def _start_block(self) -> None:
        self._state, self._block = "block", bytearray()

    def _flush_garbage(self, events: list[MllpEvent]) -> None:
        if self._garbage.strip(_NOISE):
            events.append(MllpEvent("discarded", bytes(self._garbage)))
        self._garbage = bytearray()


def _next_control(buf: bytes, i: int) -> tuple[int, int | None]:
    """Index and value of the next FS or VT at or after i; (len, None) when there is none."""
    fs, vt = buf.find(FS, i), buf.find(VT, i)
    candidates = [p for p in (fs, vt) if p >= 0]
    if not candidates:
        return len(buf), None
    end = min(candidates)
    return end, buf[end]
