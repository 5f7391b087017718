"""Kill the listener (SIGKILL) at random points while an analyzer sends messages and resends
whatever was not ACKed, as analyzers do; then count.

    .venv/bin/python -m bench.listener_kill [--messages 1000] [--kills 25]

Passes when every ACKed message is stored exactly once and every result is attached once.
tests/listeners/test_kill.py runs a smaller round of the same code on every CI run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass

import psycopg

from bench.listener_env import ListenerWorld, oru, prepare, start_listener, stop, wait_for_port

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


@dataclass
class KillReport:
    messages: int
    acked: int
    kills: int
    resends: int
    stored_rows: int
    distinct_control_ids: int
    duplicates_absorbed: int
    results_attached: int
    order_tests_with_two_results: int
    ok: bool


class Analyzer:
    """Sends one message at a time and waits for its ACK; on any failure reconnects and
    sends the same message again."""

    def __init__(self, port: int):
        self.port, self.sock, self.resends = port, None, 0

    def _connect(self) -> socket.socket:
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                time.sleep(0.02)

    def deliver(self, control_id: str, payload: bytes) -> None:
        attempts = 0
        while True:
            attempts += 1
            if self.sock is None:
                self.sock = self._connect()
            try:
                self.sock.sendall(VT + payload + FS + CR)
                buffer = b""
                while FS + CR not in buffer:
                    chunk = self.sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    buffer += chunk
                ack = buffer.split(FS + CR, 1)[0]
                if f"|AA|{control_id}".encode() not in ack:
                    raise AssertionError(f"unexpected ACK for {control_id}: {ack!r}")
                if attempts > 1:
                    self.resends += attempts - 1
                return
            except (OSError, ConnectionError):
                self.sock.close()
                self.sock = None


class Killer:
    """Keeps the listener running, and SIGKILLs it when told to (a few ms later, at random)."""

    def __init__(self, world: ListenerWorld):
        self.world, self.kills = world, 0
        self.threads: list[threading.Thread] = []
        self.proc = start_listener(world)
        wait_for_port(world.port)

    def kill_soon(self) -> None:
        def run() -> None:
            time.sleep(random.uniform(0, 0.004))
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            self.proc = start_listener(self.world)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        for thread in self.threads:
            thread.join()
        stop(self.proc)


def run(database_url: str, redis_url: str, *, messages: int, kills: int, seed: int = 7) -> KillReport:
    random.seed(seed)
    world = prepare(database_url, redis_url, orders=(messages + 4) // 5)
    killer = Killer(world)
    analyzer = Analyzer(world.port)
    kill_points = set(random.sample(range(1, max(2, messages - 10)), min(kills, max(1, messages - 11))))
    sent = []
    try:
        for n in range(messages):
            barcode, code = world.targets[n]
            control_id = f"KILL{n:06d}"
            if n in kill_points:
                killer.kill_soon()
            analyzer.deliver(control_id, oru(control_id, barcode, [(code, str(50 + n % 50))]))
            sent.append(control_id)
            time.sleep(0.002)
    finally:
        killer.close()
    _ingest(world)
    return _count(world, database_url, sent, killer.kills, analyzer.resends)


def _ingest(world: ListenerWorld) -> None:
    from app import create_app
    from app.extensions import db
    from app.services import ingestion
    from config import Config

    app = create_app(Config.from_env(world.env))
    with app.app_context():
        ingestion.process_pending(limit=1_000_000)
        db.session.remove()
        db.engine.dispose()


def _count(world: ListenerWorld, dsn: str, sent: list[str], kills: int, resends: int) -> KillReport:
    with psycopg.connect(dsn) as conn:
        rows, distinct, absorbed = conn.execute(
            "SELECT count(*), count(DISTINCT control_id), coalesce(sum(resent), 0) FROM instrument_message "
            "WHERE instrument_id = %s AND control_id LIKE 'KILL%%'", (world.instrument_id,)).fetchone()
        attached = conn.execute(
            "SELECT count(*) FROM result r JOIN instrument_message m ON m.id = r.message_id "
            "WHERE m.instrument_id = %s AND r.source = 'instrument'", (world.instrument_id,)).fetchone()[0]
        doubled = conn.execute(
            "SELECT count(*) FROM (SELECT order_test_id FROM result WHERE source = 'instrument' "
            "GROUP BY order_test_id HAVING count(*) > 1) AS d").fetchone()[0]
    ok = rows == distinct == len(sent) and attached == len(sent) and doubled == 0
    return KillReport(messages=len(sent), acked=len(sent), kills=kills, resends=resends, stored_rows=rows,
                      distinct_control_ids=distinct, duplicates_absorbed=absorbed, results_attached=attached,
                      order_tests_with_two_results=doubled, ok=ok)


def main() -> None:
    from bench.database import fresh_database, server_urls, with_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=25)
    args = parser.parse_args()
    pg, redis_url = server_urls()
    with fresh_database(pg, name="lis_bench_kill") as url:
        report = run(url, redis_url, messages=args.messages, kills=args.kills)
    print(json.dumps(asdict(report), indent=2))
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
