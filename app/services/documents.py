"""Printed documents at the desk: tube labels and payment receipts (PDF via WeasyPrint),
and the UPI QR for a bill. Everything user-supplied is escaped by Jinja, in PDFs too."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import date

import barcode
from barcode.writer import SVGWriter
from flask import render_template

from app import audit
from app.integrations import upi
from app.models import Bill, Order, Organization, Sample
from app.services import patients
from config import PROJECT_ROOT

RECEIPT_SIZES = ("a5", "80mm")


def _receipt_page_size(size: str, bill: Bill, has_qr: bool) -> str:
    """A5, or an 80 mm roll cut to the content: WeasyPrint needs a page height, so it is
    estimated from the number of lines (a thermal printer feeds only what is printed)."""
    if size == "a5":
        return "A5"
    height = 95 + 9 * len(bill.lines) + 6 * len(bill.payments) + (45 if has_qr else 0)
    return f"80mm {height}mm"


FONTS_CSS = PROJECT_ROOT / "static" / "fonts" / "pdf-fonts.css"


def _pdf(html: str) -> bytes:
    """HTML → PDF with the bundled Noto fonts, so names in Indian scripts print correctly
    whatever fonts the server has. WeasyPrint is imported lazily: the web process need not
    load it at start."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    return HTML(string=html).write_pdf(stylesheets=[CSS(filename=str(FONTS_CSS), font_config=fonts)],
                                       font_config=fonts)


def code128_data_uri(value: str) -> str:
    """A Code 128 barcode as an SVG data URI (vector: crisp on 203 dpi thermal printers)."""
    buffer = io.BytesIO()
    barcode.get("code128", value, writer=SVGWriter()).write(
        buffer, options={"module_width": 0.25, "module_height": 9, "write_text": False, "quiet_zone": 2})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def labels_pdf(order: Order, samples: list[Sample]) -> bytes:
    patient = order.patient
    labels = [dict(sample=s, barcode=code128_data_uri(s.barcode)) for s in samples]
    html = render_template("pdf/labels.html", order=order, patient=patient, labels=labels,
                           age=patients.age_label(patient), printed=date.today())
    return _pdf(html)


def record_label_print(order: Order, samples: list[Sample]) -> None:
    """The first print is routine; every reprint is audited (a reprinted label on the
    wrong tube is how results land on the wrong patient)."""
    for sample in samples:
        sample.label_prints += 1
        if sample.label_prints > 1:
            audit.record("sample.label_reprinted", entity_type="sample", entity_id=sample.barcode,
                         after={"order": order.accession, "prints": sample.label_prints})


@dataclass(frozen=True)
class UpiRequest:
    uri: str
    svg: str


def upi_for_bill(org: Organization, bill: Bill) -> UpiRequest | None:
    """A dynamic UPI QR for what is still due (tr = bill number), or None."""
    if not org.upi_vpa or bill.due_paise <= 0 or bill.status == "cancelled":
        return None
    uri = upi.payment_uri(vpa=org.upi_vpa, payee_name=org.upi_payee_name or org.display_name,
                          reference=bill.number, amount_paise=bill.due_paise, note=f"Lab bill {bill.number}")
    return UpiRequest(uri=uri, svg=upi.qr_svg(uri, scale=3))


def receipt_pdf(org: Organization, bill: Bill, size: str) -> bytes:
    request = upi_for_bill(org, bill)
    html = render_template("pdf/receipt.html", org=org, bill=bill, order=bill.order, size=size,
                           page_size=_receipt_page_size(size, bill, request is not None),
                           upi_qr=upi.qr_data_uri(request.uri, scale=3) if request else None)
    return _pdf(html)
