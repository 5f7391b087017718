"""Logging in and out through the real login form, role menus and the 403 page."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_USERS, KNOWN_PASSWORD

pytestmark = pytest.mark.e2e


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.parametrize("role", list(DEMO_USERS))
def test_each_role_logs_in_sees_its_menu_and_logs_out(page, login, role_pages, role):
    home, menu = role_pages[role]["home"], role_pages[role]["menu"]

    login(page, role)

    assert path_of(page.url) == home
    nav = page.locator("nav[aria-label=Main]")
    links = nav.get_by_role("link")
    assert [text.strip() for text in links.all_inner_texts()] == [label for label, _ in menu]
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [path for _, path in menu]
    expect(nav.locator("[aria-current=page]")).to_have_text(menu[0][0])
    expect(page.locator("header .who")).to_contain_text(role.capitalize())

    for label, path in menu:
        with page.expect_response(
            lambda r, path=path: path_of(r.url) == path and r.request.is_navigation_request()
        ) as answer:
            nav.get_by_role("link", name=label, exact=True).click()
        assert answer.value.status == 200, f"{label} ({path}) answered {answer.value.status}"
        page.wait_for_load_state()
        assert path_of(page.url) == path
        expect(nav.locator("[aria-current=page]")).to_have_text(label)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("You have logged out.")
    expect(page.locator("nav[aria-label=Main]")).to_have_count(0)

    # The session really ended: the home page sends us back to the login form.
    answer = page.goto(home)
    assert answer is not None and answer.status == 200
    assert path_of(page.url) == "/login"
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_wrong_password_error_is_swapped_in_place(page):
    page.goto("/login")
    page.evaluate("window.__marker = 1")
    page.get_by_label("Username").fill(DEMO_USERS["billing"])
    page.get_by_label("Password").fill(KNOWN_PASSWORD + "-wrong")

    with page.expect_response(lambda r: path_of(r.url) == "/login" and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()

    assert answer.value.status == 422
    assert answer.value.request.header_value("hx-request") == "true"
    expect(page.get_by_role("alert")).to_have_text("Username or password is incorrect.")
    assert path_of(page.url) == "/login"
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the form"
    # Only the form was replaced: one heading, one form, the username kept, the password not.
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("form[hx-post]")).to_have_count(1)
    expect(page.get_by_label("Username")).to_have_value(DEMO_USERS["billing"])
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.locator("nav[aria-label=Main]")).to_have_count(0)


def test_technician_typing_the_billing_address_gets_the_403_page(page, login):
    login(page, "technician")

    answer = page.goto("/billing/")

    assert answer is not None and answer.status == 403
    assert path_of(page.url) == "/billing/"
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("Your role does not give access to this page.")).to_be_visible()
    expect(page.get_by_role("link", name="Go to your dashboard")).to_be_visible()
    assert page.title() == "Not allowed"


def test_htmx_csrf_header_is_valid_right_after_logging_in(page, login):
    """DESIGN: the CSRF token rides on <body hx-headers>, so any hx-post element works
    without a form field. Right after the htmx login that header must be current."""
    login(page, "reception")
    # An hx-post button, as a portal would render one (no csrf_token field of its own).
    page.evaluate("""() => {
        const b = document.createElement('button');
        b.id = 'probe'; b.textContent = 'Log out (htmx)'; b.setAttribute('hx-post', '/logout');
        document.getElementById('main').append(b); htmx.process(b);
    }""")
    with page.expect_response(lambda r: path_of(r.url) == "/logout") as answer:
        page.locator("#probe").click()

    assert answer.value.status == 204, f"{answer.value.status}: {answer.value.text()[:200]}"
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.locator("#flash")).to_contain_text("You have logged out.")
