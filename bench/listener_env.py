"""A listener process of its own, on a database of its own, for the kill test and the
ingestion benchmark: the demo lab with one chemistry analyzer on a free port (the demo's
other analyzers are switched off so nothing else binds), and orders whose tubes are received.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CODES = {"GLU": "GLUF", "UREA": "UREA", "CREA": "CREA", "URIC": "URIC", "NA": "NA"}
ORDER_TESTS = ["GLUF", "UREA", "CREA", "URIC", "NA"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ListenerWorld:
    env: dict[str, str]
    port: int
    instrument_id: int
    # (barcode, instrument code) for every ordered test, in order
    targets: list[tuple[str, str]] = field(default_factory=list)


def prepare(database_url: str, redis_url: str, *, orders: int, codes: dict | None = None) -> ListenerWorld:
    """Migrate, seed the demo lab, add the analyzer, create `orders` orders with received tubes."""
    from flask_migrate import upgrade

    from app import audit, create_app, security
    from app.extensions import db
    from app.models import Branch, Instrument, Organization
    from app.services import instruments, orders as order_service, patients, samples
    from app.services.seed import seed_demo
    from config import Config

    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, LIS_LOG_LEVEL="WARNING",
               SECRET_KEY="bench-" + "k" * 40)
    app = create_app(Config.from_env(env))
    reverse = {test: code for code, test in (codes or CODES).items() if isinstance(test, str)}
    with app.app_context():
        upgrade()
        seed_demo(password="bench passphrase 2026")
        org = db.session.query(Organization).filter_by(code="demo").one()
        security.use_tenant(db.session, org.id)
        with audit.acting_as(audit.AuditContext(actor_label="system:bench", org_id=org.id)):
            for other in db.session.query(Instrument).all():
                other.active = False
            port = free_port()
            instrument = instruments.create(instruments.InstrumentData(
                name="Bench chemistry analyzer", protocol="hl7", port=port, sample_id_field="OBR-2",
                test_code_field="OBX-3.1", codes=codes or CODES))
            branch = db.session.query(Branch).filter_by(code="MAIN").one()
            targets: list[tuple[str, str]] = []
            for n in range(orders):
                patient = patients.register({"name": f"Bench Patient {n}", "sex": "female" if n % 2 else "male",
                                             "dob": "1970-01-01", "mobile": f"98{n:08d}"},
                                            branch_id=None, created_by_id=None, confirm_new=True)
                order, _ = order_service.create_order(patient, branch, order_service.OrderRequest(
                    codes=list(ORDER_TESTS)), created_by_id=None, discount_limit_percent=100)
                for sample in order.samples:
                    samples.receive(sample, user_id=None)
                for order_test in order.tests:
                    targets.append((order_test.sample.barcode, reverse[order_test.test.code]))
        db.session.commit()
        instrument_id = instrument.id
        db.session.remove()
        db.engine.dispose()
    return ListenerWorld(env=env, port=port, instrument_id=instrument_id, targets=targets)


def start_listener(world: ListenerWorld) -> subprocess.Popen:
    """`flask --app wsgi lis listeners`, exactly as the supervisor runs it."""
    flask = str(Path(sys.executable).with_name("flask"))
    return subprocess.Popen([flask, "--app", "wsgi", "lis", "listeners"], cwd=PROJECT, env=world.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"listener did not bind port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def oru(control_id: str, barcode: str, results: list[tuple[str, str]]) -> bytes:
    """An ORU^R01 as a generic chemistry analyzer sends it (OBR-2 = tube barcode)."""
    lines = [f"MSH|^~\\&|BENCH|LAB|LIS|LAB|20261122101500||ORU^R01|{control_id}|P|2.3.1",
             "PID|1||||", f"OBR|1|{barcode}||CHEM^Chemistry|||20261122100000"]
    lines += [f"OBX|{i}|NM|{code}^{code}||{value}|mg/dL|||||F" for i, (code, value) in enumerate(results, start=1)]
    return "\r".join(lines).encode() + b"\r"
