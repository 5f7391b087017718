"""The laboratory floor in the browser, keyboard only: a technician scans two tubes into the
receipt box (the page never reloads, the box keeps the focus), then types results into the
entry grid with Tab and Enter and sees the H flag and the calculated LDL appear."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import register_and_order

pytestmark = pytest.mark.e2e


@pytest.fixture
def lipid_order(demo_lab):  # type: ignore[no-untyped-def]
    """A lipid profile and fasting glucose for an adult man: two tubes (plain and fluoride)."""
    def make(org, branch):  # type: ignore[no-untyped-def]
        order = register_and_order(branch, {"name": "Girish Kulkarni", "sex": "male", "dob": "1971-08-15",
                                            "mobile": "9448012345"}, ["LIPID", "GLUF"])
        return {"accession": order.accession, "barcodes": {s.container: s.barcode for s in order.samples},
                "rows": {ot.test.code: ot.id for ot in order.tests}}

    return demo_lab(make)


def test_technician_scans_tubes_and_enters_results_with_the_keyboard(page, login, lipid_order):
    plain, fluoride = lipid_order["barcodes"]["Plain"], lipid_order["barcodes"]["Fluoride"]
    rows = lipid_order["rows"]
    login(page, "technician")

    # Receipt: two scans, each typed (as a keyboard-wedge scanner does) and ended with Enter.
    page.goto("/technician/receipt")
    page.evaluate("window.__marker = 1")
    box = page.get_by_label("Scan tube barcode")
    expect(box).to_be_focused()  # autofocus: the scanner can start at once
    for n, barcode in enumerate((plain, fluoride), start=1):
        with page.expect_response(lambda r: urlsplit(r.url).path == "/technician/receipt/scan") as answer:
            page.keyboard.type(barcode)
            page.keyboard.press("Enter")
        assert answer.value.status == 200
        assert answer.value.request.header_value("hx-request") == "true"
        expect(page.locator("#batch > li")).to_have_count(n)
        expect(page.locator("#batch > li").first).to_contain_text(barcode)
        expect(box).to_be_focused()
        expect(box).to_have_value("")
    lines = page.locator("#batch > li.scan-line.ok")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text(fluoride)  # the newest on top
    expect(lines.nth(1)).to_contain_text(plain)
    for line in (lines.nth(0), lines.nth(1)):
        expect(line).to_contain_text("Girish Kulkarni")
        expect(line).to_contain_text(lipid_order["accession"])
        expect(line).to_contain_text("Received.")
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    assert urlsplit(page.url).path == "/technician/receipt"

    # A refused scan is a red line, and the box is still ready.
    page.keyboard.type(plain)
    page.keyboard.press("Enter")
    expect(page.locator("#batch > li").first).to_have_class(re.compile(r"\brefused\b"))
    expect(page.locator("#batch > li").first).to_contain_text("already at the lab")
    expect(box).to_be_focused()

    # Result entry: the first value box has the focus; Enter saves and moves on, Tab moves within.
    page.goto(f"/technician/orders/{lipid_order['accession']}/results")
    page.evaluate("window.__marker = 2")
    chol = page.locator(f"#v-{rows['CHOL']}")
    expect(chol).to_be_focused()
    expect(chol).to_have_attribute("inputmode", "decimal")

    def saved(code):  # type: ignore[no-untyped-def]
        path = f"/technician/orders/{lipid_order['accession']}/results/{rows[code]}"
        return page.expect_response(lambda r: urlsplit(r.url).path == path and r.request.method == "POST")

    with saved("CHOL") as answer:
        page.keyboard.type("250")
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(page.locator(f"#ot-{rows['CHOL']} .flag")).to_contain_text("H")
    expect(page.locator(f"#v-{rows['TG']}")).to_be_focused()

    with saved("TG"):
        page.keyboard.type("150")
        page.keyboard.press("Tab")  # to TG's comment
        expect(page.locator(f"#c-{rows['TG']}")).to_be_focused()
        page.keyboard.press("Tab")  # out of the row: it is saved, HDL's box has the focus
    expect(page.locator(f"#v-{rows['HDL']}")).to_be_focused()

    with saved("HDL"):
        page.keyboard.type("40")
        page.keyboard.press("Enter")
    # LDL = 250 - 40 - 150/5 (Friedewald), refreshed out of band in its read-only row.
    expect(page.locator(f"#ot-{rows['LDL']} output")).to_have_text("180")
    expect(page.locator(f"#ot-{rows['LDL']} .flag")).to_contain_text("H")
    expect(page.locator(f"#ot-{rows['VLDL']} output")).to_have_text("30")
    expect(page.locator(f"#v-{rows['GLUF']}")).to_be_focused()  # the calculated rows are skipped

    # A bad value: 422, the message in its row, the page still the same document.
    with saved("GLUF") as answer:
        page.keyboard.type("ninety")
        page.keyboard.press("Enter")
    assert answer.value.status == 422
    expect(page.locator(f"#ot-{rows['GLUF']} .error")).to_contain_text("is a number")
    expect(page.locator(f"#v-{rows['GLUF']}")).to_have_value("ninety")
    assert page.evaluate("window.__marker") == 2, "the page reloaded"
    expect(page.locator(f"#v-{rows['CHOL']}")).to_have_value("250")
    expect(page.locator(f"#v-{rows['TG']}")).to_have_value("150")
