"""End-to-end MLLP ingestion: ORU^R01 messages with 20 OBX each from 10 concurrent analyzer
connections into the real listener process (durable ACK: committed before ACKed), next to two
baselines from the same run:

* a bare asyncio MLLP server that ACKs without storing anything (the socket + framing floor);
* parse + insert without a socket (one message per transaction, the storage floor).

    .venv/bin/python -m bench.mllp_ingest [--seconds 15] [--connections 10]

Prints messages/s and ACK latency p50/p95 for each, the ratios, and the listener's RSS.
Targets (issue 4): >= 300 messages/s, ACK p95 <= 20 ms, listener RSS <= 100 MB.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import subprocess
import sys
import textwrap
import time

import psutil
import psycopg

from bench.listener_env import free_port, prepare, start_listener, stop, wait_for_port

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
OBX_CODES = ["GLU", "UREA", "CREA", "URIC", "NA", "K", "CL", "CA", "PHOS", "ALB", "TP", "TBIL", "DBIL", "ALT",
             "AST", "ALP", "GGT", "CHOL", "TG", "HDL"]

BARE_SERVER = textwrap.dedent('''
    import asyncio, sys
    ACK = b"\\x0bMSH|^~\\\\&|LIS|LAB|BENCH|LAB|20261122||ACK^R01|1|P|2.3.1\\rMSA|AA|X\\r\\x1c\\r"
    async def handle(reader, writer):
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buffer += data
            while b"\\x1c\\r" in buffer:
                _, buffer = buffer.split(b"\\x1c\\r", 1)
                writer.write(ACK)
            await writer.drain()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        async with server:
            await server.serve_forever()
    asyncio.run(main())
''')


def message(n: int, barcode: str) -> bytes:
    control_id = f"B{n:09d}"
    lines = [f"MSH|^~\\&|BENCH|LAB|LIS|LAB|20261122101500||ORU^R01|{control_id}|P|2.3.1",
             "PID|1||||", f"OBR|1|{barcode}||CHEM^Chemistry|||20261122100000"]
    lines += [f"OBX|{i}|NM|{code}^{code}||{40 + (n + i) % 60}|mg/dL|10-100|N|||F"
              for i, code in enumerate(OBX_CODES, start=1)]
    return "\r".join(lines).encode() + b"\r"


async def _client(port: int, payloads, deadline: float, latencies: list[float]) -> None:  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buffer = b""
    for payload in payloads:
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        writer.write(VT + payload + FS + CR)
        await writer.drain()
        while FS + CR not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("listener closed the connection")
            buffer += chunk
        _, buffer = buffer.split(FS + CR, 1)
        latencies.append(time.perf_counter() - started)
    writer.close()


def _payloads(first: int, count: int, targets: list[str]):  # type: ignore[no-untyped-def]
    """Distinct messages (distinct control ids, so none is deduplicated as a resend)."""
    return (message(first + i, targets[(first + i) % len(targets)]) for i in range(count))


def drive(port: int, *, connections: int, seconds: float, targets: list[str], offset: int) -> dict:
    latencies: list[float] = []

    async def main() -> float:
        deadline = time.monotonic() + seconds
        per = 100_000
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, _payloads(offset + c * per, per, targets), deadline, latencies)
                               for c in range(connections)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    return _summary(latencies, elapsed)


def _summary(latencies: list[float], elapsed: float) -> dict:
    ordered = sorted(latencies)
    return {"messages": len(ordered), "messages_per_s": round(len(ordered) / elapsed, 1),
            "ack_p50_ms": round(statistics.median(ordered) * 1000, 2),
            "ack_p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2)}


def parse_and_insert(dsn: str, instrument_id: int, org_id: int, *, seconds: float, targets: list[str]) -> dict:
    """The storage floor: parse each message and commit it, one transaction per message."""
    from app.integrations.instruments import hl7

    latencies = []
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            payload = message(900_000_000 + n, targets[n % len(targets)])
            parsed = hl7.parse_message(payload)
            conn.execute(
                "INSERT INTO instrument_message (org_id, instrument_id, protocol, peer, received_at, raw, sha256, "
                "resent, control_id, message_type, outcome, detail, results_attached, results_unmatched) "
                "VALUES (%s, %s, 'hl7', 'bench', now(), %s, %s, 0, %s, %s, 'other', '', 0, 0)",
                (org_id, instrument_id, payload, hashlib.sha256(payload).digest(), parsed.control_id,
                 parsed.message_type))
            conn.commit()
            latencies.append(time.perf_counter() - t0)
            n += 1
        elapsed = time.perf_counter() - started
    return _summary(latencies, elapsed)


def main() -> None:
    from bench.database import fresh_database, server_urls

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    pg, redis_url = server_urls()
    with fresh_database(pg, name="lis_bench_mllp") as url:
        world = prepare(url, redis_url, orders=40)
        barcodes = sorted({barcode for barcode, _ in world.targets})
        org_id = psycopg.connect(url).execute("SELECT org_id FROM instrument WHERE id = %s",
                                              (world.instrument_id,)).fetchone()[0]

        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
        try:
            wait_for_port(bare_port)
            baseline_socket = drive(bare_port, connections=args.connections, seconds=args.seconds,
                                    targets=barcodes, offset=0)
        finally:
            bare.kill()
            bare.wait()

        proc = start_listener(world)
        try:
            wait_for_port(world.port)
            drive(world.port, connections=args.connections, seconds=2, targets=barcodes, offset=100_000_000)  # warm-up
            lis = drive(world.port, connections=args.connections, seconds=args.seconds, targets=barcodes,
                        offset=200_000_000)
            rss_mb = round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1)
        finally:
            stop(proc)
        stored = psycopg.connect(url).execute(
            "SELECT count(*) FROM instrument_message WHERE control_id LIKE 'B2%%'").fetchone()[0]
        baseline_store = parse_and_insert(url, world.instrument_id, org_id, seconds=args.seconds, targets=barcodes)

    report = {
        "lis_listener_durable_ack": lis,
        "baseline_bare_mllp_ack_no_storage": baseline_socket,
        "baseline_parse_insert_no_socket": baseline_store,
        "ratio_vs_bare_socket": round(lis["messages_per_s"] / baseline_socket["messages_per_s"], 2),
        "ratio_vs_parse_insert": round(lis["messages_per_s"] / baseline_store["messages_per_s"], 2),
        "messages_acked_and_stored": {"acked": lis["messages"], "stored": stored},
        "listener_rss_mb": rss_mb,
        "targets": {"messages_per_s": 300, "ack_p95_ms": 20, "rss_mb": 100},
        "met": lis["messages_per_s"] >= 300 and lis["ack_p95_ms"] <= 20 and rss_mb <= 100,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
