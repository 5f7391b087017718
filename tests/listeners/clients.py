"""Analyzers, played over real sockets: an MLLP sender and an ASTM E1381 sender/receiver."""
from __future__ import annotations

import socket
import time

from app.integrations.instruments import astm_link
from app.integrations.instruments.astm_link import ACK, ENQ, EOT, NAK

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


class MllpClient:
    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> bytes:
        self.sock.sendall(VT + payload + FS + CR)
        return self.read_block()

    def read_block(self, timeout: float | None = None) -> bytes:
        """The next MLLP block's payload (an ACK); `timeout` overrides the socket's for this read."""
        previous = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while FS + CR not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before an ACK")
                self.buffer += chunk
        finally:
            self.sock.settimeout(previous)
        block, self.buffer = self.buffer.split(FS + CR, 1)
        assert block.startswith(VT), block[:20]
        return block[1:]

    def closed_by_peer(self, timeout: float) -> bool:
        """True when the listener closes the connection within `timeout` seconds without sending
        anything more (EOF); False on silence. Bytes received instead are an assertion error."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        assert data == b"", f"unexpected bytes from the listener: {data[:80]!r}"
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "MllpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def msa(ack: bytes) -> list[str]:
    """The MSA segment's fields of an ACK: [ 'MSA', code, control id, ...]."""
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA"):
            return segment.decode().split("|")
    raise AssertionError(f"no MSA in {ack!r}")


class AstmClient:
    """The analyzer side of LIS1-A: ENQ, frames (waiting for each ACK), EOT."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        data = self.sock.recv(1)
        if not data:
            raise ConnectionError("closed")
        return data

    def send_frames(self, frames: list[bytes], *, enq: bool = True, eot: bool = True) -> list[bytes]:
        replies = []
        if enq:
            self.sock.sendall(ENQ)
            replies.append(self.reply())
        for frame in frames:
            self.sock.sendall(frame)
            replies.append(self.reply())
        if eot:
            self.sock.sendall(EOT)
        return replies

    def send_message(self, records: list[str] | str, **kwargs) -> list[bytes]:  # type: ignore[no-untyped-def]
        text = records if isinstance(records, str) else "\r".join(records) + "\r"
        return self.send_frames(astm_link.build_frames(text.encode()), **kwargs)

    def receive_transmission(self, timeout: float = 5.0) -> bytes:
        """Act as receiver for the host's reply: answer ENQ and every frame with ACK until EOT.
        Returns the concatenated frame texts."""
        self.sock.settimeout(timeout)
        receiver = astm_link.AstmReceiver()
        text = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.sock.recv(4096)
            if not data:
                break
            for kind, payload in receiver.feed(data, time.monotonic()):
                if kind == "send":
                    self.sock.sendall(payload)
                elif kind == "message":
                    text += payload
                elif kind == "eot":
                    return text
        return text

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "AstmClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ACK", "NAK", "EOT", "ENQ", "MllpClient", "AstmClient", "msa"]
