"""End-to-end fixtures: the real app served over HTTP from a background thread, on its own
database (`lis_e2e`, seeded with the demo lab) and Redis db, driven by headless Chromium
(the Debian package) through Playwright's sync API.

One browser per session, a fresh browser context (cookies, cache) per test."""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.conftest import _with_redis_db, make_config, recreate_database

# Two checkouts running the suite against one PostgreSQL server can pick different names.
E2E_DB_NAME = os.environ.get("LIS_E2E_DATABASE", "lis_e2e")
E2E_REDIS_DB = 14
# The password every demo user gets in the e2e database (at least 10 characters).
KNOWN_PASSWORD = "e2e known passphrase 2024"
DEMO_USERS = {
    "admin": "demo.admin",
    "reception": "demo.reception",
    "technician": "demo.technician",
    "pathologist": "demo.pathologist",
    "billing": "demo.billing",
}
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # No internet here: no background requests to Google services, updates or sync.
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]
DEFAULT_TIMEOUT_MS = 10_000
MEASUREMENTS = pytest.StashKey[list]()


def find_chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session", autouse=True)
def chromium_executable() -> str:
    """Every e2e test needs Chromium: missing, it fails the run on CI and skips elsewhere."""
    path = find_chromium()
    if path is None:
        message = "Chromium not installed: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so the browser tests may not be skipped)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def measurements(request) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Lines a test wants in the run's summary (figures such as bytes and seconds)."""
    return request.config.stash.setdefault(MEASUREMENTS, [])


def pytest_terminal_summary(terminalreporter, config) -> None:  # type: ignore[no-untyped-def]
    lines = config.stash.get(MEASUREMENTS, [])
    if lines:
        terminalreporter.write_sep("-", "e2e measurements")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def live_app(base_urls):  # type: ignore[no-untyped-def]
    """The app on a fresh `lis_e2e` database: migrated, demo lab seeded with KNOWN_PASSWORD."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.services.seed import seed_demo

    database_url = recreate_database(base_urls["DATABASE_URL"], E2E_DB_NAME)
    redis_url = _with_redis_db(base_urls["REDIS_URL"], E2E_REDIS_DB)
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()  # rate-limit counters of an earlier run
    client.close()

    application = create_app(make_config(database_url, redis_url))
    with application.app_context():
        upgrade()
        created = seed_demo(password=KNOWN_PASSWORD)
        assert created is not None and set(created) == set(DEMO_USERS.values()), created
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def live_server(live_app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The base URL (http://127.0.0.1:<port>) of the app served by werkzeug in a thread."""
    from werkzeug.serving import make_server

    from app.services import documents

    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    documents.warm_up()  # as gunicorn's master does before forking in production (app/gunicorn_conf.py)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance, chromium_executable) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    browser = playwright_instance.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser, live_server) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    """A fresh context per test: no cookies, no cache, nothing shared with other tests."""
    ctx = browser.new_context(base_url=live_server)
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    yield context.new_page()


@pytest.fixture(scope="session")
def role_pages(live_app) -> dict[str, dict]:  # type: ignore[type-arg]
    """For each role: its home path and its menu as [(label, path)], from app.navigation."""
    from flask import url_for

    from app.models import Role
    from app.navigation import HOME_ENDPOINT, MENUS

    pages = {}
    with live_app.test_request_context():
        for role_name in DEMO_USERS:
            role = Role(role_name)
            pages[role_name] = {
                "home": url_for(HOME_ENDPOINT[role]),
                "menu": [(label, url_for(endpoint)) for endpoint, label in MENUS[role]],
            }
    return pages


@pytest.fixture
def login(role_pages):  # type: ignore[no-untyped-def]
    """login(page, role): log in through the real form and wait for the role's home page."""
    import re

    def _login(page, role: str, password: str = KNOWN_PASSWORD) -> None:  # type: ignore[no-untyped-def]
        page.goto("/login")
        page.get_by_label("Username").fill(DEMO_USERS[role])
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(re.escape(role_pages[role]["home"]) + r"$"))
        page.locator("nav[aria-label=Main]").wait_for()

    return _login


@pytest.fixture
def demo_lab(live_app):  # type: ignore[no-untyped-def]
    """Run `fn(org, branch)` inside the e2e app as the demo lab (tenant and audit actor set),
    commit, and return what it returns: how the browser tests set up orders and results."""
    def run(fn):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from app import audit, security
        from app.extensions import db
        from app.models import Organization
        from app.services.seed import DEMO_ORG_CODE

        with live_app.app_context():
            org = db.session.execute(select(Organization).where(Organization.code == DEMO_ORG_CODE)).scalar_one()
            security.use_tenant(db.session, org.id)
            try:
                with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
                    value = fn(org, org.branches[0])
                    db.session.commit()
                    return value
            finally:
                db.session.remove()

    return run


def register_and_order(branch, patient: dict, codes: list[str], *, priority: str = "routine"):  # type: ignore[no-untyped-def]
    """A demo patient and an order through the reception services."""
    from app.services import orders, patients

    registered = patients.register({"pin_code": "560038", "state_code": "29", **patient}, branch_id=branch.id,
                                   created_by_id=None, confirm_new=True)
    order, _ = orders.create_order(registered, branch, orders.OrderRequest(codes=codes, priority=priority),
                                   created_by_id=None, discount_limit_percent=0)
    return order
