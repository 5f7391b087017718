"""The listener's only path to the database: committing raw analyzer messages, fast.

Durable before acknowledged: `store()` returns only after the row is committed, and the
connection handler sends the ACK after that. Messages from all connections are committed in
small groups (one transaction per group), which is what lets one listener process keep up
with many analyzers on a 2-core box without giving up durability: a commit costs one WAL
flush whether it carries one message or fifty.

A resend of identical bytes (our ACK was lost) lands on the same row (`resent + 1`), so every
message is stored exactly once.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from app.integrations.instruments.hl7 import QueriedSample

log = logging.getLogger("lis.listeners")

MAX_GROUP = 200

INSERT_SQL = """
INSERT INTO instrument_message (org_id, instrument_id, protocol, peer, received_at, raw, sha256, resent,
                                control_id, message_type, outcome, detail, results_attached, results_unmatched)
VALUES (%s, %s, %s, %s, now(), %s, %s, 0, %s, %s, %s, %s, 0, 0)
ON CONFLICT (instrument_id, sha256) DO UPDATE SET resent = instrument_message.resent + 1
RETURNING id
"""


@dataclass(frozen=True)
class InstrumentConfig:
    id: int
    org_id: int
    name: str
    protocol: str
    port: int
    profile: dict[str, Any]
    send_orders: bool = False  # HL7: the lab pushes ORM^O01 orders on this instrument's connection

    @property
    def max_message_bytes(self) -> int:
        return int(self.profile.get("max_message_bytes", 1_048_576))

    @property
    def read_timeout(self) -> float:
        return float(self.profile.get("read_timeout_seconds", 30))


# Times an analyzer displays (the sample time of a DSR^Q03) are the lab's local time.
LAB_TIME = ZoneInfo("Asia/Kolkata")


@dataclass(frozen=True)
class OutboxOrder:
    id: int
    instrument_id: int
    control_id: str
    payload: bytes


@dataclass
class Pending:
    instrument: InstrumentConfig
    protocol: str
    peer: str
    raw: bytes
    control_id: str
    message_type: str
    outcome: str
    detail: str
    future: asyncio.Future


class MessageStore:
    def __init__(self, dsn: str, *, on_committed: Any = None):
        self.dsn = dsn
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.on_committed = on_committed  # called after each committed group (wakes the ingestion job)
        self._conn: psycopg.AsyncConnection | None = None
        self._query_conn: psycopg.AsyncConnection | None = None
        self._query_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-store")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for conn in (self._conn, self._query_conn):
            if conn is not None:
                await conn.close()

    async def store(self, instrument: InstrumentConfig, protocol: str, peer: str, raw: bytes, *,
                    control_id: str = "", message_type: str = "", outcome: str = "stored", detail: str = "") -> int:
        """Commit one raw message; returns its id. Raises if it could not be committed (then
        the caller must not ACK: the analyzer will send it again)."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Pending(instrument, protocol, peer[:64], raw, control_id[:64], message_type[:32],
                                      outcome, detail[:4000], future))
        return await future

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, application_name="lis-listeners")
        return self._conn

    async def _run(self) -> None:
        while True:
            group = [await self.queue.get()]
            while len(group) < MAX_GROUP and not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                ids = await self._commit(group)
            except Exception as exc:  # the database is away: nobody gets an ACK, analyzers resend
                log.error("could not store %d instrument messages: %s", len(group), type(exc).__name__)
                if self._conn is not None:
                    await self._conn.close()
                    self._conn = None
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(exc)
                await asyncio.sleep(0.5)
                continue
            for item, message_id in zip(group, ids):
                if not item.future.done():
                    item.future.set_result(message_id)
            if self.on_committed is not None:
                self.on_committed()

    async def _commit(self, group: list[Pending]) -> list[int]:
        conn = await self._connection()
        ids: list[int] = []
        async with conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(INSERT_SQL, [
                    (p.instrument.org_id, p.instrument.id, p.protocol, p.peer, p.raw, hashlib.sha256(p.raw).digest(),
                     p.control_id, p.message_type, p.outcome, p.detail) for p in group], returning=True)
                while True:
                    ids.append((await cur.fetchone())[0])
                    if not cur.nextset():
                        break
                await cur.execute("UPDATE instrument SET last_message_at = now() WHERE id = ANY(%s)",
                                  (sorted({p.instrument.id for p in group}),))
        return ids

    # ------------------------------------------------------------ small reads and writes

    async def _query(self, sql: str, params: tuple, *, fetch: bool = True) -> list[tuple]:
        async with self._query_lock:
            if self._query_conn is None or self._query_conn.closed:
                self._query_conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name="lis-listeners")
            async with self._query_conn.cursor() as cur:
                await cur.execute(sql, params)
                return await cur.fetchall() if fetch else []

    async def instruments(self) -> list[InstrumentConfig]:
        rows = await self._query(
            "SELECT id, org_id, name, protocol, port, profile, sample_id_field, test_code_field, send_orders "
            "FROM instrument WHERE active ORDER BY port", ())
        return [InstrumentConfig(r[0], r[1], r[2], r[3], r[4],
                                 {"sample_id_fallbacks": [], **(r[5] or {}), "sample_id_field": r[6],
                                  "test_code_field": r[7]}, bool(r[8])) for r in rows]

    async def connection_changed(self, instrument_id: int, delta: int) -> None:
        try:
            await self._query("UPDATE instrument SET connections = greatest(connections + %s, 0), "
                              "last_connected_at = CASE WHEN %s > 0 THEN now() ELSE last_connected_at END "
                              "WHERE id = %s", (delta, delta, instrument_id), fetch=False)
        except psycopg.Error:
            log.warning("could not record connection state of instrument %s", instrument_id)

    async def reset_connections(self) -> None:
        """After a restart nobody is connected, whatever the rows say."""
        await self._query("UPDATE instrument SET connections = 0 WHERE connections <> 0", (), fetch=False)

    async def pending_codes(self, instrument: InstrumentConfig, sample_id: str) -> tuple[list[str], str] | None:
        """For a host query: the instrument codes of the tests still pending on a received tube
        with exactly this barcode, and the patient's name; None when there is no such tube."""
        rows = await self._query(
            "SELECT s.id, p.full_name, ic.code FROM sample s "
            "JOIN lab_order o ON o.id = s.order_id JOIN patient p ON p.id = o.patient_id "
            "LEFT JOIN order_test ot ON ot.sample_id = s.id AND ot.status = 'pending' "
            "LEFT JOIN instrument_code ic ON ic.test_id = ot.test_id AND ic.instrument_id = %s "
            "WHERE s.org_id = %s AND s.barcode = %s AND s.status IN ('received', 'in_process') "
            "ORDER BY ic.code", (instrument.id, instrument.org_id, sample_id))
        if not rows:
            return None
        return [r[2] for r in rows if r[2] is not None], rows[0][1] or ""

    async def queried_sample(self, instrument: InstrumentConfig, barcode: str) -> QueriedSample | None:
        """For an HL7 host query (Mindray QRY^Q02): the received tube of the instrument's own
        organization with exactly this barcode, its patient, and the instrument's codes for its
        pending (not yet resulted) tests - one code per test, the lowest, as for pushed orders.
        None when there is no such tube or no such test: the analyzer is told NF."""
        rows = await self._query(
            "SELECT s.barcode, p.mrn, p.full_name, p.date_of_birth, p.sex, s.collected_at, o.priority, s.specimen, "
            "min(ic.code) FROM sample s "
            "JOIN lab_order o ON o.id = s.order_id JOIN patient p ON p.id = o.patient_id "
            "JOIN order_test ot ON ot.sample_id = s.id AND ot.status = 'pending' "
            "JOIN instrument_code ic ON ic.test_id = ot.test_id AND ic.instrument_id = %s "
            "WHERE s.org_id = %s AND s.barcode = %s AND s.status IN ('received', 'in_process') "
            "GROUP BY s.id, p.id, o.id, ot.test_id", (instrument.id, instrument.org_id, barcode))
        if not rows:
            return None
        first = rows[0]
        collected = first[5].astimezone(LAB_TIME).replace(tzinfo=None) if first[5] else None
        return QueriedSample(barcode=first[0], patient_id=first[1], patient_name=first[2], dob=first[3],
                             sex=first[4], collected_at=collected, urgent=first[6] in ("urgent", "stat"),
                             specimen=first[7], test_codes=sorted({r[8] for r in rows}))

    # ------------------------------------------------------------ the order outbox

    async def due_orders(self, instrument_ids: list[int], limit: int = 50) -> list[OutboxOrder]:
        """Queued orders whose time has come, oldest first, for these (connected) instruments
        that still want orders pushed."""
        rows = await self._query(
            "SELECT o.id, o.instrument_id, o.control_id, o.payload FROM instrument_order o "
            "JOIN instrument i ON i.id = o.instrument_id AND i.send_orders AND i.active "
            "WHERE o.status = 'queued' AND o.next_attempt_at <= now() AND o.instrument_id = ANY(%s) "
            "ORDER BY o.id LIMIT %s", (sorted(instrument_ids), limit))
        return [OutboxOrder(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def claim_order(self, order_id: int, hold_seconds: float) -> int | None:
        """Count an attempt before the bytes go out, and hold the row for hold_seconds: if this
        process dies while waiting for the ACK, the next one resends it after that. Returns the
        attempt number, or None when the row is no longer due (answered, or taken meanwhile)."""
        rows = await self._query(
            "UPDATE instrument_order SET attempts = attempts + 1, last_attempt_at = now(), "
            "next_attempt_at = now() + make_interval(secs => %s) "
            "WHERE id = %s AND status = 'queued' AND next_attempt_at <= now() RETURNING attempts",
            (hold_seconds, order_id))
        return rows[0][0] if rows else None

    async def order_answered(self, order_id: int, code: str, why: str, ack_message_id: int | None) -> None:
        """The analyzer's ACK: AA (or a commit accept CA) -> acked; anything else -> failed, with why."""
        accepted = code in ("AA", "CA")
        await self._query(
            "UPDATE instrument_order SET status = %s, ack_code = %s, error = %s, answered_at = now(), "
            "ack_message_id = %s WHERE id = %s AND status = 'queued'",
            ("acked" if accepted else "failed", code[:2], "" if accepted else (why or f"answered {code}")[:4000],
             ack_message_id, order_id), fetch=False)

    async def order_unanswered(self, order_id: int, why: str, retry_seconds: float, max_attempts: int) -> None:
        """No ACK: try again after retry_seconds, or give up (failed) after max_attempts."""
        await self._query(
            "UPDATE instrument_order SET error = %s, next_attempt_at = now() + make_interval(secs => %s), "
            "status = CASE WHEN attempts >= %s THEN 'failed' ELSE status END "
            "WHERE id = %s AND status = 'queued'", (why[:4000], retry_seconds, max_attempts, order_id), fetch=False)
