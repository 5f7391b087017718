"""The reception desk end to end, as a receptionist does it: find the patient by mobile, register
them, order three tests, take a UPI payment and print the tube labels.

The first test runs the whole flow on a throttled line (the slow mobile line of a collection
centre) and reports the time and the bytes of every step, page and htmx swap; it holds the
page-weight budgets: a page's first load at most 60 KB transferred (HTML+CSS+JS+fonts), an htmx
swap at most 5 KB, no web fonts or images (KB = 1000 bytes, as DevTools counts them: headers
and compressed body). After “Register” and “Create order and bill” the app answers 204 with
HX-Location and htmx fetches the whole next page: that fetch counts as the page's load, not
as a swap. The other tests check, at full speed, the details a
new receptionist relies on without help: search by a mobile typed another way, the duplicate
warning, a wrong mobile flagged in place, a double-click creating one order, an overpayment
refused with a message."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEFAULT_TIMEOUT_MS, DEMO_USERS, KNOWN_PASSWORD

pytestmark = pytest.mark.e2e

# The line: 400 kbit/s down, 400 kbit/s up, 400 ms round trip (DevTools throttling).
SLOW_LINE = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 400 * 1000 / 8,
    "uploadThroughput": 400 * 1000 / 8,
}
PAGE_BUDGET_BYTES = 60 * 1000      # first load of a page: HTML + CSS + JS + fonts, as transferred
SWAP_BUDGET_BYTES = 5 * 1000       # one htmx answer, headers included
FLOW_TARGET_SECONDS = 10           # the target for the whole flow on the slow line
FLOW_LIMIT_SECONDS = 20            # what the test enforces (a loaded CI machine is slower)
SUBRESOURCE_TYPES = {"Stylesheet", "Script", "Font", "Image", "Media", "Manifest", "Other"}

PATIENT_URL = re.compile(r"/reception/patients/\d+$")
ORDER_URL = re.compile(r"/reception/orders/\d+$")
DUE_ZERO = "₹0.00"


def path_of(url: str) -> str:
    return urlsplit(url).path


# --- measuring -------------------------------------------------------------------------------

@dataclass
class Request:
    """One request as DevTools saw it. bytes: `encodedDataLength`, i.e. headers and the
    (compressed) body as received, redirects included."""

    url: str
    method: str
    type: str
    hx: bool                      # sent by htmx (HX-Request header)
    page: bool = False            # a page: a document navigation, or htmx following HX-Location
    sent: int = 0                 # request body bytes (form posts)
    bytes: int = 0
    status: int | None = None
    mime: str = ""
    cached: bool = False
    done: bool = False
    hx_location: str | None = None
    wait_ms: float = 0.0          # request sent → response headers in (latency + server time)

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        query = unquote(parts.query)
        if parts.path.startswith("/static/"):
            query = ""  # the fingerprint
        return f"{self.method} {parts.path}" + (f"?{query}" if query else "")


@dataclass
class Step:
    name: str
    page_name: str | None = None
    seconds: float = 0.0
    requests: list[Request] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.requests)

    @property
    def page_bytes(self) -> int:
        """The page's first load: its document and what it pulled in. When the page came as
        the htmx answer to the step's POST (register, create order, pay answer with the next
        page itself), that answer is the page."""
        loaded = sum(r.bytes for r in self.requests if r.page or (r.type in SUBRESOURCE_TYPES and not r.hx))
        return loaded or sum(r.bytes for r in self.requests if r.hx and r.method == "POST")

    @property
    def swaps(self) -> list[Request]:
        return [r for r in self.requests if r.hx and not r.page]


class DeskMeter:
    """Every request of the flow from the DevTools Network domain, grouped by step."""

    def __init__(self, cdp) -> None:  # type: ignore[no-untyped-def]
        self.steps: list[Step] = []
        self.step: Step | None = None
        self.by_id: dict[str, Request] = {}
        self.locations: set[str] = set()     # HX-Location targets htmx is about to fetch
        self.data_urls: list[tuple[str, str]] = []  # (type, start of the URI): inline, no request
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)

    def _sent(self, event: dict) -> None:
        if self.step is None:
            return
        request = event["request"]
        if request["url"].startswith("data:"):
            self.data_urls.append((event.get("type", "?"), request["url"][:40]))
            return
        existing = self.by_id.get(event["requestId"])
        redirect = event.get("redirectResponse")
        if existing is not None:  # the same request, redirected (303 after a form post)
            if redirect:
                existing.bytes += int(redirect.get("encodedDataLength", 0))
            existing.url, existing.method = request["url"], request["method"]
            return
        headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
        hx = headers.get("hx-request") == "true"
        kind = event.get("type", "Other")
        entry = Request(url=request["url"], method=request["method"], type=kind, hx=hx,
                        sent=len((request.get("postData") or "").encode()))
        entry.page = kind == "Document" or (hx and request["method"] == "GET" and path_of(request["url"]) in self.locations)
        if entry.page and hx:
            self.locations.discard(path_of(request["url"]))
        self.by_id[event["requestId"]] = entry
        self.step.requests.append(entry)

    def _from_cache(self, event: dict) -> None:
        entry = self.by_id.get(event["requestId"])
        if entry:
            entry.cached = True

    def _response(self, event: dict) -> None:
        entry = self.by_id.get(event["requestId"])
        if entry is None:
            return
        response = event["response"]
        entry.status, entry.mime = response["status"], response.get("mimeType", "")
        if response.get("fromDiskCache") or response.get("fromMemoryCache"):
            entry.cached = True
        timing = response.get("timing") or {}
        if timing.get("receiveHeadersEnd", -1) >= 0 and timing.get("sendEnd", -1) >= 0:
            entry.wait_ms = timing["receiveHeadersEnd"] - timing["sendEnd"]
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        if headers.get("hx-location"):
            entry.hx_location = headers["hx-location"]
            self.locations.add(path_of(headers["hx-location"]))

    def _finished(self, event: dict) -> None:
        entry = self.by_id.get(event["requestId"])
        if entry:
            entry.bytes += int(event["encodedDataLength"])
            entry.done = True

    def _failed(self, event: dict) -> None:
        entry = self.by_id.get(event["requestId"])
        if entry:
            entry.done = True
            entry.status = entry.status or -1

    def measure(self, page, name: str, action, *, page_name: str | None = None) -> Step:  # type: ignore[no-untyped-def]
        """Run action() (which waits for what the user waits for), then until every request
        it started has finished."""
        self.step = step = Step(name, page_name)
        started = time.perf_counter()
        action()
        deadline = time.monotonic() + 15
        while any(not r.done for r in step.requests) and time.monotonic() < deadline:
            page.wait_for_timeout(10)  # lets Playwright deliver the pending CDP events
        step.seconds = time.perf_counter() - started
        self.step = None
        self.steps.append(step)
        assert all(r.done for r in step.requests), f"{name}: requests never finished: {step.requests}"
        return step

    # reporting

    @property
    def requests(self) -> list[Request]:
        return [r for s in self.steps for r in s.requests]

    def pages(self) -> list[tuple[str, Step]]:
        return [(s.page_name, s) for s in self.steps if s.page_name]

    def swaps(self) -> list[tuple[Step, Request]]:
        return [(s, r) for s in self.steps for r in s.swaps]

    def report(self, wall_seconds: float) -> list[str]:
        total = sum(s.bytes for s in self.steps)
        sent = sum(r.sent for r in self.requests)
        lines = [
            f"Reception desk flow as demo.reception on a throttled line "
            f"({SLOW_LINE['latency']} ms RTT, 400 kbit/s down and up):",
            f"  {'step':<52} {'time':>7} {'req':>4} {'bytes':>8}",
        ]
        for number, s in enumerate(self.steps, 1):
            lines.append(f"  {number:>2}. {s.name:<48} {s.seconds:>6.2f}s {len(s.requests):>4} {s.bytes:>8,}")
            for r in s.requests:
                kind = "page" if r.page else ("htmx" if r.hx else r.type.lower())
                where = " (cache)" if r.cached else ""
                wait = f"  wait {r.wait_ms / 1000:.2f}s" if r.wait_ms and not r.cached else ""
                lines.append(f"        {r.status} {kind:<10} {r.label[:58]:<58} {r.bytes:>7,} B{where}{wait}")
        lines.append(f"  {'TOTAL':<52} {wall_seconds:>6.2f}s {len(self.requests):>4} {total:>8,}"
                     f"   (target {FLOW_TARGET_SECONDS} s: {'met' if wall_seconds <= FLOW_TARGET_SECONDS else 'MISSED'};"
                     f" {sent:,} B of form data sent)")
        lines.append(f"  First load of each page, transferred (budget {PAGE_BUDGET_BYTES // 1000} KB):")
        for name, s in self.pages():
            lines.append(f"    {name:<44} {s.page_bytes / 1000:>6.1f} KB")
        swaps = self.swaps()
        lines.append(f"  htmx swaps (budget {SWAP_BUDGET_BYTES // 1000} KB each): {len(swaps)}, "
                     f"largest {max((r.bytes for _, r in swaps), default=0) / 1000:.1f} KB")
        for _, r in swaps:
            lines.append(f"    {r.status} {r.label[:66]:<66} {r.bytes / 1000:>5.2f} KB")
        return lines


# --- the desk, as the receptionist uses it ------------------------------------------------------

def wait_until(page, expression: str, arg=None) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition in the page, checked every frame: timings are not inflated by
    the back-off of Playwright's expect() polling (up to 1 s between checks)."""
    page.wait_for_function(expression, arg=arg, polling="raf")


def fill_patient_form(page, *, name: str, sex: str = "female", age_years: str = "", dob: str = "",  # type: ignore[no-untyped-def]
                      mobile: str | None = None) -> None:
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Sex").select_option(sex)
    if dob:
        page.get_by_label("Date of birth").fill(dob)
    if age_years:
        page.get_by_label("Age: years").fill(age_years)
    if mobile is not None:
        page.get_by_label("Mobile").fill(mobile)


def submit_registration(page) -> str:  # type: ignore[no-untyped-def]
    """Submit the registration form and wait for the patient page; returns the MRN."""
    page.get_by_role("button", name="Register", exact=True).click()
    page.wait_for_url(PATIENT_URL)
    return path_of(page.url).rsplit("/", 1)[1]


def register_patient(page, *, name: str, mobile: str, sex: str = "female", age_years: str = "34") -> str:  # type: ignore[no-untyped-def]
    page.goto("/reception/patients/new")
    fill_patient_form(page, name=name, sex=sex, age_years=age_years, mobile=mobile)
    return submit_registration(page)


def pick_orderable(page, code: str, *, keyboard: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Type the code in the test search box and pick it from the results."""
    box = page.locator("#test-q")
    box.click()
    box.fill("")
    with page.expect_response(lambda r: path_of(r.url).endswith("/orderables")
                              and parse_qs(urlsplit(r.url).query).get("q") == [code.lower()]):
        box.press_sequentially(code.lower())  # a slow machine may also search "c", "cb" on the way
    wait_until(page, "code => document.querySelector(`#found button.pick-item[data-code='${code}']`)", code)
    if keyboard:
        # The results follow the search box: Tab reaches the first match, Enter adds it.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.code") == code, "Tab did not reach the first match"
        page.keyboard.press("Enter")
    else:
        page.locator(f"#found button.pick-item[data-code='{code}']").click()
    wait_until(page, "code => [...document.querySelectorAll('#lines table.lines td strong')]"
                     ".some(e => e.textContent === code)", code)


def tube_containers(page) -> list[str]:  # type: ignore[no-untyped-def]
    rows = page.locator("h2:text-is('Tubes') + table tbody tr")
    return sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count()))


def bill_due(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator("section.bill [id^=due-]").first.inner_text()


def assert_no_fonts_or_images_in(page, where: str) -> None:  # type: ignore[no-untyped-def]
    """No web font declared, no <img>/<picture>/… other than data: URIs on the screen."""
    found = page.evaluate("""() => ({
        fonts: document.fonts.size,
        images: [...document.querySelectorAll('img, picture, source, video, object, embed, image')]
                 .map(e => e.getAttribute('src') || e.getAttribute('href') || e.tagName)
                 .filter(s => !String(s).startsWith('data:')),
    })""")
    assert found == {"fonts": 0, "images": []}, f"{where}: {found}"


def fetch_in_page(page, url: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Fetch a URL from the page, through the browser's network stack (throttled and counted)."""
    return page.evaluate("""async (url) => {
        const r = await fetch(url, {credentials: 'same-origin'});
        const body = new Uint8Array(await r.arrayBuffer());
        return {status: r.status, type: r.headers.get('content-type'), size: body.length,
                disposition: r.headers.get('content-disposition'),
                head: String.fromCharCode(...body.slice(0, 5))};
    }""", url)


# --- 1. the whole flow on the slow line ---------------------------------------------------------



def test_whole_desk_flow_on_a_throttled_line(context, page, login, role_pages, measurements):
    """search → register → order 3 tests → UPI payment → label PDF, with figures."""
    mobile = "9876501234"
    name = "सुनीता देवी"  # Devanagari: names are stored and shown as typed
    utr = "412345678901"
    home = role_pages["reception"]["home"]

    login(page, "reception")  # at full speed: the flow starts at the desk
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.clearBrowserCache")  # the desk's first load pays for its CSS and JS
    cdp.send("Network.emulateNetworkConditions", SLOW_LINE)
    meter = DeskMeter(cdp)

    def step(label: str, action, page_name: str | None = None) -> Step:  # type: ignore[no-untyped-def]
        return meter.measure(page, label, action, page_name=page_name)

    started = time.perf_counter()

    # The desk, and the patient's mobile typed in the search box: nobody is found.
    step("desk, first load (empty cache)", lambda: page.goto(home), "desk (empty cache)")
    expect(page.get_by_role("heading", name="Reception desk")).to_be_visible()
    assert_no_fonts_or_images_in(page, "desk")

    def search_mobile() -> None:
        page.get_by_label("Find patient: MRN, mobile or name").press_sequentially(mobile)
        wait_until(page, "t => document.querySelector('#results').textContent.includes(t)",
                   f"No patient matches “{mobile}”")

    step("type the mobile in the search box", search_mobile)
    expect(page.locator("#results")).to_contain_text(f"No patient matches “{mobile}”")

    # Register: the mobile typed in the search box is already filled in.
    def open_registration() -> None:
        page.get_by_role("link", name="Register a new patient").click()
        page.wait_for_url(re.compile(r"/reception/patients/new\?"))

    step("click “Register a new patient”", open_registration, "patient form")
    expect(page.get_by_role("heading", name="Register patient")).to_be_visible()
    expect(page.get_by_label("Mobile")).to_have_value(mobile)
    assert_no_fonts_or_images_in(page, "patient form")

    step("fill name, sex, age", lambda: fill_patient_form(page, name=name, sex="female", age_years="42"))
    mrns: list[str] = []
    step("“Register” → patient page", lambda: mrns.append(submit_registration(page)), "patient page")
    mrn = mrns[0]
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator("#flash")).to_contain_text(f"Registered {name} — MRN {mrn}.")
    expect(page.locator("dl.facts")).to_contain_text("98765 01234")
    assert_no_fonts_or_images_in(page, "patient page")

    # The order: three tests found by typing, one picked with the keyboard.
    def open_order_form() -> None:
        page.get_by_role("link", name="New order").click()
        page.wait_for_url(re.compile(r"/orders/new$"))

    step("click “New order”", open_order_form, "order form")
    expect(page.get_by_role("heading", name="New order")).to_be_visible()
    expect(page.locator(".patient-strip")).to_contain_text(mrn)
    assert_no_fonts_or_images_in(page, "order form")

    step("add CBC (type “cbc”, Tab, Enter)", lambda: pick_orderable(page, "CBC", keyboard=True))
    step("add GLUF (type “gluf”, click)", lambda: pick_orderable(page, "GLUF"))
    step("add TSH (type “tsh”, click)", lambda: pick_orderable(page, "TSH"))
    expect(page.get_by_label("Tests and panels (codes)")).to_have_value("CBC GLUF TSH")
    expect(page.locator("#lines table.lines tbody tr")).to_have_count(3)

    def create_order() -> None:
        page.get_by_label("Urgent").check()
        page.get_by_role("button", name="Create order and bill").click()
        page.wait_for_url(ORDER_URL)

    step("Urgent, “Create order and bill” → order page", create_order, "order page")
    accession = path_of(page.url).rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name=f"Order {accession}")).to_be_visible()
    expect(page.locator(".patient-strip")).to_contain_text("URGENT")
    assert tube_containers(page) == ["EDTA", "Fluoride", "Plain"]
    bill = page.locator("section.bill")
    expect(bill).to_have_count(1)
    expect(bill.get_by_role("heading")).to_contain_text("Bill of supply")
    due = bill_due(page)
    assert due.startswith("₹") and due != DUE_ZERO, due
    expect(bill.get_by_label("Amount ₹")).to_have_value(due.removeprefix("₹").replace(",", ""))
    expect(bill.locator("figure.upi > svg")).to_have_count(1)  # the UPI QR: inline SVG, no image request
    expect(bill.locator("figure.upi figcaption")).to_contain_text(f"Scan with any UPI app to pay {due}")
    assert_no_fonts_or_images_in(page, "order page")

    # The patient pays by UPI; the UTR from their app is the reference.
    def pay_by_upi() -> None:
        bill.get_by_role("radio", name="UPI").check()
        bill.get_by_label(re.compile("UPI UTR")).fill(utr)
        with page.expect_navigation(url=ORDER_URL):
            bill.get_by_role("button", name="Record payment").click()

    step("UPI payment with its 12-digit UTR", pay_by_upi, "order page after payment")
    assert path_of(page.url) == f"/reception/orders/{accession}"
    expect(page.locator("#flash")).to_contain_text("Payment recorded on")
    expect(page.locator("section.bill")).to_contain_text(f"Paid UPI · {utr}")
    assert bill_due(page) == DUE_ZERO
    expect(page.locator("form.pay")).to_have_count(0)
    assert_no_fonts_or_images_in(page, "order page after payment")

    # Labels: the "Print labels" link's PDF, fetched by the browser over the same slow line.
    labels_href = page.get_by_role("link", name="Print labels").get_attribute("href")
    assert labels_href == f"/reception/orders/{accession}/labels.pdf"
    pdf: dict = {}  # type: ignore[type-arg]
    labels = step("open the labels PDF", lambda: pdf.update(fetch_in_page(page, labels_href)))
    wall_seconds = time.perf_counter() - started

    report = meter.report(wall_seconds)
    report.append(f"  Labels PDF: {pdf.get('size', 0):,} B, {pdf.get('type')}, "
                  f"{labels.seconds:.2f} s (of which waiting for the server {labels.requests[0].wait_ms / 1000:.2f} s)")
    report.append(f"  The flow without the labels PDF: {wall_seconds - labels.seconds:.2f} s")
    print("\n" + "\n".join(report))
    measurements.extend(report)
    text = "\n".join(report)

    assert pdf["status"] == 200, pdf
    assert pdf["type"] == "application/pdf", pdf
    assert pdf["head"] == "%PDF-", pdf
    assert f"labels-{accession}.pdf" in (pdf["disposition"] or ""), pdf
    assert all(r.status and r.status < 400 for r in meter.requests), text
    # The throttle really applied: the desk's first load took at least two round trips.
    assert meter.steps[0].seconds >= 2 * SLOW_LINE["latency"] / 1000, text

    # Page weight: every page's first load, every htmx answer.
    assert [name for name, _ in meter.pages()] == [
        "desk (empty cache)", "patient form", "patient page", "order form", "order page", "order page after payment"]
    for page_name, s in meter.pages():
        assert 0 < s.page_bytes <= PAGE_BUDGET_BYTES, f"{page_name}: {s.page_bytes:,} B\n{text}"
    swaps = meter.swaps()
    # The search; per test: the search and the lines; the two posts (a slow machine may add searches).
    assert len(swaps) >= 9, text
    for s, r in swaps:
        assert r.bytes <= SWAP_BUDGET_BYTES, f"{s.name}: {r.label} is {r.bytes:,} B\n{text}"
    # Fingerprinted static files travel once, on the first page; later pages take them from the cache.
    assert {r.label for r in meter.requests if "/static/" in r.url and r.bytes} == {
        "GET /static/css/app.css", "GET /static/js/app.js", "GET /static/vendor/htmx-2.0.11.min.js"}, text
    assert all(not r.bytes for s in meter.steps[1:] for r in s.requests if "/static/" in r.url), text
    # No web fonts and no images on the desk screens: only inline SVG (the UPI QR) and data: URIs.
    fetched = [(r.type, r.url) for r in meter.requests if r.type in {"Font", "Image", "Media"}]
    assert fetched == [], fetched

    # Time: the target is 10 s; a loaded CI machine gets twice that.
    assert wall_seconds <= FLOW_LIMIT_SECONDS, f"{wall_seconds:.1f} s (target {FLOW_TARGET_SECONDS} s)\n{text}"


# --- 2. what a new receptionist relies on (full speed) ------------------------------------------

@pytest.fixture(scope="module")
def desk(browser, live_server, role_pages):  # type: ignore[no-untyped-def]
    """One logged-in receptionist for the UX checks below (logging in once saves time)."""
    ctx = browser.new_context(base_url=live_server)
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = ctx.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(DEMO_USERS["reception"])
    page.get_by_label("Password").fill(KNOWN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(role_pages["reception"]["home"]) + "$"))
    yield page
    ctx.close()


def is_post_to(path: str):  # type: ignore[no-untyped-def]
    return lambda r: path_of(r.url) == path and r.request.method == "POST"


def test_wrong_mobile_is_flagged_in_place_and_the_patient_is_found_by_mobile_typed_another_way(desk):
    page = desk
    page.goto("/reception/patients/new")
    page.evaluate("window.__marker = 1")
    fill_patient_form(page, name="Ramesh Kumar Yadav", sex="male", dob="1980-05-17", mobile="98765 0123")
    page.get_by_label("City (optional)").fill("Lucknow")

    with page.expect_response(is_post_to("/reception/patients/new")) as answer:
        page.get_by_role("button", name="Register", exact=True).click()

    assert answer.value.status == 422
    mobile = page.get_by_label("Mobile")
    error = page.locator(".field", has=mobile).locator("p.error")
    expect(error).to_have_text("That is not a valid mobile number (10 digits for India).")
    expect(mobile).to_have_attribute("aria-invalid", "true")
    assert (error.get_attribute("id") or "-") in (mobile.get_attribute("aria-describedby") or "").split()
    # Swapped in place: same document, nothing typed is lost, only the mobile is flagged.
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the form"
    assert path_of(page.url) == "/reception/patients/new"
    expect(page.locator("form.patient-form")).to_have_count(1)
    expect(mobile).to_have_value("98765 0123")
    expect(page.get_by_label("Full name")).to_have_value("Ramesh Kumar Yadav")
    expect(page.get_by_label("Sex")).to_have_value("male")
    expect(page.get_by_label("Date of birth")).to_have_value("1980-05-17")
    expect(page.get_by_label("City (optional)")).to_have_value("Lucknow")
    expect(page.locator("p.error")).to_have_count(1)

    mobile.fill("98765 01239")
    mrn = submit_registration(page)

    # Later, the patient gives the number another way: "+91 98765-01239", "098765 01239".
    page.goto("/reception/")
    search = page.get_by_label("Find patient: MRN, mobile or name")
    for typed in ("+91 98765-01239", "098765 01239", "9876501239"):
        with page.expect_response(lambda r, typed=typed: path_of(r.url) == "/reception/patients"
                                  and parse_qs(urlsplit(r.url).query).get("q") == [typed]) as answer:
            search.fill(typed)
        assert answer.value.status == 200
        answer.value.finished()
        row = page.locator("#results tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Ramesh Kumar Yadav")
        expect(row).to_contain_text(mrn)
        expect(page.locator("#results caption")).to_have_text("1 match")
    # …and by MRN.
    search.fill(mrn)
    expect(page.locator("#results tbody tr")).to_contain_text("Ramesh Kumar Yadav")




def test_registering_the_same_name_and_mobile_again_warns_of_a_duplicate(desk):
    page = desk
    first = register_patient(page, name="Lakshmi Narayanan", mobile="98765 01240", sex="female", age_years="58")

    page.goto("/reception/patients/new")
    page.evaluate("window.__marker = 1")
    fill_patient_form(page, name="Lakshmi  Narayanan", sex="female", age_years="58", mobile="+919876501240")
    with page.expect_response(is_post_to("/reception/patients/new")) as answer:
        page.get_by_role("button", name="Register", exact=True).click()

    # Whatever the answer, something is said (the warning, or app.js's "The request failed").
    expect(page.get_by_role("alert").first).to_be_visible()
    alerts = page.get_by_role("alert").all_inner_texts()
    assert any("This patient may already be registered." in a for a in alerts), (answer.value.status, alerts)
    warning = page.get_by_role("alert").filter(has_text="This patient may already be registered.")
    expect(warning.get_by_role("link", name="Lakshmi Narayanan")).to_have_attribute(
        "href", f"/reception/patients/{first}")
    expect(warning).to_contain_text(f"MRN {first}")
    expect(warning).to_contain_text("same mobile, similar name")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the form"
    expect(page.get_by_label("Full name")).to_have_value("Lakshmi  Narayanan")  # as typed

    # A different person after all (the same name in a family sharing a phone): register anyway.
    warning.get_by_role("button", name="Register as a new patient").click()
    page.wait_for_url(PATIENT_URL)
    second = page.locator("dl.facts dd strong").first.inner_text()
    assert second != first


def test_double_clicked_create_makes_one_order_and_an_overpayment_is_refused(desk):
    page = desk
    mrn = register_patient(page, name="Mohammed Irfan", mobile="98765 01241", sex="male", age_years="29")
    page.goto(f"/reception/patients/{mrn}/orders/new")
    codes = page.get_by_label("Tests and panels (codes)")
    codes.fill("kft lipid")  # codes typed straight in, in any case
    codes.press("Tab")
    expect(page.locator("#lines table.lines tbody tr")).to_have_count(2)

    posts: list[str] = []

    def count_posts(request) -> None:  # type: ignore[no-untyped-def]
        if request.method == "POST" and path_of(request.url) == f"/reception/patients/{mrn}/orders":
            posts.append(request.url)

    page.on("request", count_posts)
    page.get_by_role("button", name="Create order and bill").dblclick()
    page.wait_for_url(ORDER_URL)
    page.remove_listener("request", count_posts)
    accession = path_of(page.url).rsplit("/", 1)[1]
    print(f"\ndouble-click on “Create order and bill”: {len(posts)} POST(s) reached the network")

    page.goto(f"/reception/patients/{mrn}")
    orders = page.locator("h2:text-is('Orders') + table tbody tr")
    expect(orders).to_have_count(1)
    expect(orders.first).to_contain_text(accession)

    # More than is due: refused with a message, nothing recorded.
    page.goto(f"/reception/orders/{accession}")
    due = bill_due(page)
    bill = page.locator("section.bill")
    bill.get_by_role("radio", name="Cash").check()
    rupees = int(due.removeprefix("₹").replace(",", "").split(".")[0])
    bill.get_by_label("Amount ₹").fill(f"{rupees + 100}.00")
    with page.expect_response(lambda r: "/payments" in r.url and r.request.method == "POST") as answer:
        bill.get_by_role("button", name="Record payment").click()
    assert answer.value.status == 422
    alert = page.locator("section.bill [role=alert]")
    expect(alert).to_contain_text(f"That is more than the amount due ({due.removeprefix('₹').replace(',', '')}).")
    assert bill_due(page) == due
    expect(page.locator("section.bill")).not_to_contain_text("Paid CASH")
