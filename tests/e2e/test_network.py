"""What goes over the wire: page weight on a slow line, and HTTP caching of static files."""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from config import PROJECT_ROOT
from tests.e2e.conftest import DEMO_USERS, KNOWN_PASSWORD

pytestmark = pytest.mark.e2e

# A slow mobile line at a collection centre: 400 ms round trip, 400 kbit/s each way.
SLOW_LINE = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 400 * 1000 / 8,
    "uploadThroughput": 400 * 1000 / 8,
}
LOGIN_PAGE_BUDGET_BYTES = 60_000
STATIC_FILES = {"css/app.css", "js/app.js", "vendor/htmx-2.0.11.min.js"}


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    requests: dict[str, dict] = field(default_factory=dict)  # CDP requestId -> what we saw

    @property
    def bytes(self) -> int:
        return sum(r["bytes"] for r in self.requests.values())

    def network_paths(self) -> list[str]:
        """Paths fetched over the network (not from the browser cache). The browser's own
        favicon request lands in whichever phase it happens to fall; it is left out here
        (its bytes still count)."""
        paths = [urlsplit(r["url"]).path for r in self.requests.values() if not r["cached"]]
        return [p for p in paths if p != "/favicon.ico"]


class NetworkMeter:
    """Counts bytes on the wire per phase from the DevTools Network domain: the sum of
    `loadingFinished.encodedDataLength` (headers and compressed body as received)."""

    def __init__(self, cdp) -> None:  # type: ignore[no-untyped-def]
        self.phase: Phase | None = None
        self.phases: list[Phase] = []
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)

    def _entry(self, event: dict) -> dict | None:
        return self.phase.requests.get(event["requestId"]) if self.phase else None

    def _sent(self, event: dict) -> None:
        if self.phase is None or event["request"]["url"].startswith("data:"):
            return
        entry = self.phase.requests.setdefault(
            event["requestId"], {"url": event["request"]["url"], "bytes": 0, "cached": False, "done": False,
                                 "status": None},
        )
        redirect = event.get("redirectResponse")
        if redirect:  # the redirect's bytes are reported here, not in loadingFinished
            entry["bytes"] += int(redirect.get("encodedDataLength", 0))
        entry["url"] = event["request"]["url"]

    def _from_cache(self, event: dict) -> None:
        entry = self._entry(event)
        if entry:
            entry["cached"] = True

    def _response(self, event: dict) -> None:
        entry = self._entry(event)
        if entry:
            entry["status"] = event["response"]["status"]
            if event["response"].get("fromDiskCache"):
                entry["cached"] = True

    def _finished(self, event: dict) -> None:
        entry = self._entry(event)
        if entry:
            entry["bytes"] += int(event["encodedDataLength"])
            entry["done"] = True

    def _failed(self, event: dict) -> None:
        entry = self._entry(event)
        if entry:
            entry["done"] = True
            entry["failed"] = event.get("errorText")

    def measure(self, page, name: str, action) -> Phase:  # type: ignore[no-untyped-def]
        """Run action() and wait until every request it started has finished."""
        self.phase = phase = Phase(name)
        started = time.perf_counter()
        action()
        deadline = time.monotonic() + 15
        while any(not r["done"] for r in phase.requests.values()) and time.monotonic() < deadline:
            page.wait_for_timeout(10)  # lets Playwright deliver the pending CDP events
        phase.seconds = time.perf_counter() - started
        assert all(r["done"] for r in phase.requests.values()), f"{name}: requests never finished"
        self.phase = None
        self.phases.append(phase)
        return phase

    def report(self) -> str:
        lines = [f"Throttled line (latency {SLOW_LINE['latency']} ms, 400 kbit/s down and up):"]
        for phase in self.phases:
            lines.append(f"  {phase.name}: {phase.bytes:,} bytes in {phase.seconds:.2f} s, "
                         f"{len(phase.requests)} requests")
            for r in phase.requests.values():
                where = "cache" if r["cached"] else "network"
                lines.append(f"    {r['status']} {urlsplit(r['url']).path:40} {r['bytes']:>7,} B ({where})")
        total = sum(p.bytes for p in self.phases)
        seconds = sum(p.seconds for p in self.phases)
        lines.append(f"  total: {total:,} bytes in {seconds:.2f} s")
        return "\n".join(lines)


def test_reception_on_a_throttled_line(context, page, role_pages, measurements):
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW_LINE)
    meter = NetworkMeter(cdp)
    home = role_pages["reception"]["home"]

    def log_in() -> None:
        page.get_by_label("Username").fill(DEMO_USERS["reception"])
        page.get_by_label("Password").fill(KNOWN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(re.escape(home) + "$"))
        page.locator("nav[aria-label=Main]").wait_for()

    login_page = meter.measure(page, "login page, first load (empty cache)", lambda: page.goto("/login"))
    logged_in = meter.measure(page, "log in (POST, then dashboard via htmx)", log_in)
    dashboard = meter.measure(page, "dashboard, full load (warm cache)", lambda: page.goto(home))
    print("\n" + meter.report())
    measurements.extend(meter.report().splitlines())

    expect(page.get_by_role("heading", name="Reception desk")).to_be_visible()
    assert sorted(login_page.network_paths()) == sorted(["/login"] + [f"/static/{f}" for f in STATIC_FILES])
    assert 0 < login_page.bytes < LOGIN_PAGE_BUDGET_BYTES, meter.report()
    # The throttle really applied: at least a document and then its scripts, one round trip each.
    assert login_page.seconds >= 2 * SLOW_LINE["latency"] / 1000, meter.report()
    assert logged_in.network_paths() == ["/login", home]
    # Fingerprinted static files are not fetched again: only the page itself goes over the line.
    assert dashboard.network_paths() == [home], meter.report()
    assert dashboard.bytes < login_page.bytes


def test_static_files_are_fingerprinted_and_immutable_pages_are_not_stored(page):
    responses = []
    page.on("response", lambda response: responses.append(response))

    document = page.goto("/login")

    assert document is not None and document.status == 200
    assert document.headers["cache-control"] == "no-store"
    assert "HX-Request" in document.headers.get("vary", "")
    statics = {urlsplit(r.url).path.removeprefix("/static/"): r for r in responses if "/static/" in r.url}
    assert set(statics) == STATIC_FILES
    for name, response in statics.items():
        assert response.status == 200, name
        version = parse_qs(urlsplit(response.url).query).get("v")
        digest = hashlib.sha256((PROJECT_ROOT / "static" / name).read_bytes()).hexdigest()[:12]
        assert version == [digest], f"{name}: ?v= is not the content digest"
        cache_control = response.headers.get("cache-control", "")
        assert "immutable" in cache_control and "max-age=31536000" in cache_control, (name, cache_control)

    # Without the fingerprint a file may change under the same URL: never "immutable".
    plain = page.request.get("/static/js/app.js")
    assert plain.status == 200
    assert "immutable" not in plain.headers.get("cache-control", "")
