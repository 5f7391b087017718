"""The pathologist's flow in the browser: open the queue, review an order with a critical
potassium, log the telephone call (a call without read-back is refused in place), verify the
results shown, and release them. Every step after opening the order swaps only part of the
page (htmx): the document is never reloaded."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import register_and_order

pytestmark = pytest.mark.e2e


@pytest.fixture
def critical_order(demo_lab):  # type: ignore[no-untyped-def]
    """Potassium 7.1 (critical high) and sodium 140 on one received serum tube, entered by a technician."""
    from app.services import canned_comments, results, samples

    def make(org, branch):  # type: ignore[no-untyped-def]
        order = register_and_order(branch, {"name": "Shankar Hegde", "sex": "male", "dob": "1958-03-09",
                                            "mobile": "9448012399", "pin_code": "560004"}, ["K", "NA"],
                                   priority="stat")
        for sample in order.samples:
            samples.receive(sample, user_id=None)
        by_code = {ot.test.code: ot for ot in order.tests}
        k = results.save(by_code["K"], results.Entry(raw="7.1"), user_id=None)
        results.save(by_code["NA"], results.Entry(raw="140"), user_id=None)
        canned_comments.create({"code": "E2E-HYPERK", "test_id": by_code["K"].test_id, "active": True,
                                "text": "Exclude haemolysis; repeat on a fresh sample if unexpected."})
        return {"accession": order.accession, "k_row": f"r-{by_code['K'].id}", "k_result": k.id}

    return demo_lab(make)


def test_pathologist_reviews_calls_verifies_and_releases(page, login, critical_order, demo_lab):
    accession = critical_order["accession"]
    login(page, "pathologist")

    # The queue is the home page; the order is there with its critical result counted.
    row = page.locator(f"tr[data-accession='{accession}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Shankar Hegde")
    expect(row).to_contain_text("STAT")
    expect(row.locator(".flag.critical")).to_contain_text("1")
    row.get_by_role("link", name=accession).click()
    page.wait_for_url(f"**/pathologist/orders/{accession}")
    page.evaluate("window.__marker = 1")

    k_row = page.locator(f"#{critical_order['k_row']}")
    expect(k_row).to_contain_text("7.1")
    expect(k_row.locator(".flag.critical")).to_contain_text("HH")
    expect(k_row).to_contain_text("NO CALL")
    expect(page.locator("#review")).to_contain_text("Critical value without a recorded call: Potassium")

    def answer_to(path_end: str):  # type: ignore[no-untyped-def]
        return page.expect_response(lambda r: urlsplit(r.url).path.endswith(path_end) and r.request.method == "POST")

    # The call log: without read-back it is refused in place (422), what was typed is kept.
    k_row.get_by_label("Whom").select_option("doctor")
    k_row.get_by_label("Name of the person").fill("Dr. Anil Rao")
    k_row.get_by_label("Number called").fill("98450 22334")
    with answer_to("/calls") as answer:
        k_row.get_by_role("button", name="Record call").click()
    assert answer.value.status == 422
    k_row = page.locator(f"#{critical_order['k_row']}")
    expect(k_row.locator(".error")).to_contain_text("must be read back")
    expect(k_row.get_by_label("Name of the person")).to_have_value("Dr. Anil Rao")
    k_row.get_by_label("The value was read back to me").check()
    with answer_to("/calls") as answer:
        k_row.get_by_role("button", name="Record call").click()
    assert answer.value.status == 200
    expect(k_row).to_contain_text("Call recorded.")
    expect(k_row).to_contain_text("Dr. Anil Rao (doctor)")
    expect(k_row).not_to_contain_text("NO CALL")

    # An interpretive comment from the canned list fills the box; saving it swaps the row, whose
    # hidden version follows the saved result (so the verify below still matches).
    k_row.get_by_text("Add an interpretive comment").click()
    with page.expect_response(lambda r: "/interpretation?" in r.url and r.request.method == "GET"):
        k_row.get_by_label("Canned comment (fills the box)").select_option(
            label="E2E-HYPERK: Exclude haemolysis; repeat on a fresh sample if unexpected.")
    box = k_row.get_by_label("Interpretive comment (printed on the report)")
    expect(box).to_have_value("Exclude haemolysis; repeat on a fresh sample if unexpected.")
    with answer_to("/interpretation") as answer:
        k_row.get_by_role("button", name="Save comment").click()
    assert answer.value.status == 200
    expect(k_row).to_contain_text("Comment saved.")
    expect(k_row.locator(f"input[name='version-{critical_order['k_result']}']")).to_have_value("2")

    # Verify what the page shows (both boxes ticked by default), then release.
    expect(page.locator("input[name=result]:checked")).to_have_count(2)
    with answer_to("/verify") as answer:
        page.get_by_role("button", name="Verify selected").click()
    assert answer.value.status == 200
    expect(page.locator("#review")).to_contain_text("Verified 2 results.")
    expect(page.get_by_role("button", name="Verify selected")).to_have_count(0)
    with answer_to("/release") as answer:
        page.get_by_role("button", name="Release 2 verified results").click()
    assert answer.value.status == 200
    review = page.locator("#review")
    expect(review).to_contain_text("Released 2 results.")
    expect(review.locator("#released-note")).to_contain_text("Released")
    expect(review.locator(".status .badge.ok")).to_have_count(2)
    assert page.evaluate("window.__marker") == 1, "the page reloaded"

    # The report appears: the release queued its render job; run it as the reports worker does
    # (no worker process in the browser tests), and the versions list, polling while it
    # renders, shows the issued report with its PDF.
    versions = page.locator("#report-versions")
    expect(versions).to_contain_text("Rendering")

    def render(org, branch):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from app.extensions import db
        from app.models import Order, Report
        from app.services import reports

        rendering = (select(Report.id, Order.id).join(Order, Order.id == Report.order_id)
                     .where(Order.accession == accession, Report.status == "rendering"))
        return [reports.render_report(report_id) for report_id, _ in db.session.execute(rendering).all()]

    assert demo_lab(render) == ["final"]
    expect(versions.get_by_role("link", name="PDF")).to_be_visible(timeout=15_000)
    pdf = page.request.get(versions.get_by_role("link", name="PDF").get_attribute("href"))
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"

    # Back on the queue the order is gone; the criticals register shows the call.
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.locator(f"tr[data-accession='{accession}']")).to_have_count(0)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Criticals").click()
    register_row = page.locator("table.criticals tr", has_text=accession)
    expect(register_row).to_contain_text("Dr. Anil Rao (doctor)")
    expect(register_row).not_to_contain_text("NO CALL")
