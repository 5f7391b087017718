"""Admin portal: a form with a validation error is answered 422 and swapped in place."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CODE_LABEL = "Code (used in bill numbers)"
CODE_ERROR = "1–8 capital letters or digits, starting with a letter."


def is_post_to(path: str):  # type: ignore[no-untyped-def]
    return lambda r: urlsplit(r.url).path == path and r.request.method == "POST"


def test_admin_adds_a_branch_after_correcting_an_invalid_code(page, login):
    login(page, "admin")
    page.goto("/admin/branches/new")
    expect(page.get_by_role("heading", name="Add branch")).to_be_visible()
    page.evaluate("window.__marker = 1")

    code = page.get_by_label(CODE_LABEL)
    code.fill("1bad")
    page.get_by_label("Name", exact=True).fill("Collection Centre, Koramangala")
    page.get_by_label("GST state code").fill("29")
    with page.expect_response(is_post_to("/admin/branches/new")) as answer:
        page.get_by_role("button", name="Save").click()

    assert answer.value.status == 422
    assert answer.value.request.header_value("hx-request") == "true"
    # The error sits next to its field and is tied to the input for screen readers.
    error = page.locator(".field", has=code).locator("p.error")
    expect(error).to_have_text(CODE_ERROR)
    expect(code).to_have_attribute("aria-invalid", "true")
    error_id = error.get_attribute("id")
    assert error_id and error_id in (code.get_attribute("aria-describedby") or "").split()
    # Swapped in place: same document, same address, one form, what was typed kept.
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the form"
    assert urlsplit(page.url).path == "/admin/branches/new"
    expect(page.locator("form[hx-post]")).to_have_count(1)
    expect(page.locator("h1")).to_have_count(1)
    expect(page.get_by_label("Name", exact=True)).to_have_value("Collection Centre, Koramangala")
    expect(page.locator("p.error")).to_have_count(1)  # only the code was wrong

    code.fill("KRM")
    with page.expect_response(is_post_to("/admin/branches/new")) as answer:
        page.get_by_role("button", name="Save").click()

    assert answer.value.status == 204
    assert answer.value.headers.get("hx-location") == "/admin/branches"
    page.wait_for_url(re.compile(r"/admin/branches$"))
    expect(page.locator("#flash")).to_contain_text("Saved branch KRM.")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="KRM", exact=True))
    expect(row).to_contain_text("Collection Centre, Koramangala")
    expect(row).to_contain_text("Collection centre")
    expect(row).to_contain_text("Active")

    # Stored, not just shown: a fresh load of the list has it too, beside the demo branches.
    page.goto("/admin/branches")
    codes = page.locator("tbody tr td:first-child").all_inner_texts()
    assert [c.strip() for c in codes] == ["JNR", "KRM", "MAIN"]
