"""The instrument listener process: one asyncio TCP server per configured instrument port.

It reconciles its servers with the instrument registry every few seconds (a new instrument
needs no restart) and stops cleanly on SIGTERM/SIGINT. Each connection speaks the
instrument's protocol:

* HL7 v2 over MLLP: many messages per connection, one ACK each, in order;
* ASTM E1381 (LIS1-A link layer) carrying E1394 records, with host-query replies.

The listener also writes on HL7 connections: the Mindray host-query answer (QCK^Q02, then one
DSR^Q03 per queried tube with pending tests, instruments.md §1.5) and the orders of the
instrument_order outbox (ORM^O01, for instruments with `send_orders`), polled every second
for the instruments connected here. Each such message waits for the analyzer's ACK, which
arrives on the same connection and is matched by MSA-2.

Durable before acknowledged: the raw bytes of every message are committed (MessageStore)
before the ACK - or the ACK of the last ASTM frame - is written. Parsing into results and
matching them to tubes happens afterwards in an RQ job (app.services.ingestion), which is
woken after each commit and also swept by cron, so a crash between the two loses nothing.

Serial analyzers: run ser2net (or a pyserial-asyncio bridge) to expose the RS-232 line as a
TCP port and configure that port here; see docs/OPERATIONS.md.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from app.integrations.instruments import astm, astm_link, hl7, mllp
from app.integrations.instruments.parsed import ProtocolError
from workers.message_store import InstrumentConfig, MessageStore, OutboxOrder

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("lis.listeners")

RECONCILE_SECONDS = 5.0
ASTM_TICK_SECONDS = 1.0
ORDER_POLL_SECONDS = 1.0
ORDER_MAX_ATTEMPTS = 10  # then the order is 'failed' ("no ACK"), for a person to look at
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _control_id() -> str:
    return uuid.uuid4().hex[:20]


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")


# An analyzer's answer to a message we sent: (MSA-1 code, why, id of the stored ACK message).
Answer = tuple[str, str, int]


class Hl7Connection:
    """One analyzer connection speaking MLLP."""

    def __init__(self, instrument: InstrumentConfig, store: MessageStore,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.instrument, self.store, self.reader, self.writer = instrument, store, reader, writer
        self.peer = _peer(writer)
        self.framer = mllp.MllpFramer(max_message_bytes=instrument.max_message_bytes)
        self.awaiting: dict[str, asyncio.Future[Answer]] = {}  # our MSH-10 -> the analyzer's ACK
        self.send_lock = asyncio.Lock()  # one message of ours in flight at a time (MLLP is in order)
        self.tasks: set[asyncio.Task] = set()
        self.closed = False

    async def run(self) -> None:
        try:
            await self._read_loop()
        finally:
            self.closed = True
            for task in self.tasks:
                task.cancel()
            for future in self.awaiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed before the ACK"))

    async def _read_loop(self) -> None:
        while True:
            # A half-received block must finish within the read timeout; an idle link may stay
            # open for as long as the analyzer likes (they keep one connection all day).
            timeout = None if self.framer.idle else self.instrument.read_timeout
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout=timeout)
            except asyncio.TimeoutError:
                await self._keep_partial("read timeout in the middle of a message; not acknowledged")
                return
            if not data:
                await self._keep_partial("connection closed in the middle of a message; not acknowledged")
                return
            for event in self.framer.feed(data):
                await self._on_event(event)

    async def _keep_partial(self, why: str) -> None:
        """An unfinished block is never a message (no ACK), but its bytes are kept raw."""
        for event in self.framer.close():
            if event.data.strip():
                await self._store(event.data, outcome="rejected", detail=why)

    async def _store(self, raw: bytes, **fields: str) -> int:
        return await self.store.store(self.instrument, "hl7", self.peer, raw, **fields)

    async def _on_event(self, event: mllp.MllpEvent) -> None:
        if event.kind == "discarded":
            if event.data.strip():
                why = ("truncated message: a new block started before its end; not acknowledged"
                       if event.data.startswith(mllp.VT) else "bytes outside an MLLP block (discarded)")
                await self._store(event.data, outcome="rejected", detail=why)
            return
        now = datetime.now()
        if event.kind == "oversize":
            await self._store(event.data, outcome="rejected",
                              detail=f"message larger than {self.instrument.max_message_bytes} bytes; first part kept")
            acks = hl7.ack_messages(None, event.data, accepted=False, reject=True, error_text="Message too large",
                                    now=now, control_id=_control_id())
        else:
            try:
                message = hl7.parse_message(event.data, encoding=self.instrument.profile.get("encoding"))
            except ProtocolError as exc:
                await self._store(event.data, outcome="rejected", detail=f"not an HL7 message: {exc}")
                acks = hl7.ack_messages(None, event.data, accepted=False, reject=True,
                                        error_text="Not an HL7 message", now=now, control_id=_control_id())
            else:
                message_id = await self._store(event.data, control_id=message.control_id,
                                               message_type=message.message_type)
                acks = await self._reply(message, event.data, message_id, now)
        for ack in acks:
            self.writer.write(mllp.frame(ack))
        await self.writer.drain()

    async def _reply(self, message: hl7.Hl7Message, raw: bytes, message_id: int, now: datetime) -> list[bytes]:
        """What answers a stored message (written after the commit: durable before acknowledged)."""
        if message.message_type.split("^")[0] in ("ACK", "MCF"):
            # An acknowledgement is never acknowledged (HL7 v2 ch. 2): that would loop forever.
            # It may answer something we sent; then whoever waits for it learns the outcome.
            code, acked, why = hl7.read_ack(message)
            waiter = self.awaiting.pop(acked, None)
            if waiter is not None and not waiter.done():
                waiter.set_result((code, why, message_id))
            return []
        if message.message_type == "QRY^Q02":
            return [await self._answer_query(message, now)]
        # IHE LAW QBP^Q11 is acknowledged and stored only: its answer is RSP^K11 and then an
        # OML^O33 work order (§1.5), not built here (docs/OPERATIONS.md, "Orders to analyzers").
        return hl7.ack_messages(message, raw, accepted=True, now=now, control_id=_control_id())

    async def _answer_query(self, message: hl7.Hl7Message, now: datetime) -> bytes:
        """Mindray QRY^Q02 (§1.5): the QCK^Q02 is the query's acknowledgment (QAK OK, or NF when
        no queried barcode is a received tube with pending tests this analyzer has codes for);
        the DSR^Q03s follow, one per such tube, each waiting for the analyzer's ACK^Q03."""
        found = []
        try:
            query_ids = hl7.extract(message, self.instrument.profile).query_ids
            for barcode in query_ids:
                sample = await self.store.queried_sample(self.instrument, barcode)
                if sample is not None:
                    found.append(sample)
        except Exception:  # the database is away, a bad profile path: answer NF, the analyzer asks again
            log.warning("host query on instrument %s could not be looked up", self.instrument.id)
            found = []
        dsrs = []
        for n, sample in enumerate(found, start=1):
            control_id = _control_id()
            dsrs.append((control_id, hl7.query_orders(message, sample, now=now, control_id=control_id,
                                                      continuation="" if n == len(found) else str(n + 1))))
        if dsrs:
            self._spawn(self._send_answers(dsrs))
        return hl7.query_response(message, found=bool(found), now=now, control_id=_control_id())

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_answers(self, messages: list[tuple[str, bytes]]) -> None:
        for control_id, payload in messages:
            try:
                answer = await self.deliver(payload, control_id, self.instrument.read_timeout)
            except ConnectionError:
                return
            if answer is None or answer[0] not in ("AA", "CA"):
                log.warning("host query answer %s to instrument %s: %s", control_id, self.instrument.id,
                            "no ACK" if answer is None else f"answered {answer[0]}")

    async def deliver(self, payload: bytes, control_id: str, timeout: float) -> Answer | None:
        """Send one message of ours and wait for the ACK whose MSA-2 is its MSH-10; None when none
        comes within timeout. Raises ConnectionError when the connection is (or goes) away."""
        async with self.send_lock:
            if self.closed:
                raise ConnectionError("connection closed")
            waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self.awaiting[control_id] = waiter
            try:
                self.writer.write(mllp.frame(payload))
                await self.writer.drain()
                return await asyncio.wait_for(waiter, timeout=timeout)
            except asyncio.TimeoutError:
                return None
            finally:
                self.awaiting.pop(control_id, None)

    async def push_orders(self, orders: list[OutboxOrder]) -> None:
        """Send queued orders one by one (oldest first), recording each ACK on its row. A row is
        claimed (attempt counted, held for twice the wait) before its bytes go out, so a crash
        while waiting means a resend of the same bytes later, never a lost or doubled row."""
        wait = self.instrument.read_timeout
        for order in orders:
            if self.closed or await self.store.claim_order(order.id, hold_seconds=2 * wait) is None:
                continue
            try:
                answer = await self.deliver(order.payload, order.control_id, wait)
            except ConnectionError:
                await self.store.order_unanswered(order.id, "connection closed before the ACK", 0, ORDER_MAX_ATTEMPTS)
                return
            if answer is None:
                await self.store.order_unanswered(order.id, f"no ACK within {wait:g} s", wait, ORDER_MAX_ATTEMPTS)
                return  # an analyzer that does not answer gets the rest later, not a burst now
            await self.store.order_answered(order.id, *answer)


class AstmConnection:
    """One analyzer connection speaking ASTM E1381: we are the receiver, and the sender when
    we answer a host query (after the analyzer's EOT)."""

    def __init__(self, instrument: InstrumentConfig, store: MessageStore,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.instrument, self.store, self.reader, self.writer = instrument, store, reader, writer
        self.peer = _peer(writer)
        self.receiver = astm_link.AstmReceiver(max_message_bytes=instrument.max_message_bytes,
                                               frame_timeout=instrument.read_timeout)
        self.replies: list[bytes] = []

    async def _read(self) -> bytes | None:
        try:
            data = await asyncio.wait_for(self.reader.read(4096), timeout=ASTM_TICK_SECONDS)
        except asyncio.TimeoutError:
            return b""
        return data or None

    async def run(self) -> None:
        while True:
            data = await self._read()
            if data is None:
                await self._perform(self.receiver.close())  # closed: keep what was partial
                return
            now = time.monotonic()
            actions = self.receiver.feed(data, now) if data else self.receiver.check_timeout(now)
            await self._perform(actions)

    async def _perform(self, actions: list[tuple[str, bytes]]) -> None:
        for kind, payload in actions:
            if kind == "send":
                self.writer.write(payload)
                await self.writer.drain()
            elif kind == "message":
                await self._on_message(payload)
            elif kind == "discarded":
                if payload.strip():
                    await self.store.store(self.instrument, "astm", self.peer, payload, outcome="rejected",
                                           detail="incomplete transmission (EOT, timeout or errors); not acknowledged")
            elif kind == "eot" and self.replies:
                await self._send_replies()

    async def _on_message(self, payload: bytes) -> None:
        # Stored before anything else happens: the ACK of the frame that completed it follows.
        await self.store.store(self.instrument, "astm", self.peer, payload, message_type="ASTM")
        try:
            parsed = astm.extract(payload, self.instrument.profile)
        except ProtocolError:
            return  # kept raw; the ingestion job records why it is unreadable
        if parsed.kind == "query":
            delimiters, echoes = astm.query_echoes(payload, self.instrument.profile)
            for sample_id in parsed.query_ids or [""]:
                found = await self.store.pending_codes(self.instrument, sample_id) if sample_id else None
                codes, name = found if found else ([], "")
                self.replies.append(astm.query_reply(
                    query_message=parsed, sample_id=sample_id, test_codes=codes, patient_name=name,
                    delimiters=delimiters, instrument_specimen_id=echoes.get(sample_id, ""), now=datetime.now()))

    async def _send_replies(self) -> None:
        sender = astm_link.AstmSender(self.replies, reply_timeout=15.0)
        self.replies = []
        self.writer.write(sender.start())
        await self.writer.drain()
        while True:
            data = await self._read()
            if data is None:
                return
            now = time.monotonic()
            actions = [a for byte in data for a in sender.on_reply(bytes([byte]), now)] if data \
                else sender.check_timeout(now)
            for kind, payload in actions:
                if kind == "send":
                    self.writer.write(payload)
                    await self.writer.drain()
                elif kind in ("done", "failed", "yield"):
                    if kind == "failed":
                        log.warning("host query reply to instrument %s not delivered", self.instrument.id)
                    return


class ListenerSet:
    def __init__(self, desired: Callable[[], Awaitable[dict[int, Handler]]]):
        self.desired = desired  # port -> connection handler
        self.servers: dict[int, asyncio.base_events.Server] = {}

    async def reconcile(self) -> None:
        try:
            wanted = await self.desired()
        except Exception:  # the database is away: keep serving with what we have
            log.exception("cannot read the instrument registry")
            return
        for port in set(self.servers) - set(wanted):
            server = self.servers.pop(port)
            server.close()
            log.info("listener stopped", extra={"endpoint": f"port:{port}"})
        for port in set(wanted) - set(self.servers):
            try:
                self.servers[port] = await asyncio.start_server(wanted[port], host="0.0.0.0", port=port,
                                                                reuse_address=True)
                log.info("listener started", extra={"endpoint": f"port:{port}"})
            except OSError:
                log.exception("cannot bind instrument port %s", port)

    async def close(self) -> None:
        servers = list(self.servers.values())
        for server in servers:
            server.close()
        self.servers.clear()


class InstrumentListeners:
    """The registry's instruments as handlers; configuration is re-read on every reconcile, and
    each new connection takes the instrument's current settings."""

    def __init__(self, store: MessageStore):
        self.store = store
        self.config: dict[int, InstrumentConfig] = {}
        self.connections: set[asyncio.Task] = set()
        self.links: dict[int, list[Hl7Connection]] = {}  # instrument id -> its open HL7 connections
        self.pushing: dict[int, asyncio.Task] = {}  # instrument id -> the task sending its orders

    async def pump_orders(self) -> None:
        """Every second: the due orders of connected instruments that want them, each batch
        sent on the instrument's newest connection by a task of its own (one per instrument)."""
        while True:
            await asyncio.sleep(ORDER_POLL_SECONDS)
            try:
                await self._push_due_orders()
            except Exception:  # the database is away: the rows wait, nothing is lost
                log.warning("could not read the instrument order outbox")

    async def _push_due_orders(self) -> None:
        wanted = {c.id for c in self.config.values() if c.send_orders and c.protocol == "hl7"}
        idle = {iid: links[-1] for iid, links in self.links.items()
                if links and iid in wanted and iid not in self.pushing}
        if not idle:
            return
        batches: dict[int, list[OutboxOrder]] = {}
        for order in await self.store.due_orders(list(idle)):
            batches.setdefault(order.instrument_id, []).append(order)
        for iid, batch in batches.items():
            self.pushing[iid] = asyncio.create_task(self._push(iid, idle[iid], batch))

    async def _push(self, instrument_id: int, link: Hl7Connection, batch: list[OutboxOrder]) -> None:
        try:
            await link.push_orders(batch)
        except Exception:  # a database hiccup while recording: the row is retried when it is due
            log.warning("orders to instrument %s: not all recorded", instrument_id)
        finally:
            self.pushing.pop(instrument_id, None)

    async def stop_pushing(self) -> None:
        tasks = list(self.pushing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def desired(self) -> dict[int, Handler]:
        self.config = {i.port: i for i in await self.store.instruments()}
        return {port: self._handler(port, cfg.protocol) for port, cfg in self.config.items()}

    def _handler(self, port: int, protocol: str) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            instrument = self.config.get(port)
            if instrument is None or instrument.protocol != protocol:
                writer.close()
                return
            task = asyncio.current_task()
            self.connections.add(task)
            connection_cls = Hl7Connection if protocol == "hl7" else AstmConnection
            connection = connection_cls(instrument, self.store, reader, writer)
            links = self.links.setdefault(instrument.id, []) if protocol == "hl7" else []
            links.append(connection)
            await self.store.connection_changed(instrument.id, +1)
            try:
                await connection.run()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the analyzer went away; what was committed is safe, the rest it will resend
            except Exception:  # never let one connection's problem take the listener down
                log.exception("instrument %s connection failed", instrument.id)
            finally:
                links.remove(connection)
                writer.close()
                await self.store.connection_changed(instrument.id, -1)
                self.connections.discard(task)  # last: serve() waits for this handler to finish

        return handle


def ingestion_waker(redis_url: str) -> Callable[[], None]:
    """After a commit, make sure an ingestion job is queued (at most one per half second)."""
    import redis
    from rq import Queue

    queue = Queue("ingest", connection=redis.Redis.from_url(redis_url, socket_timeout=2))
    state = {"last": 0.0}

    def wake() -> None:
        now = time.monotonic()
        if now - state["last"] < 0.5:
            return
        state["last"] = now
        try:
            queue.enqueue("workers.instruments.process_pending_messages", job_timeout=600, result_ttl=60)
        except Exception:  # Redis away: the cron sweep picks the messages up
            log.warning("could not queue instrument ingestion")

    return wake


def database_dsn(app: "Flask") -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://", 1)


async def serve(dsn: str, stop: asyncio.Event, *, wake: Callable[[], None] | None = None) -> None:
    store = MessageStore(dsn, on_committed=wake)
    await store.start()
    try:
        await store.reset_connections()
    except Exception:
        log.exception("cannot reach the database at start")
    instruments = InstrumentListeners(store)
    listeners = ListenerSet(instruments.desired)
    log.info("instrument listener process started")
    pump = None
    while not stop.is_set():
        await listeners.reconcile()
        pump = pump or asyncio.create_task(instruments.pump_orders(), name="order-outbox")
        try:
            await asyncio.wait_for(stop.wait(), timeout=RECONCILE_SECONDS)
        except asyncio.TimeoutError:
            pass
    if pump is not None:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    await instruments.stop_pushing()
    await listeners.close()
    for task in list(instruments.connections):
        task.cancel()
    await asyncio.gather(*instruments.connections, return_exceptions=True)
    await store.close()
    log.info("instrument listener process stopped")


def run(dsn: str, redis_url: str) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(dsn, stop, wake=ingestion_waker(redis_url))

    asyncio.run(main())


def main(app: "Flask") -> None:
    """`flask lis listeners`: hand over to a lean process of its own. The listener needs the
    database URL, Redis and the protocol code, not the web app, so it replaces this process
    (exec) with `python -m workers.listeners` and keeps its memory small (see PERFORMANCE)."""
    from config import PROJECT_ROOT

    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, LIS_LISTENER_DSN=database_dsn(app), LIS_LISTENER_REDIS=app.config["REDIS_URL"],
               LIS_LOG_LEVEL=str(app.config.get("LIS_LOG_LEVEL", "INFO")),
               LIS_LOG_JSON="1" if app.config.get("LIS_LOG_JSON", True) else "0")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "workers.listeners"], env)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LIS_LOG_JSON", "1") == "1":
        from app.logformat import JsonFormatter
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=os.environ.get("LIS_LOG_LEVEL", "INFO"), handlers=[handler])


if __name__ == "__main__":
    _configure_logging()
    run(os.environ["LIS_LISTENER_DSN"], os.environ["LIS_LISTENER_REDIS"])
