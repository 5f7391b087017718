"""The instrument listener process, for real: its own database with committed data (the
listener has its own connections, so per-test rollback cannot apply), the asyncio servers
running in a background thread, and analyzers played by sockets."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import _with_redis_db, make_config, recreate_database

LISTENER_DB_NAME = os.environ.get("LIS_LISTENER_DATABASE", "lis_listeners")
LISTENER_REDIS_DB = int(os.environ.get("LIS_LISTENER_REDIS_DB", "13"))

# name -> (protocol, sample id field, test code field, profile, codes)
INSTRUMENTS: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any]]] = {
    "generic-hl7": ("hl7", "OBR-2", "OBX-3.1", {"max_message_bytes": 65536, "read_timeout_seconds": 2},
                    {"GLU": "GLUF", "CREA": "CREA", "K": "K", "NA": "NA", "HGB": {"test": "HB", "factor": 0.1},
                     "CHOL": "CHOL", "HDL": "HDL", "TG": "TG"}),
    "mindray-bc": ("hl7", "OBR-3", "OBX-3.1", {},
                   {"6690-2": "WBC", "789-8": "RBC", "718-7": {"test": "HB", "factor": 0.1}, "4544-3": "HCT",
                    "787-2": "MCV", "777-3": "PLT", "770-8": "NEUTP", "736-9": "LYMPP"}),
    # the same analyzer configured as the demo lab does it (app/services/seed.py): IS rows skipped
    "mindray-bc-demo": ("hl7", "OBR-3", "OBX-3.1", {"skip_value_types": ["ED", "IS"]},
                        {"6690-2": "WBC", "718-7": {"test": "HB", "factor": 0.1}, "777-3": "PLT"}),
    "mindray-bs": ("hl7", "OBR-2", "OBX-3.1", {"qc_field": "MSH-16", "qc_values": ["1", "2"]},
                   {"1": "GLUF", "3": "CREA", "9": "ALT"}),
    "roche-pure": ("hl7", "SPM-2", "OBX-3.1", {}, {"8716": "GLUF", "8717": "CREA", "8719": "TSH"}),
    "sysmex-xn": ("astm", "O-4.3", "R-3.5", {"read_timeout_seconds": 2},
                  {"WBC": "WBC", "RBC": "RBC", "HGB": "HB", "HCT": "HCT", "PLT": "PLT", "MCV": "MCV"}),
    "beckman-dxh": ("astm", "O-3", "R-3.4", {"result_fields": {"range": 7, "flag": 8, "status": 10, "completed": 14}},
                    {"WBC": "WBC", "HGB": "HB", "PLT": "PLT"}),
    "roche-e411": ("astm", "O-3", "R-3.4", {"query_id_field": "Q-3.3"}, {"10": "TSH", "20": "FT4"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """The listener's world: an app on the listener database, one organization, instruments."""

    def __init__(self, app: Any, org_id: int, instruments: dict[str, Any]):
        self.app, self.org_id, self.instruments = app, org_id, instruments

    def port(self, name: str) -> int:
        return self.instruments[name]["port"]

    def instrument_id(self, name: str) -> int:
        return self.instruments[name]["id"]

    def run(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Call fn inside the app with the organization set, commit, and return its result."""
        from app import audit, security
        from app.extensions import db

        with self.app.app_context():
            security.use_tenant(db.session, self.org_id)
            with audit.acting_as(audit.AuditContext(actor_label="test", org_id=self.org_id)):
                try:
                    value = fn(*args, **kwargs)
                    db.session.commit()
                    return value
                finally:
                    db.session.remove()

    def order(self, codes: list[str], *, receive: bool = True, sex: str = "male", dob: str = "1975-03-01") -> dict:
        """A committed order; returns its accession and {specimen container: barcode}."""
        def make() -> dict:
            from app.extensions import db
            from app.models import Branch
            from app.services import orders, patients, samples

            patient = patients.register({"name": "Listener Test", "sex": sex, "dob": dob, "mobile": "9876501234"},
                                        branch_id=None, created_by_id=None, confirm_new=True)
            branch = db.session.query(Branch).filter_by(code="MAIN").one()
            order, _ = orders.create_order(patient, branch, orders.OrderRequest(codes=codes), created_by_id=None,
                                           discount_limit_percent=100)
            if receive:
                for sample in order.samples:
                    samples.receive(sample, user_id=None)
            return {"accession": order.accession, "order_id": order.id,
                    "tubes": {s.container: s.barcode for s in order.samples},
                    "barcodes": [s.barcode for s in order.samples]}
        return self.run(make)

    def process(self) -> int:
        from app.services import ingestion

        with self.app.app_context():
            try:
                return ingestion.process_pending(limit=100_000)
            finally:
                from app.extensions import db
                db.session.remove()

    def sql(self, query: str, *params: Any) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    @property
    def dsn(self) -> str:
        from workers.listeners import database_dsn
        return database_dsn(self.app)


def make_lab(app: Any, code: str, instruments: dict[str, dict[str, Any]], *, display_name: str) -> Lab:
    """A committed organization with a main branch, the standard catalogue and these
    instruments ({name: InstrumentData fields but name and port}), each on a free port."""
    from app import audit, security
    from app.extensions import db
    from app.models import Branch, Organization
    from app.services import catalogue_seed
    from app.services import instruments as registry

    with app.app_context():
        org = Organization(code=code, legal_name=f"{display_name} Pvt Ltd", display_name=display_name,
                           state_code="29")
        db.session.add(org)
        db.session.flush()
        security.use_tenant(db.session, org.id)
        db.session.add(Branch(org_id=org.id, code="MAIN", name="Main lab", state_code="29", is_main_lab=True))
        catalogue_seed.load_standard_catalogue(org.id)
        made = {}
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            for name, fields in instruments.items():
                instrument = registry.create(registry.InstrumentData(name=name, port=free_port(), **fields))
                made[name] = {"id": instrument.id, "port": instrument.port}
        db.session.commit()
        org_id = org.id
        db.session.remove()
    return Lab(app, org_id, made)


@pytest.fixture(scope="session")
def listener_lab(base_urls) -> Lab:  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from app import create_app

    url = recreate_database(base_urls["DATABASE_URL"], LISTENER_DB_NAME)
    app = create_app(make_config(url, _with_redis_db(base_urls["REDIS_URL"], LISTENER_REDIS_DB)))
    with app.app_context():
        upgrade()
    return make_lab(app, "listen", {
        name: {"protocol": protocol, "sample_id_field": sample_field, "test_code_field": code_field,
               "profile": profile, "codes": codes}
        for name, (protocol, sample_field, code_field, profile, codes) in INSTRUMENTS.items()},
        display_name="Listener Lab")


@pytest.fixture(scope="session")
def listener(listener_lab) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    """The listener process's servers, running in a thread for the whole session."""
    from workers.listeners import serve

    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None
    ready = threading.Event()

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        ready.set()
        await serve(listener_lab.dsn, stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    deadline = time.monotonic() + 15
    for spec in listener_lab.instruments.values():
        while True:
            try:
                socket.create_connection(("127.0.0.1", spec["port"]), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("listener did not bind its ports")
                time.sleep(0.1)
    yield listener_lab
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="session", autouse=True)
def listener_errors() -> Iterator[list[logging.LogRecord]]:
    """Every ERROR the listener process logs ("instrument N connection failed", a failed commit...)
    during the session: bad input must never get there."""
    handler = _ErrorRecords()
    logger = logging.getLogger("lis.listeners")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
