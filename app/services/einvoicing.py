"""GST e-invoicing: taxable B2B tax invoices (and their credit notes) reported to the IRP.

Rules, all from ../shared/reference/india.md §1:
- Who: an organization whose aggregate turnover in any FY since 2017-18 exceeds ₹5 crore
  (Notification 10/2023-CT, §1.5) switches it on (Organization.einvoice_enabled).
- What: tax invoices to a registered recipient (B2B, a GSTIN on the bill), their credit notes.
  Exempt supplies go on a bill of supply and are **never** e-invoiced (§1.5, GSTZen).
- The INV-01 v1.1 JSON (§1.3) is built from the bill at submission time, checked here first
  (document number pattern §1.2, GSTINs §2.1, PINs, lengths, totals) so the clerk sees a
  plain message instead of an IRP error code, then sent by app/integrations/irp.py.
- IRN = SHA-256(GSTIN + FY + type + number) (§1.1). The IRP's IRN is authoritative; ours is the
  cross-check (a difference is kept as a warning on the row).
- Cancel: the whole IRN, within 24 hours of the acknowledgement; after that, a credit note (§1.5).

State of one EInvoice row: queued → submitting → generated (→ cancelled), or → retrying (network,
429, 5xx: exponential backoff, then again) or → rejected (our checks or the IRP's validation;
the clerk fixes the data and submits again). A job marks 'submitting' before it calls the IRP;
sending twice is harmless because the IRP answers a second report of the same document with
error 2150 and the IRN it already has, which is taken as success after checking it.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import audit
from app.extensions import db
from app.formatting import parse_rupees
from app.integrations import irp
from app.models import Bill, Branch, Client, CreditNote, EInvoice, Organization
from app.models.base import utcnow
from app.security import tenant_of_row, use_tenant
from app.services import ServiceError, jobs
from app.services.billing import IST, financial_year, today_in_india

log = logging.getLogger(__name__)

QUEUE = "einvoice"
JOB = "workers.einvoice.submit"
THRESHOLD_PAISE = 5 * 10**7 * 100  # ₹5 crore (Notification 10/2023-CT, india.md §1.5)
THIRTY_DAY_RULE_PAISE = 10 * 10**7 * 100  # AATO ≥ ₹10 crore: report within 30 days (GSTN advisory 5 Nov 2024)
REPORTING_WINDOW = timedelta(days=30)
CANCEL_WINDOW = timedelta(hours=24)  # india.md §1.5
MAX_ATTEMPTS = 6
BACKOFF_BASE = 60  # seconds: 1, 2, 4, 8, 16 minutes between the six attempts
SWEEP_GRACE = timedelta(minutes=1)
STUCK_SUBMITTING = timedelta(minutes=10)
NOT_CONFIGURED_WAIT = timedelta(hours=1)

DOC_NO_RE = re.compile(r"^[A-Z1-9][A-Z0-9/-]{0,15}$")  # DocDtls.No, india.md §1.2
BUYER_GSTIN_RE = re.compile(r"^(([0-9]{2}[0-9A-Z]{13})|URP)$")  # BuyerDtls.Gstin, §1.3
PIN_RE = re.compile(r"(?<!\d)([1-9][0-9]{5})(?!\d)")
HSN_RE = re.compile(r"^[0-9]{4,8}$")
GST_RATES = {Decimal(r) for r in ("0", "0.1", "0.25", "1", "1.5", "3", "5", "6", "7.5", "12", "18", "28", "40")}
STATUS_LABELS = {"queued": "Queued", "submitting": "Sending", "generated": "IRN generated",
                 "retrying": "Retrying", "rejected": "Needs attention", "cancelled": "Cancelled"}


class EInvoiceRefused(ServiceError):
    pass


# ---------------------------------------------------------------- pure rules

def compute_irn(gstin: str, fy: str, doc_type: str, number: str) -> str:
    """SHA-256 of GSTIN + FY (YYYY-YY of the document date) + Typ + No, lower-case hex (§1.1)."""
    return hashlib.sha256(f"{gstin}{fy}{doc_type}{number}".encode()).hexdigest()


def rupees(paise: int) -> Decimal:
    """Exact rupees with two decimals from integer paise (no float arithmetic)."""
    return (Decimal(int(paise)) / 100).quantize(Decimal("0.01"))


def _amount(paise: int) -> float:
    """A JSON number for the wire. The value is exact: computed in integer paise, divided as a
    Decimal, and only then written as a double — a 2-decimal value up to 999999999999.99 (the
    schema's maximum, 15 significant digits) round-trips through a double unchanged."""
    return float(rupees(paise))


def _rate(rate: Decimal) -> float | int:
    value = Decimal(rate).normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def parse_turnover(text: str | None) -> int:
    """Aggregate turnover in rupees ('6,25,00,000' or '62500000.50') → paise; ValueError with a message."""
    return parse_rupees(text, what="the turnover", example="62500000 or 6,25,00,000", maximum=10**11 - 1,
                        negative=False)


def ineligible_reason(bill: Bill, org: Organization) -> str | None:
    """Why this bill is not e-invoiced, or None when it must be."""
    if bill.doc_type != "tax_invoice":
        return "A bill of supply (exempt services) is never e-invoiced."
    if not bill.recipient_gstin:
        return "Only invoices to a registered business (with a GSTIN) are e-invoiced."
    if bill.status == "cancelled" or bill.cancelled_at is not None:
        return "This invoice is cancelled."
    if not org.einvoice_enabled:
        return "E-invoicing is switched off for this organization."
    return None


def decode_signed_qr(signed_qr: str | None) -> dict[str, Any] | None:
    """The fields inside the IRP's SignedQRCode: a JWS whose payload is {"data": "<JSON>",
    "iss": "NIC"} and whose data holds ten keys (SellerGstin … IrnDt, india.md §1.4). The RS256
    signature is the IRP's; it is not verified here (NIC's public key is not configured) —
    a scanner app checks it."""
    if not signed_qr or signed_qr.count(".") != 2:
        return None
    try:
        middle = signed_qr.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(middle + "=" * (-len(middle) % 4)))
        data = payload.get("data")
        data = json.loads(data) if isinstance(data, str) else data
    except (ValueError, binascii.Error, AttributeError):
        return None
    if not isinstance(data, dict):
        return None
    return {**data, "_iss": payload.get("iss")}


def signed_qr_svg(einvoice: EInvoice | None, *, scale: int = 2) -> str | None:
    """An inline SVG of the IRP's signed QR, for the printed tax invoice (None until generated).
    The 4-module quiet zone is what a phone needs to read a dense code off paper."""
    if einvoice is None or not einvoice.signed_qr or einvoice.status not in ("generated", "cancelled"):
        return None
    return _qr_svg(einvoice.signed_qr, scale)


# A signed QR (~1,000 characters, QR version ~22) takes segno ~380 ms to draw in pure Python;
# the detail page and every reprint of the invoice PDF draw the same one, so recent ones are kept.
@functools.lru_cache(maxsize=128)
def _qr_svg(text: str, scale: int) -> str:
    import segno

    return segno.make(text, error="l").svg_inline(scale=scale, border=4)


# ---------------------------------------------------------------- INV-01 v1.1

@dataclass
class Party:
    gstin: str
    legal_name: str
    addr1: str
    addr2: str
    location: str
    pin: int | None
    state_code: str


def _address_parts(address: str) -> tuple[str, str, str, int | None]:
    """(Addr1, Addr2, Loc, Pin) from a free-text address: the PIN is the 6-digit number in it,
    the locality its last part (the city line, without the PIN)."""
    text = (address or "").strip()
    match = PIN_RE.search(text)
    pin = int(match.group(1)) if match else None
    parts = [p.strip(" ,-.") for p in re.split(r"[\n,]+", PIN_RE.sub("", text))]
    parts = [p for p in parts if p]
    if not parts:
        return "", "", "", pin
    location = parts[-1] if len(parts) > 1 else ""
    lines = parts[:-1] if len(parts) > 1 else parts
    addr1 = ", ".join(lines)
    return addr1[:100], "", location[:50], pin


def seller(org: Organization, branch: Branch | None) -> Party:
    return Party(gstin=(org.gstin or "").upper(), legal_name=org.legal_name, addr1=org.address_line1 or "",
                 addr2=org.address_line2 or "", location=org.city or "",
                 pin=int(org.pin_code) if (org.pin_code or "").isdigit() else None, state_code=org.state_code)


def buyer(bill: Bill, client: Client | None) -> Party:
    addr1, addr2, location, pin = _address_parts(client.address if client else "")
    gstin = (bill.recipient_gstin or "").upper()
    state = (client.state_code if client and client.state_code else gstin[:2])
    return Party(gstin=gstin, legal_name=bill.recipient_name, addr1=addr1, addr2=addr2, location=location,
                 pin=pin, state_code=state)


def _party_json(p: Party, *, pos: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"Gstin": p.gstin, "LglNm": p.legal_name[:100]}
    if pos is not None:
        data["Pos"] = pos
    data.update({"Addr1": p.addr1[:100], "Loc": p.location[:50], "Pin": p.pin, "Stcd": p.state_code})
    if p.addr2:
        data["Addr2"] = p.addr2[:100]
    return data


def _client_of(bill: Bill) -> Client | None:
    if bill.client_id:
        return db.session.get(Client, bill.client_id)
    return bill.order.client if bill.order is not None else None


def _item(position: int, description: str, sac: str, gross: int, discount: int, taxable: int, rate: Decimal,
          cgst: int, sgst: int, igst: int, total: int) -> dict[str, Any]:
    return {"SlNo": str(position), "PrdDesc": description[:300], "IsServc": "Y", "HsnCd": sac,
            "Qty": 1, "Unit": "OTH", "UnitPrice": _amount(gross), "TotAmt": _amount(gross),
            "Discount": _amount(discount), "AssAmt": _amount(taxable), "GstRt": _rate(rate),
            "CgstAmt": _amount(cgst), "SgstAmt": _amount(sgst), "IgstAmt": _amount(igst),
            "TotItemVal": _amount(total)}


def _val_dtls(items: list[dict[str, Any]], total_paise: int) -> dict[str, Any]:
    # Sum in paise (from the Decimal strings), never as floats.
    def total(key: str) -> int:
        return sum(int(Decimal(str(i[key])) * 100) for i in items)

    # The discount is already inside each line's AssAmt (allocated per line at billing), so the
    # invoice-level ValDtls.Discount is 0: the IRP subtracts it from TotInvVal a second time.
    return {"AssVal": _amount(total("AssAmt")), "CgstVal": _amount(total("CgstAmt")),
            "SgstVal": _amount(total("SgstAmt")), "IgstVal": _amount(total("IgstAmt")), "Discount": 0,
            "TotInvVal": _amount(total_paise)}


def build_inv01(bill: Bill, org: Organization | None = None) -> dict[str, Any]:
    """The INV-01 v1.1 JSON for a tax invoice (india.md §1.3): services (IsServc Y, HsnCd = SAC),
    amounts in rupees with two decimals computed from paise."""
    org = org or db.session.get(Organization, bill.org_id)
    branch = db.session.get(Branch, bill.branch_id)
    sell, buy = seller(org, branch), buyer(bill, _client_of(bill))
    items = [_item(l.position, l.description, l.sac_code, l.gross_paise, l.discount_paise, l.taxable_paise,
                   l.gst_rate, l.cgst_paise, l.sgst_paise, l.igst_paise, l.total_paise) for l in bill.lines]
    return {
        "Version": "1.1",
        "TranDtls": {"TaxSch": "GST", "SupTyp": "B2B", "RegRev": "N"},
        "DocDtls": {"Typ": "INV", "No": bill.number, "Dt": bill.bill_date.strftime("%d/%m/%Y")},
        "SellerDtls": _party_json(sell),
        "BuyerDtls": _party_json(buy, pos=bill.place_of_supply),
        "ItemList": items,
        "ValDtls": _val_dtls(items, bill.total_paise),
    }


def build_crn(note: CreditNote, org: Organization | None = None) -> dict[str, Any]:
    """A credit note (Typ CRN) against an e-invoiced tax invoice, with RefDtls.PrecDocDtls naming
    the invoice. Lines come from CreditNote.lines (per bill line); without them, one line at the
    invoice's rate carries the note's totals."""
    bill = note.bill
    org = org or db.session.get(Organization, note.org_id)
    sell, buy = seller(org, None), buyer(bill, _client_of(bill))
    items = []
    for i, line in enumerate(note.lines or [], start=1):
        taxable = int(line.get("taxable_paise", 0))
        items.append(_item(int(line.get("position", i)), str(line.get("description", "Credit")),
                           str(line.get("sac_code", "")), taxable, 0, taxable,
                           Decimal(str(line.get("gst_rate", "0"))), int(line.get("cgst_paise", 0)),
                           int(line.get("sgst_paise", 0)), int(line.get("igst_paise", 0)),
                           int(line.get("total_paise", taxable + int(line.get("cgst_paise", 0))
                                        + int(line.get("sgst_paise", 0)) + int(line.get("igst_paise", 0))))))
    if not items:
        main = max(bill.lines, key=lambda l: l.taxable_paise) if bill.lines else None
        items.append(_item(1, f"Credit against {bill.number}: {note.reason}", main.sac_code if main else "",
                           note.taxable_paise, 0, note.taxable_paise, main.gst_rate if main else Decimal("0"),
                           note.cgst_paise, note.sgst_paise, note.igst_paise, note.total_paise))
    return {
        "Version": "1.1",
        "TranDtls": {"TaxSch": "GST", "SupTyp": "B2B", "RegRev": "N"},
        "DocDtls": {"Typ": "CRN", "No": note.number, "Dt": note.note_date.strftime("%d/%m/%Y")},
        "SellerDtls": _party_json(sell),
        "BuyerDtls": _party_json(buy, pos=bill.place_of_supply),
        "ItemList": items,
        "ValDtls": _val_dtls(items, note.total_paise),
        "RefDtls": {"PrecDocDtls": [{"InvNo": bill.number, "InvDt": bill.bill_date.strftime("%d/%m/%Y")}]},
    }


def _gstin_problem(value: str) -> str | None:
    from app.services.catalogue_admin import validate_gstin

    try:
        validate_gstin(value)
    except ValueError as err:
        return str(err)
    return None


def validate(payload: dict[str, Any], *, today: date | None = None, turnover_paise: int = 0) -> list[dict[str, str]]:
    """Our own checks of an INV-01 document against the schema and the IRP's arithmetic rules,
    each as {"code": "LOCAL", "field", "message"} written for the clerk."""
    errors: list[dict[str, str]] = []

    def err(field: str, message: str) -> None:
        errors.append({"code": "LOCAL", "field": field, "message": message})

    doc, sell, buy = payload["DocDtls"], payload["SellerDtls"], payload["BuyerDtls"]
    if not DOC_NO_RE.match(doc["No"] or ""):
        err("DocDtls.No", f"Document number {doc['No']!r} breaks the e-invoice rule: at most 16 characters, "
                          "A–Z, 0–9, / and -, not starting with 0, / or -.")
    doc_date = datetime.strptime(doc["Dt"], "%d/%m/%Y").date()
    today = today or today_in_india()
    if doc_date > today:
        err("DocDtls.Dt", "The document date is in the future.")
    if turnover_paise >= THIRTY_DAY_RULE_PAISE and doc_date < today - REPORTING_WINDOW:
        err("DocDtls.Dt", "With turnover of ₹10 crore or more a document cannot be reported more than 30 days "
                          "after its date (GSTN advisory, 5 Nov 2024).")
    for who, party in (("Seller", sell), ("Buyer", buy)):
        label = "your organization's" if who == "Seller" else "the client's"
        problem = _gstin_problem(party["Gstin"]) if party["Gstin"] != "URP" else None
        if not party["Gstin"]:
            err(f"{who}Dtls.Gstin", f"Add {label} GSTIN.")
        elif problem:
            err(f"{who}Dtls.Gstin", f"{who} GSTIN {party['Gstin']}: {problem}")
        if not 3 <= len(party["LglNm"]) <= 100:
            err(f"{who}Dtls.LglNm", f"{who} legal name must be 3 to 100 characters.")
        if not 1 <= len(party["Addr1"]) <= 100:
            err(f"{who}Dtls.Addr1", f"Add {label} address (building and street).")
        if not 3 <= len(party["Loc"]) <= 50:
            err(f"{who}Dtls.Loc", f"Add {label} city or locality (3 to 50 characters)"
                                  + (" as the last line of its address." if who == "Buyer" else "."))
        if not (isinstance(party["Pin"], int) and 100000 <= party["Pin"] <= 999999):
            err(f"{who}Dtls.Pin", f"Add {label} 6-digit PIN code" + (" to its address." if who == "Buyer" else "."))
        if not re.fullmatch(r"[0-9]{1,2}", party["Stcd"] or ""):
            err(f"{who}Dtls.Stcd", f"{who} state code is missing.")
        elif party["Gstin"][:2].isdigit() and party["Gstin"][:2] != party["Stcd"].zfill(2) and who == "Seller":
            err("SellerDtls.Stcd", f"Your state code {party['Stcd']} differs from your GSTIN's ({party['Gstin'][:2]}).")
    if buy["Gstin"] and not BUYER_GSTIN_RE.match(buy["Gstin"]):
        err("BuyerDtls.Gstin", "The client's GSTIN is not in the e-invoice format.")
    if buy["Gstin"] and buy["Gstin"] == sell["Gstin"]:
        err("BuyerDtls.Gstin", "The buyer's GSTIN is the same as yours.")
    if not re.fullmatch(r"[0-9]{2}", buy.get("Pos") or ""):
        err("BuyerDtls.Pos", "The place of supply (state code) is missing.")
    intra = buy.get("Pos") == sell["Stcd"]
    items = payload["ItemList"]
    if not items:
        err("ItemList", "The document has no lines.")

    def paise(value: Any) -> int:
        return int(Decimal(str(value)) * 100)

    for item in items:
        where = f"Line {item['SlNo']}"
        if not HSN_RE.match(item["HsnCd"] or "") or not item["HsnCd"].startswith("99"):
            err(f"ItemList.{item['SlNo']}.HsnCd", f"{where}: {item['HsnCd']!r} is not a SAC code (services start with 99).")
        if Decimal(str(item["GstRt"])) not in GST_RATES:
            err(f"ItemList.{item['SlNo']}.GstRt", f"{where}: {item['GstRt']}% is not a GST rate.")
        if paise(item["AssAmt"]) != paise(item["TotAmt"]) - paise(item["Discount"]):
            err(f"ItemList.{item['SlNo']}.AssAmt", f"{where}: taxable value is not amount less discount.")
        tax = paise(item["CgstAmt"]) + paise(item["SgstAmt"]) + paise(item["IgstAmt"])
        if paise(item["TotItemVal"]) != paise(item["AssAmt"]) + tax:
            err(f"ItemList.{item['SlNo']}.TotItemVal", f"{where}: total is not taxable value plus tax.")
        if intra and paise(item["IgstAmt"]):
            err(f"ItemList.{item['SlNo']}.IgstAmt", f"{where}: IGST on a supply within the state (use CGST+SGST).")
        if not intra and (paise(item["CgstAmt"]) or paise(item["SgstAmt"])):
            err(f"ItemList.{item['SlNo']}.CgstAmt", f"{where}: CGST/SGST on a supply to another state (use IGST).")
    vals = payload["ValDtls"]
    for key, item_key in (("AssVal", "AssAmt"), ("CgstVal", "CgstAmt"), ("SgstVal", "SgstAmt"), ("IgstVal", "IgstAmt")):
        if paise(vals[key]) != sum(paise(i[item_key]) for i in items):
            err(f"ValDtls.{key}", f"Invoice {key} does not equal the sum of its lines.")
    expected = paise(vals["AssVal"]) + paise(vals["CgstVal"]) + paise(vals["SgstVal"]) + paise(vals["IgstVal"]) \
        - paise(vals["Discount"])
    if paise(vals["TotInvVal"]) != expected:
        err("ValDtls.TotInvVal", "The invoice total does not equal taxable value plus tax.")
    return errors


# ---------------------------------------------------------------- the row and its queue

def _queue():  # type: ignore[no-untyped-def]
    return jobs.rq_queue(QUEUE)


def queue_job(einvoice_id: int, *, delay: timedelta | None = None) -> None:
    kwargs = dict(job_timeout=120, result_ttl=3600, failure_ttl=7 * 86400, description=f"e-invoice {einvoice_id}")
    if delay:
        _queue().enqueue_in(delay, JOB, einvoice_id, **kwargs)
    else:
        _queue().enqueue(JOB, einvoice_id, **kwargs)


_after_commit = jobs.AfterCommit("einvoices", queue_job)


def einvoice_for_bill(bill_id: int) -> EInvoice | None:
    return db.session.execute(select(EInvoice).where(EInvoice.bill_id == bill_id)).scalar_one_or_none()


def einvoice_for_credit_note(note_id: int) -> EInvoice | None:
    return db.session.execute(select(EInvoice).where(EInvoice.credit_note_id == note_id)).scalar_one_or_none()


def _seller_gstin(org: Organization) -> str:
    return (org.gstin or "").upper()


def queue_einvoice(bill: Bill) -> EInvoice | None:
    """The bill's e-invoice row, made once (None for a bill that is never e-invoiced); its job is
    queued after the caller commits. Safe to call again: the row already there is returned."""
    org = db.session.get(Organization, bill.org_id)
    if ineligible_reason(bill, org) is not None:
        return None
    existing = einvoice_for_bill(bill.id)
    if existing is not None:
        return existing
    row = EInvoice(org_id=bill.org_id, bill_id=bill.id, doc_type="INV", status="queued",
                   local_irn=compute_irn(_seller_gstin(org), financial_year(bill.bill_date), "INV", bill.number),
                   payload={}, response={}, errors=[], attempts=0, next_attempt_at=utcnow())
    try:
        with db.session.begin_nested():  # a concurrent queue of the same bill: the unique index decides
            db.session.add(row)
    except IntegrityError:
        return einvoice_for_bill(bill.id)
    audit.record("einvoice.queued", entity_type="bill", entity_id=bill.number,
                 after={"einvoice_id": row.id, "doc_type": "INV", "local_irn": row.local_irn})
    _after_commit.add(row.id)
    return row


def queue_credit_note(note: CreditNote) -> EInvoice | None:
    """A credit note is reported when its invoice was e-invoiced (an IRN exists)."""
    org = db.session.get(Organization, note.org_id)
    original = einvoice_for_bill(note.bill_id)
    if not org.einvoice_enabled or original is None or original.status not in ("generated",):
        return None
    existing = einvoice_for_credit_note(note.id)
    if existing is not None:
        return existing
    row = EInvoice(org_id=note.org_id, credit_note_id=note.id, doc_type="CRN", status="queued",
                   local_irn=compute_irn(_seller_gstin(org), financial_year(note.note_date), "CRN", note.number),
                   payload={}, response={}, errors=[], attempts=0, next_attempt_at=utcnow())
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return einvoice_for_credit_note(note.id)
    audit.record("einvoice.queued", entity_type="credit_note", entity_id=note.number,
                 after={"einvoice_id": row.id, "doc_type": "CRN", "local_irn": row.local_irn})
    _after_commit.add(row.id)
    return row


def submit_bill(bill: Bill) -> EInvoice:
    """The clerk's "Send to IRP": queue a bill not yet queued, or send a rejected one again."""
    org = db.session.get(Organization, bill.org_id)
    reason = ineligible_reason(bill, org)
    if reason:
        raise EInvoiceRefused(reason)
    row = einvoice_for_bill(bill.id)
    if row is None:
        return queue_einvoice(bill)  # type: ignore[return-value]
    return retry(row)


def retry(row: EInvoice) -> EInvoice:
    """Send a rejected (or waiting) document again now, with fresh attempts. Audited."""
    locked = _lock(row.id, skip_locked=False)
    if locked.status not in ("rejected", "retrying", "queued"):
        raise EInvoiceRefused({"generated": "This document already has an IRN.",
                               "cancelled": "This IRN is cancelled; a cancelled number cannot be reported again.",
                               "submitting": "This document is being sent right now."}.get(locked.status,
                                                                                           "It cannot be sent now."))
    before = {"status": locked.status, "attempts": locked.attempts, "errors": locked.errors}
    locked.status, locked.attempts, locked.next_attempt_at, locked.errors = "queued", 0, utcnow(), []
    audit.record("einvoice.retried", entity_type="einvoice", entity_id=locked.id, before=before,
                 after={"status": "queued"})
    db.session.flush()
    _after_commit.add(locked.id)
    return locked


def _lock(einvoice_id: int, *, skip_locked: bool = True) -> EInvoice | None:
    return db.session.execute(select(EInvoice).where(EInvoice.id == einvoice_id)
                              .with_for_update(skip_locked=skip_locked)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF_BASE * 2 ** max(0, attempts - 1))


def client_for(org: Organization) -> irp.IrpClient | None:
    return irp.IrpClient.from_config(current_app.config, gstin=_seller_gstin(org))


def _document(row: EInvoice) -> tuple[Any, str, date, str | None]:
    """(document, number, date, why it may not be reported) for the row's bill or credit note."""
    org = db.session.get(Organization, row.org_id)
    if row.bill_id is not None:
        bill = db.session.get(Bill, row.bill_id)
        return bill, bill.number, bill.bill_date, ineligible_reason(bill, org)
    note = db.session.get(CreditNote, row.credit_note_id)
    why = None if org.einvoice_enabled else "E-invoicing is switched off for this organization."
    return note, note.number, note.note_date, why


def _entity(row: EInvoice) -> tuple[str, str]:
    document, number, _, _ = _document(row)
    return ("bill" if row.bill_id else "credit_note"), number


# ---------------------------------------------------------------- the job body

def submit(einvoice_id: int) -> str:
    """Report one document to the IRP. Safe to run twice or in two workers at once. Returns
    'generated', 'retry', 'rejected', 'not-configured', or why nothing was done ('missing',
    'busy', 'not-due', or the row's status when it is not waiting)."""
    session = db.session
    org_id = tenant_of_row(session, EInvoice, einvoice_id)
    if org_id is None:
        return "missing"
    with audit.acting_as(audit.AuditContext(actor_label="system:einvoice", org_id=org_id)):
        row = _lock(einvoice_id)
        if row is None:
            session.rollback()
            return "busy"
        if row.status not in ("queued", "retrying"):
            session.rollback()
            return row.status
        if row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(seconds=1):
            session.rollback()
            return "not-due"
        org = session.get(Organization, org_id)
        document, number, _, why = _document(row)
        if why:
            return _reject(row, [{"code": "LOCAL", "field": "", "message": why}], {})
        payload = build_inv01(document, org) if row.bill_id else build_crn(document, org)
        problems = validate(payload, turnover_paise=org.aggregate_turnover_paise)
        row.payload = payload
        if problems:
            return _reject(row, problems, {})
        client = client_for(org)
        if client is None:  # visible on the page; tried again once the settings are there
            row.errors = [{"code": "CONFIG", "field": "", "message": "The IRP connection is not configured "
                           "(IRP_API_BASE, IRP_CLIENT_ID, IRP_CLIENT_SECRET, IRP_USERNAME, IRP_PASSWORD)."}]
            row.next_attempt_at = utcnow() + NOT_CONFIGURED_WAIT
            session.commit()
            return "not-configured"
        # Durable before the side effect: a second job finds 'submitting' and leaves it alone;
        # a worker killed here leaves it for the sweep, which sends again (the IRP's duplicate
        # answer then tells us the IRN it already made).
        row.status, row.attempts, row.next_attempt_at = "submitting", row.attempts + 1, utcnow()
        session.commit()
        try:
            data = client.generate(payload)
        except irp.IrpError as err:
            session.rollback()
            duplicate = irp.duplicate_details(err)
            if duplicate is not None:
                return _duplicate(einvoice_id, client, duplicate, err)
            if err.retryable:
                return _failed(einvoice_id, err)
            return _reject(_lock(einvoice_id, skip_locked=False), err.errors, err.raw)
        except Exception as err:  # a bug or bad data: keep it visible and try again later
            session.rollback()
            log.exception("e-invoice %s: unexpected error", einvoice_id)
            return _failed(einvoice_id, irp.IrpError(f"unexpected error ({type(err).__name__})", retryable=True))
        return _generated(einvoice_id, data, warnings=[])


def _generated(einvoice_id: int, data: dict[str, Any], *, warnings: list[dict[str, str]]) -> str:
    session = db.session
    row = _lock(einvoice_id, skip_locked=False)
    irn = str(data.get("Irn") or "")
    if irn and irn != row.local_irn:
        # The IRP's IRN is the one that counts (india.md §1.1); ours differing means the GSTIN,
        # FY, type or number it hashed is not what we think we sent.
        warnings = warnings + [{"code": "IRN_MISMATCH", "level": "warning", "field": "",
                                "message": f"The IRP's IRN differs from ours ({row.local_irn[:12]}…): kept the "
                                           "IRP's. Check the GSTIN and document number."}]
    row.status, row.irn = "generated", irn or None
    row.ack_no = str(data.get("AckNo") or "")[:20] or None
    row.ack_dt = str(data.get("AckDt") or "")[:19] or None
    row.signed_qr = data.get("SignedQRCode") or row.signed_qr
    row.signed_invoice = data.get("SignedInvoice") or row.signed_invoice
    row.response = {k: v for k, v in data.items() if k not in ("SignedInvoice", "SignedQRCode")}
    row.errors, row.generated_at, row.next_attempt_at = warnings, utcnow(), None
    entity_type, number = _entity(row)
    audit.record("einvoice.generated", entity_type=entity_type, entity_id=number, before={"status": "submitting"},
                 after={"einvoice_id": row.id, "irn": row.irn, "ack_no": row.ack_no, "ack_dt": row.ack_dt,
                        "irn_matches": row.irn == row.local_irn})
    session.commit()
    return "generated"


def _duplicate(einvoice_id: int, client: irp.IrpClient, duplicate: dict[str, str], err: irp.IrpError) -> str:
    """Error 2150: the IRP already has this document (our earlier answer was lost). Accept its
    IRN when it is the one this document hashes to; then fetch the signed QR it did not resend."""
    row = _lock(einvoice_id, skip_locked=False)
    if duplicate["Irn"] != row.local_irn:
        return _reject(row, err.errors + [{"code": "IRN_MISMATCH", "field": "", "message":
                       "The IRP says this number was already reported with a different IRN: check the GSTIN "
                       "and the document number before sending again."}], err.raw)
    db.session.rollback()
    data = dict(duplicate)
    warnings: list[dict[str, str]] = []
    try:
        data.update({k: v for k, v in client.get_by_irn(duplicate["Irn"]).items() if v})
    except irp.IrpError as get_err:
        warnings.append({"code": "QR_PENDING", "level": "warning", "field": "",
                         "message": f"The IRN is known but its signed QR could not be fetched yet ({get_err.message})."})
    return _generated(einvoice_id, data, warnings=warnings)


def _failed(einvoice_id: int, err: irp.IrpError) -> str:
    session = db.session
    row = _lock(einvoice_id, skip_locked=False)
    row.response = err.raw or {}
    note = {"code": str(err.status or "NETWORK"), "field": "", "message": err.message}
    if row.attempts < MAX_ATTEMPTS:
        delay = backoff(row.attempts)
        row.status, row.next_attempt_at, row.errors = "retrying", utcnow() + delay, [note]
        session.commit()
        try:
            queue_job(einvoice_id, delay=delay)
        except Exception:
            log.warning("e-invoice %s retry not scheduled; the sweep will pick it up", einvoice_id)
        return "retry"
    return _reject(row, [note, {"code": "GAVE_UP", "field": "", "message":
                                f"The IRP could not be reached after {row.attempts} attempts. Send it again."}],
                   err.raw or {})


def _reject(row: EInvoice, errors: list[dict[str, str]], response: dict[str, Any]) -> str:
    """The document is not reported: the errors go to the clerk; nothing else changes."""
    before = row.status
    row.status, row.errors, row.next_attempt_at = "rejected", errors, None
    if response:
        row.response = response
    entity_type, number = _entity(row)
    audit.record("einvoice.rejected", entity_type=entity_type, entity_id=number, before={"status": before},
                 after={"einvoice_id": row.id, "errors": [f"{e.get('code')}: {e.get('message')}"[:200]
                                                          for e in errors][:10]})
    db.session.commit()
    return "rejected"


# ---------------------------------------------------------------- cancel (clerk, synchronous)

def ack_time(row: EInvoice) -> datetime | None:
    """AckDt ('yyyy-MM-dd HH:mm:ss', India time as the IRP sends it) as an aware datetime."""
    if not row.ack_dt:
        return None
    try:
        return datetime.strptime(row.ack_dt, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return None


def cancellable_until(row: EInvoice) -> datetime | None:
    ack = ack_time(row)
    return ack + CANCEL_WINDOW if ack else None


def can_cancel(row: EInvoice, now: datetime | None = None) -> bool:
    until = cancellable_until(row)
    return row.status == "generated" and until is not None and (now or datetime.now(timezone.utc)) < until


def cancel(row: EInvoice, *, reason: str, remark: str, now: datetime | None = None) -> EInvoice:
    """Cancel the IRN at the IRP (reason 1–4 and a remark), within 24 hours of its
    acknowledgement (india.md §1.5). An IRP refusal is shown as it is and nothing changes here."""
    reason, remark = (reason or "").strip(), " ".join((remark or "").split())
    if reason not in irp.CANCEL_REASONS:
        raise EInvoiceRefused("Choose why the e-invoice is cancelled.", field="reason")
    if not 3 <= len(remark) <= 100:
        raise EInvoiceRefused("Write a remark of 3 to 100 characters.", field="remark")
    locked = _lock(row.id, skip_locked=False)
    if locked.status != "generated" or not locked.irn:
        raise EInvoiceRefused("Only an e-invoice with an IRN can be cancelled.")
    until = cancellable_until(locked)
    if until is None or (now or datetime.now(timezone.utc)) >= until:
        raise EInvoiceRefused("An IRN can be cancelled only within 24 hours of its acknowledgement "
                              f"({locked.ack_dt or 'unknown'}). Issue a credit note instead.")
    org = db.session.get(Organization, locked.org_id)
    client = client_for(org)
    if client is None:
        raise EInvoiceRefused("The IRP connection is not configured, so the IRN cannot be cancelled.")
    try:
        data = client.cancel(locked.irn, reason=reason, remark=remark)
    except irp.IrpError as err:
        prefix = "The IRP could not be reached; try again in a minute." if err.retryable else "The IRP refused: "
        raise EInvoiceRefused(prefix if err.retryable else prefix + err.message) from None
    before = {"status": locked.status, "irn": locked.irn}
    locked.status, locked.cancelled_at = "cancelled", utcnow()
    locked.cancel_reason = f"{reason} {irp.CANCEL_REASONS[reason]}: {remark}"[:100]
    locked.response = {**(locked.response or {}), "cancel": data}
    entity_type, number = _entity(locked)
    audit.record("einvoice.cancelled", entity_type=entity_type, entity_id=number, before=before,
                 after={"status": "cancelled", "reason": locked.cancel_reason,
                        "cancel_date": data.get("CancelDate")})
    db.session.flush()
    return locked


# ---------------------------------------------------------------- settings

def update_settings(org: Organization, *, enabled: bool, turnover_paise: int) -> Organization:
    """Switch e-invoicing on or off and record the aggregate turnover. Audited."""
    if turnover_paise < 0:
        raise ServiceError("Turnover cannot be negative.", field="turnover")
    before = {"einvoice_enabled": org.einvoice_enabled, "aggregate_turnover_paise": org.aggregate_turnover_paise}
    org.einvoice_enabled, org.aggregate_turnover_paise = enabled, turnover_paise
    audit.record("organization.einvoice_settings", entity_type="organization", entity_id=org.id, org_id=org.id,
                 before=before, after={"einvoice_enabled": enabled, "aggregate_turnover_paise": turnover_paise})
    db.session.flush()
    return org


def threshold_note(org: Organization) -> str:
    if org.aggregate_turnover_paise > THRESHOLD_PAISE and not org.einvoice_enabled:
        return "Your turnover is above ₹5 crore: B2B tax invoices must be e-invoiced. Switch it on."
    if org.aggregate_turnover_paise <= THRESHOLD_PAISE and org.einvoice_enabled:
        return "Your recorded turnover is not above ₹5 crore; e-invoicing is on by your choice."
    return ""


# ---------------------------------------------------------------- the clerk's list

def invoices(status: str = "", limit: int = 200) -> list[tuple[Bill, EInvoice | None]]:
    """B2B tax invoices (newest first) with their e-invoice row, if any. status '' = all,
    'none' = never sent, else an EInvoice status."""
    stmt = (select(Bill, EInvoice).outerjoin(EInvoice, EInvoice.bill_id == Bill.id)
            .where(Bill.doc_type == "tax_invoice", Bill.recipient_gstin.is_not(None))
            .order_by(Bill.bill_date.desc(), Bill.id.desc()).limit(limit))
    if status == "none":
        stmt = stmt.where(EInvoice.id.is_(None))
    elif status in STATUS_LABELS:
        stmt = stmt.where(EInvoice.status == status)
    return [(b, e) for b, e in db.session.execute(stmt).all()]


def credit_note_rows(limit: int = 100) -> list[tuple[CreditNote, EInvoice]]:
    stmt = (select(CreditNote, EInvoice).join(EInvoice, EInvoice.credit_note_id == CreditNote.id)
            .order_by(EInvoice.id.desc()).limit(limit))
    return [(n, e) for n, e in db.session.execute(stmt).all()]


# ---------------------------------------------------------------- sweep (periodic)

def sweep() -> dict[str, int]:
    """Periodic (workers/schedule.py): make rows for eligible invoices and for credit notes of
    e-invoiced invoices not queued yet (within the 30-day reporting window), queue due rows whose job was lost, and send again the rows a killed
    worker left 'submitting' (safe: the IRP answers a repeat with the IRN it already made)."""
    session = db.session
    use_tenant(session, None)
    now = utcnow()
    since = today_in_india() - REPORTING_WINDOW
    missing = session.execute(
        select(Bill.id, Bill.org_id).join(Organization, Organization.id == Bill.org_id)
        .outerjoin(EInvoice, and_(EInvoice.bill_id == Bill.id))
        .where(Organization.einvoice_enabled.is_(True), Bill.doc_type == "tax_invoice",
               Bill.recipient_gstin.is_not(None), Bill.status != "cancelled", Bill.bill_date >= since,
               EInvoice.id.is_(None))
        .limit(500).execution_options(all_tenants=True)).all()
    original = aliased(EInvoice)
    notes = session.execute(
        select(CreditNote.id, CreditNote.org_id).join(Organization, Organization.id == CreditNote.org_id)
        .join(original, and_(original.bill_id == CreditNote.bill_id, original.status == "generated"))
        .outerjoin(EInvoice, EInvoice.credit_note_id == CreditNote.id)
        .where(Organization.einvoice_enabled.is_(True), CreditNote.note_date >= since, EInvoice.id.is_(None))
        .limit(500).execution_options(all_tenants=True)).all()
    due = session.execute(select(EInvoice.id).where(EInvoice.status.in_(("queued", "retrying")),
                                                    EInvoice.next_attempt_at <= now - SWEEP_GRACE)
                          .order_by(EInvoice.next_attempt_at).limit(1000)
                          .execution_options(all_tenants=True)).scalars().all()
    stuck = session.execute(select(EInvoice.id, EInvoice.org_id).where(
        EInvoice.status == "submitting", EInvoice.next_attempt_at < now - STUCK_SUBMITTING)
        .limit(500).execution_options(all_tenants=True)).all()
    session.rollback()
    made = 0
    enrol = [(Bill, queue_einvoice, row) for row in missing] + [(CreditNote, queue_credit_note, row) for row in notes]
    for model, queue, (doc_id, org_id) in enrol:
        use_tenant(session, org_id)
        with audit.acting_as(audit.AuditContext(actor_label="system:einvoice", org_id=org_id)):
            document = session.get(model, doc_id)
            if document is not None and queue(document) is not None:
                made += 1
            session.commit()
    for einvoice_id, org_id in stuck:
        use_tenant(session, org_id)
        with audit.acting_as(audit.AuditContext(actor_label="system:einvoice", org_id=org_id)):
            row = _lock(einvoice_id)
            if row is not None and row.status == "submitting":
                row.status, row.next_attempt_at = "retrying", utcnow()
                row.errors = [{"code": "INTERRUPTED", "field": "", "message":
                               "Sending was interrupted; sent again (the IRP recognises a repeat)."}]
                _after_commit.add(row.id)
            session.commit()
    use_tenant(session, None)
    for einvoice_id in due:
        queue_job(einvoice_id)
    return {"created": made, "queued": len(due), "interrupted": len(stuck)}
