"""Printed documents at the desk: tube labels and payment receipts (PDF via WeasyPrint),
and the UPI QR for a bill. Everything user-supplied is escaped by Jinja, in PDFs too."""
from __future__ import annotations

import atexit
import base64
import io
import threading
from dataclasses import dataclass
from datetime import date

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


FONTS_DIR = PROJECT_ROOT / "static" / "fonts"
# Bundled Noto fonts by Unicode block: a document loads only the scripts it contains.
SCRIPT_FONTS: dict[str, tuple[int, int]] = {
    "devanagari": (0x0900, 0x097F), "bengali": (0x0980, 0x09FF), "gurmukhi": (0x0A00, 0x0A7F),
    "gujarati": (0x0A80, 0x0AFF), "oriya": (0x0B00, 0x0B7F), "tamil": (0x0B80, 0x0BFF),
    "telugu": (0x0C00, 0x0C7F), "kannada": (0x0C80, 0x0CFF), "malayalam": (0x0D00, 0x0D7F),
}
_stylesheets: dict[frozenset[str], tuple[object, object]] = {}
_stylesheets_lock = threading.Lock()
atexit.register(_stylesheets.clear)  # release fontconfig objects before the interpreter tears down


def scripts_in(text: str) -> frozenset[str]:
    found = set()
    for char in set(text):
        code = ord(char)
        if 0x0900 <= code <= 0x0D7F:
            found.update(name for name, (low, high) in SCRIPT_FONTS.items() if low <= code <= high)
    return frozenset(found)


def _font_stylesheet(scripts: frozenset[str]):  # type: ignore[no-untyped-def]
    """The @font-face rules for Latin plus `scripts`, built once per process and script set:
    loading fonts costs a second, rendering with them milliseconds. The fonts are shipped
    as TTF: decoding WOFF2 took seconds per font in fontTools."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    with _stylesheets_lock:
        if scripts not in _stylesheets:
            rules = []
            for script in ("latin", *sorted(scripts)):
                family = "Noto Sans" if script == "latin" else f"Noto Sans {script.capitalize()}"
                prefix = "noto-sans-latin" if script == "latin" else f"noto-sans-{script}-{script}"
                for weight in (400, 700):
                    rules.append(f'@font-face {{ font-family: "{family}"; font-weight: {weight}; '
                                 f'src: url("{prefix}-{weight}-normal.ttf") format("truetype"); }}')
            config = FontConfiguration()
            css = CSS(string="\n".join(rules), base_url=str(FONTS_DIR) + "/", font_config=config)
            _stylesheets[scripts] = (config, css)
        return _stylesheets[scripts]


def _pdf(html: str) -> bytes:
    """HTML → PDF with the bundled Noto fonts, so names in Indian scripts print correctly
    whatever fonts the server has. WeasyPrint is imported lazily: the web process need not
    load it at start."""
    from weasyprint import HTML

    config, css = _font_stylesheet(scripts_in(html))
    return HTML(string=html).write_pdf(stylesheets=[css], font_config=config)


def pdf_and_pages(html: str) -> tuple[bytes, int]:
    """Like _pdf(), and also the number of pages (the report keeps it with the stored PDF)."""
    from weasyprint import HTML

    config, css = _font_stylesheet(scripts_in(html))
    document = HTML(string=html).render(stylesheets=[css], font_config=config)
    return document.write_pdf(), len(document.pages)


def warm_up() -> None:
    """Render one tiny PDF so the first label a desk prints does not pay WeasyPrint's start-up
    (about a second: pango, fontconfig and the Latin fonts). Called
    by the gunicorn master before it forks the workers (app/gunicorn_conf.py)."""
    _pdf("<p>warm-up</p>")


def code128_data_uri(value: str) -> str:
    """A Code 128 barcode as an SVG data URI (vector: crisp on 203 dpi thermal printers)."""
    import barcode  # imported when the first label is printed, not by every web worker
    from barcode.writer import SVGWriter

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
