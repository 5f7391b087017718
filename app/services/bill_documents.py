"""Printable A4 GST documents: the bill of supply, the tax invoice and the credit note.

What each must show (../shared/reference/india.md §1.6 and §1.2):
- Bill of supply, CGST Rule 49: supplier name, address, GSTIN; a serial number of at most 16
  characters unique for the FY; date; recipient name, address and GSTIN if registered;
  HSN/SAC; description; value after discount; signature (not needed on an electronic one).
- Tax invoice, CGST Rule 46 adds: place of supply with the state's name and code, taxable
  value, rate and amount of CGST+SGST (within the state) or IGST (across states), whether tax
  is payable on reverse charge, the total in words, and — when e-invoiced — the IRN, AckNo,
  AckDt and the IRP's signed QR code (india.md §1.1, §1.4).
- Credit note, CGST Rule 53(1A) [from the Rule's text, not in india.md]: the same supplier and
  recipient details, its own serial number and date, the number and date of the bill it
  credits, the taxable value, rate and tax credited, and a signature.

Amounts come from paise and are formatted only here, in the template."""
from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from flask import current_app, has_request_context, render_template
from sqlalchemy import select

from app.extensions import db
from app.models import Bill, Branch, Client, CreditNote, EInvoice, Organization
from app.services import credit_notes, documents

# GST state codes and names (the GSTIN's first two digits; india.md §2.1 lists 38 Ladakh and
# 97 Other Territory beyond python-stdnum's table; 25 was merged into 26 in 2020).
GST_STATES = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh", "05": "Uttarakhand",
    "06": "Haryana", "07": "Delhi", "08": "Rajasthan", "09": "Uttar Pradesh", "10": "Bihar", "11": "Sikkim",
    "12": "Arunachal Pradesh", "13": "Nagaland", "14": "Manipur", "15": "Mizoram", "16": "Tripura",
    "17": "Meghalaya", "18": "Assam", "19": "West Bengal", "20": "Jharkhand", "21": "Odisha", "22": "Chhattisgarh",
    "23": "Madhya Pradesh", "24": "Gujarat", "25": "Daman and Diu", "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra", "28": "Andhra Pradesh (old)", "29": "Karnataka", "30": "Goa", "31": "Lakshadweep",
    "32": "Kerala", "33": "Tamil Nadu", "34": "Puducherry", "35": "Andaman and Nicobar Islands", "36": "Telangana",
    "37": "Andhra Pradesh", "38": "Ladakh", "97": "Other Territory", "99": "Centre Jurisdiction",
}
DOC_TITLES = {"bill_of_supply": "Bill of supply", "tax_invoice": "Tax invoice"}
EXEMPTION_NOTE = ("Health care services by a clinical establishment, exempt under entry 74 of Notification "
                  "12/2017-Central Tax (Rate) (SAC 999316): no GST is charged.")

_ONES = ("", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve",
         "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen")
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")


def state_label(code: str | None) -> str:
    if not code:
        return ""
    return f"{GST_STATES.get(code, 'State')} ({code})"


def _below_hundred(n: int) -> str:
    return _ONES[n] if n < 20 else (_TENS[n // 10] + (" " + _ONES[n % 10] if n % 10 else ""))


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} Hundred"] if hundreds else []
    if rest:
        words.append(_below_hundred(rest))
    return " ".join(words)


def number_in_words(n: int) -> str:
    """Indian grouping: crore, lakh, thousand (1,23,45,678 → One Crore Twenty Three Lakh …)."""
    if n == 0:
        return "Zero"
    parts = []
    crore, n = divmod(n, 10_000_000)
    lakh, n = divmod(n, 100_000)
    thousand, n = divmod(n, 1000)
    if crore:
        parts.append(f"{number_in_words(crore)} Crore")
    if lakh:
        parts.append(f"{_below_hundred(lakh)} Lakh")
    if thousand:
        parts.append(f"{_below_hundred(thousand)} Thousand")
    if n:
        parts.append(_below_thousand(n))
    return " ".join(parts)


def amount_in_words(paise: int) -> str:
    """'Rupees One Thousand Two Hundred Fifty and Fifty Paise Only' (Rule 46: total in words)."""
    rupees, rest = divmod(abs(int(paise)), 100)
    words = f"Rupees {number_in_words(rupees)}"
    if rest:
        words += f" and {_below_hundred(rest)} Paise"
    return words + " Only"


def half_rate(rate: Decimal) -> Decimal:
    """CGST and SGST are each half the GST rate (9 % + 9 % for 18 %)."""
    return (Decimal(rate) / 2).normalize()


def _recipient(bill: Bill) -> dict[str, Any]:
    """Name, address and GSTIN of the recipient: the B2B client when billed to one, else the patient."""
    client = db.session.get(Client, bill.client_id) if bill.client_id else (bill.order.client if bill.order else None)
    address = ""
    if client is not None:
        address = client.address or ""
    elif bill.order is not None:
        patient = bill.order.patient
        address = ", ".join(p for p in (patient.address, patient.city, patient.pin_code or "") if p)
    return {"name": bill.recipient_name, "address": address, "gstin": bill.recipient_gstin,
            "state": state_label(bill.place_of_supply)}


def generated_einvoice(*, bill_id: int | None = None, credit_note_id: int | None = None) -> EInvoice | None:
    """The document's e-invoice, only once the IRP has generated it (an IRN to print)."""
    stmt = select(EInvoice).where(EInvoice.status == "generated")
    stmt = stmt.where(EInvoice.bill_id == bill_id) if bill_id else stmt.where(EInvoice.credit_note_id == credit_note_id)
    return db.session.execute(stmt).scalars().first()


def signed_qr_data_uri(einvoice: EInvoice) -> str | None:
    """The IRP's SignedQRCode as a printable QR image (india.md §1.4). The e-invoicing module's
    renderer is used when present; otherwise the JWS string is encoded here with segno."""
    try:
        from app.services import einvoicing  # type: ignore[attr-defined]
        svg = einvoicing.signed_qr_svg(einvoice)
    except (ImportError, AttributeError):
        svg = None
    if svg:
        if "xmlns=" not in svg[:300]:
            # An inline SVG (meant for an HTML page) has no namespace; as an <img> it needs one,
            # or the image is blank in the PDF.
            svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    if not einvoice.signed_qr:
        return None
    import segno

    return segno.make(einvoice.signed_qr, error="l").svg_data_uri(scale=2, border=4)


def _einvoice_context(einvoice: EInvoice | None) -> dict[str, Any] | None:
    if einvoice is None:
        return None
    return {"irn": einvoice.irn, "ack_no": einvoice.ack_no, "ack_dt": einvoice.ack_dt,
            "qr": signed_qr_data_uri(einvoice)}


def bill_context(org: Organization, bill: Bill) -> dict[str, Any]:
    branch = db.session.get(Branch, bill.branch_id)
    intra_state = bill.igst_paise == 0 and bill.place_of_supply == branch.state_code
    return {"org": org, "bill": bill, "branch": branch, "title": DOC_TITLES[bill.doc_type],
            "taxable_doc": bill.doc_type == "tax_invoice", "intra_state": intra_state,
            "recipient": _recipient(bill), "supplier_state": state_label(branch.state_code or org.state_code),
            "total_words": amount_in_words(bill.total_paise), "half_rate": half_rate,
            "einvoice": _einvoice_context(generated_einvoice(bill_id=bill.id)) if bill.doc_type == "tax_invoice"
            else None, "exemption_note": EXEMPTION_NOTE, "credit_notes": credit_notes.notes_of(bill)}


def _render(template: str, **context: Any) -> str:
    """Render in the request when there is one; a job (e-mailing an invoice, say) gets a bare
    request context, which the base template's context processors need."""
    if has_request_context():
        return render_template(template, **context)
    with current_app.test_request_context():
        return render_template(template, **context)


def bill_html(org: Organization, bill: Bill) -> str:
    return _render("pdf/bill_a4.html", **bill_context(org, bill))


def bill_pdf(org: Organization, bill: Bill) -> bytes:
    return documents.pdf_and_pages(bill_html(org, bill))[0]


def credit_note_context(org: Organization, note: CreditNote) -> dict[str, Any]:
    bill = note.bill
    branch = db.session.get(Branch, note.branch_id)
    lines = [dict(entry, gst_rate=Decimal(entry.get("gst_rate", "0"))) for entry in note.lines or []]
    return {"org": org, "note": note, "bill": bill, "branch": branch, "lines": lines,
            "bill_title": DOC_TITLES[bill.doc_type], "taxable_doc": bill.doc_type == "tax_invoice",
            "intra_state": note.igst_paise == 0 and bill.place_of_supply == branch.state_code,
            "recipient": _recipient(bill), "supplier_state": state_label(branch.state_code or org.state_code),
            "total_words": amount_in_words(note.total_paise), "half_rate": half_rate,
            "einvoice": _einvoice_context(generated_einvoice(credit_note_id=note.id))}


def credit_note_html(org: Organization, note: CreditNote) -> str:
    return _render("pdf/credit_note.html", **credit_note_context(org, note))


def credit_note_pdf(org: Organization, note: CreditNote) -> bytes:
    return documents.pdf_and_pages(credit_note_html(org, note))[0]


def filename(number: str, prefix: str) -> str:
    return f"{prefix}-{number.replace('/', '-')}.pdf"
