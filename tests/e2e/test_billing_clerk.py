"""A billing clerk in Chromium, as a new user would: takes a bill's payment in cash, UPI and
card at their own counter, refunds part of the cash, then closes the counter's day by counting
the drawer, and the numbers match (expected cash = taken − refunded; difference zero)."""
from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.e2e.conftest import register_and_order


def test_clerk_takes_payments_in_every_counter_mode_refunds_and_closes_the_day(page, login, demo_lab):
    def make_bill(org, branch):  # type: ignore[no-untyped-def]
        from app.services import orders

        order = register_and_order(branch, {"name": "Kavya Menon", "sex": "female", "dob": "1988-03-14",
                                            "mobile": "9845012345"}, ["CBC", "GLUF"])
        [bill] = orders.bills_of(order)
        return bill.number, bill.total_paise, branch.id

    number, total, branch_id = demo_lab(make_bill)
    card_paise = total - 15000  # ₹100 cash + ₹50 UPI, the rest by card
    counter = "e2e-" + uuid.uuid4().hex[:6]
    login(page, "billing")

    page.get_by_label("Find a bill (number, patient or client)").fill(number)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=number).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(number)

    def pay(mode: str, amount: str, reference: str = "") -> None:
        form = page.locator("form.pay")
        form.locator(f"input[name=mode][value={mode}]").check()
        form.locator("#pay-amount").fill(amount)
        form.locator("#pay-reference").fill(reference)
        form.locator("#pay-counter").fill(counter)
        form.get_by_role("button", name="Record payment").click()

    pay("cash", "100.00")
    expect(page.locator("table.payments")).to_contain_text("CASH")
    pay("upi", "50", "412345678901")
    expect(page.locator("table.payments")).to_contain_text("RRN 412345678901")
    pay("card", f"{card_paise // 100}.{card_paise % 100:02d}", "AUTH0042")
    expect(page.locator("table.payments")).to_contain_text("AUTH0042")
    expect(page.locator("#bill-due")).to_have_text("₹0.00")
    expect(page.get_by_role("heading", level=1)).to_contain_text("paid")
    expect(page.locator("table.payments")).to_contain_text(counter)

    # A refund of ₹20 of the cash, paid from the same drawer.
    refund = page.locator("form", has=page.locator("legend", has_text="Refund payment CASH"))
    refund.get_by_label("Amount ₹").fill("20.00")
    refund.get_by_label("Refund by").select_option("cash")
    refund.get_by_label("Reason").fill("Glucose fasting sample not taken; patient not fasting")
    refund.get_by_role("button", name="Refund").click()
    expect(page.locator("table.payments")).to_contain_text("₹20.00")
    expect(page.locator("#bill-due")).to_have_text("₹20.00")  # the bill is owed what was refunded

    # Day closing for this counter of the bill's branch: expected cash ₹80; counted 50 + 20 + 10.
    page.goto(f"/billing/closing?branch_id={branch_id}&counter={counter}")
    expect(page.locator("#count-total")).to_contain_text(re.compile(r"Expected cash\s*₹80\.00"))
    page.get_by_label("₹50 notes").fill("1")
    page.get_by_label("₹20 notes").fill("1")
    page.get_by_label("₹10 notes").fill("1")
    expect(page.locator("#count-total")).to_contain_text("₹80.00")
    expect(page.locator("#count-total")).to_contain_text("tallies")
    page.get_by_label("UPI settled (₹)").fill("50.00")
    page.get_by_label("Card settled (₹)").fill(f"{card_paise // 100}.{card_paise % 100:02d}")
    page.get_by_label("I counted this cash and sign off this counter's day.").check()
    page.get_by_role("button", name="Sign off").click()
    page.wait_for_url(re.compile(r"/billing/closing/\d+$"))
    difference = page.locator("tr", has=page.locator("th", has_text="Difference (counted − expected)"))
    expect(difference).to_contain_text("₹0.00")
    expect(page.locator("body")).to_contain_text(f"counter {counter}")
