"""Statement parsers for reconciliation: Razorpay settlement recon rows (CSV or the API's JSON)
and bank statement CSVs read through a saved per-bank column mapping.

Parsers are pure (no database): they turn a file into `ParsedLine`s and refuse a bad file
with a message that names the row and the column. `parse()` reads the WHOLE file before it
returns, so the caller never inserts a line of a file that turns out to be bad further down.

Sources for the formats (../shared/reference/india.md):
- §3.2: Razorpay's Settlement Recon API (`GET /v1/settlements/recon/combined`) item fields —
  entity_id, type (payment|refund|transfer|adjustment), debit, credit, amount, currency, fee,
  tax, on_hold, settled, created_at, settled_at, settlement_id, description, notes,
  payment_id, settlement_utr, order_id, order_receipt, method, … — all amounts in paise.
- §3.2: a UPI transaction's UTR/RRN is 12 digits; banks often print it only inside the
  narration ("UPI/412345678901/…"), so a bank line with no reference column value takes
  the first 12-digit number of its narration.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from app.services import ServiceError

IST = ZoneInfo("Asia/Kolkata")
MAX_ERRORS = 10  # a clerk needs the first few, not ten thousand
MAX_BYTES = 15 * 1024 * 1024
_PLAIN_RUPEES = re.compile(r"(\d{1,9})(?:\.(\d{1,2}))?")
UPI_RRN = re.compile(r"(?<!\d)(\d{12})(?!\d)")  # india.md §3.2: 12-digit UPI RRN / UTR

RAZORPAY_REQUIRED = ("entity_id", "type", "amount", "currency", "created_at")
RAZORPAY_FIELDS = ("entity_id", "type", "debit", "credit", "amount", "currency", "fee", "tax", "on_hold", "settled",
                   "created_at", "settled_at", "settlement_id", "description", "notes", "payment_id",
                   "settlement_utr", "order_id", "order_receipt", "method", "card_network", "card_issuer",
                   "card_type", "dispute_id")


class StatementInvalid(ServiceError):
    """The file cannot be imported; `errors` lists each problem with its row and column."""

    def __init__(self, errors: list[str]):
        self.errors = errors[:MAX_ERRORS]
        more = len(errors) - len(self.errors)
        message = " ".join(self.errors) + (f" (and {more} more problems)" if more > 0 else "")
        super().__init__("Nothing was imported. " + message, field="file")


class Mapping(Protocol):
    """What the bank parser needs of a BankMapping row (duck-typed so it stays pure)."""

    date_column: str
    date_format: str
    amount_column: str | None
    credit_column: str | None
    debit_column: str | None
    reference_column: str
    narration_column: str | None
    currency_column: str | None
    skip_rows: int


@dataclass(slots=True)
class ParsedLine:
    line_no: int  # the row number in the file as a spreadsheet shows it (header = row 1 + skip_rows)
    txn_date: date
    amount_paise: int  # credit positive, debit negative
    credit: bool  # a payment credit to be matched (else: a refund, adjustment, withdrawal)
    reference: str | None = None
    gateway_payment_id: str | None = None
    settlement_utr: str | None = None
    order_receipt: str | None = None
    fee_paise: int = 0
    tax_paise: int = 0
    narration: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- helpers

def decode(content: bytes) -> str:
    """Bank exports come as UTF-8 (often with a BOM) or Windows-1252."""
    if len(content) > MAX_BYTES:
        raise ServiceError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it by date.", field="file")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def rupees_to_paise(text: str) -> int:
    """'1,250.50', '₹ 1250.5', '1250.50 Cr', '(250.00)' or '250.00 Dr' → signed paise.
    Decimal, never float: money is exact (DESIGN.md)."""
    cleaned = text.replace("₹", "").replace(",", "").replace("INR", "").strip()
    plain = _PLAIN_RUPEES.fullmatch(cleaned)
    if plain:  # the common '1250.50': exact integer arithmetic, no Decimal needed
        whole, fraction = plain.group(1), (plain.group(2) or "").ljust(2, "0")
        return int(whole) * 100 + int(fraction or 0)
    sign = 1
    upper = cleaned.upper()
    if upper.endswith("CR"):
        cleaned = cleaned[:-2].strip()
    elif upper.endswith("DR"):
        cleaned, sign = cleaned[:-2].strip(), -1
    if cleaned.startswith("(") and cleaned.endswith(")"):
        cleaned, sign = cleaned[1:-1].strip(), -sign
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")) or abs(value) > Decimal("100000000"):
        raise ValueError
    return sign * int(value * 100)


def _paise_integer(text: str) -> int:
    """Razorpay amounts are whole paise (india.md §3.3: ₹500 → 50000)."""
    cleaned = text.strip()
    if not re.fullmatch(r"-?\d{1,15}", cleaned):
        raise ValueError
    return int(cleaned)


def _unix_or_iso_date(value: Any) -> date:
    """Razorpay's created_at is a Unix time (seconds); a CSV export may carry an ISO date."""
    text = _clean(value)
    if re.fullmatch(r"\d{9,11}", text):
        return datetime.fromtimestamp(int(text), tz=timezone.utc).astimezone(IST).date()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError


def _csv_rows(text: str, skip_rows: int = 0) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """(header, iterator of (spreadsheet row number, cells)); blank rows skipped."""
    lines = io.StringIO(text)
    for _ in range(skip_rows):
        lines.readline()
    first = lines.readline()
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    header = next(csv.reader([first], delimiter=delimiter), [])
    header = [h.strip() for h in header]
    reader = csv.reader(lines, delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in enumerate(reader, start=skip_rows + 2):
            if any(c.strip() for c in cells):
                yield number, cells

    return header, rows()


def _missing(header: list[str], wanted: list[str]) -> list[str]:
    present = set(header)
    return [c for c in wanted if c not in present]


# ---------------------------------------------------------------- Razorpay settlement recon

def looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _razorpay_items(text: str) -> tuple[list[str] | None, Iterator[tuple[int, dict[str, Any]]]]:
    if looks_like_json(text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StatementInvalid([f"The JSON is not valid (line {err.lineno}, column {err.colno})."]) from None
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise StatementInvalid(['The JSON has no "items" list (Settlement Recon API response expected).'])
        return None, ((n, item) for n, item in enumerate(items, start=1))
    header, rows = _csv_rows(text)
    missing = _missing(header, list(RAZORPAY_REQUIRED))
    if missing:
        raise StatementInvalid([f"The file has no column {', '.join(repr(m) for m in missing)} "
                                f"(Razorpay settlement recon columns expected: {', '.join(RAZORPAY_REQUIRED)}, …)."])
    return header, ((n, dict(zip(header, cells))) for n, cells in rows)


def check_razorpay_header(text: str) -> None:
    """Refuse at upload a file whose header is not a recon file's (cheap: reads one line)."""
    if looks_like_json(text):
        return  # validated in full by the job (a JSON file has no header line)
    _razorpay_items(text)


def parse_razorpay(text: str) -> Iterator[ParsedLine]:
    """Yield each recon row as a line; raise StatementInvalid at the end if any row was bad
    (the caller stages rows as they come and inserts none unless the whole file is good)."""
    header, items = _razorpay_items(text)
    row_word = "Row" if header is not None else "Item"
    errors: list[str] = []
    for number, item in items:
        if not isinstance(item, dict):
            errors.append(f"{row_word} {number}: not an object.")
            continue
        if header is None:
            missing = [c for c in RAZORPAY_REQUIRED if c not in item]
            if missing:
                errors.append(f"{row_word} {number}: no field {', '.join(repr(m) for m in missing)}.")
                continue
        line = _razorpay_line(number, item, row_word, errors)
        if line is not None and not errors:
            yield line
    if errors:
        raise StatementInvalid(errors)


def _razorpay_line(number: int, item: dict[str, Any], row_word: str, errors: list[str]) -> ParsedLine | None:
    where = f"{row_word} {number}"
    currency = _clean(item.get("currency")).upper()
    if currency != "INR":
        errors.append(f"{where}, column 'currency': {currency or 'empty'} — only INR statements are reconciled.")
        return None
    amounts: dict[str, int] = {}
    for name in ("amount", "fee", "tax", "debit", "credit"):
        value = item.get(name)
        text = _clean(value)
        if not text and name != "amount":
            amounts[name] = 0
            continue
        try:
            amounts[name] = value if isinstance(value, int) and not isinstance(value, bool) else _paise_integer(text)
        except ValueError:
            errors.append(f"{where}, column '{name}': '{text[:20]}' is not a whole number of paise.")
            return None
    try:
        day = _unix_or_iso_date(item.get("created_at"))
    except ValueError:
        errors.append(f"{where}, column 'created_at': '{_clean(item.get('created_at'))[:30]}' is not a date.")
        return None
    kind = _clean(item.get("type")).lower()
    if kind not in ("payment", "refund", "transfer", "adjustment"):
        errors.append(f"{where}, column 'type': '{kind[:20]}' is not payment, refund, transfer or adjustment.")
        return None
    amount = abs(amounts["amount"])
    # A refund (or any row Razorpay debits) takes money out: negative, never matched to a payment.
    negative = kind == "refund" or (amounts["debit"] > 0 and amounts["credit"] == 0)
    payment_id = _clean(item.get("payment_id")) or (_clean(item.get("entity_id")) if kind == "payment" else "")
    notes = item.get("notes")
    raw = {k: v for k, v in item.items() if v not in (None, "")}
    return ParsedLine(
        line_no=number, txn_date=day, amount_paise=-amount if negative else amount, credit=kind == "payment",
        reference=(payment_id or _clean(item.get("entity_id")))[:64] or None, gateway_payment_id=payment_id[:40] or None,
        settlement_utr=_clean(item.get("settlement_utr"))[:40] or None,
        order_receipt=_clean(item.get("order_receipt"))[:40] or None,
        fee_paise=amounts["fee"], tax_paise=amounts["tax"],
        narration=" · ".join(x for x in (kind, _clean(item.get("method")), _clean(item.get("description")),
                                         _clean(json.dumps(notes) if isinstance(notes, (dict, list)) else notes)) if x)[:400],
        raw=raw)


# ---------------------------------------------------------------- bank CSV through a mapping

def mapping_columns(mapping: Mapping) -> list[str]:
    """Every column the mapping names (all must be in the file's header)."""
    names = [mapping.date_column, mapping.reference_column, mapping.amount_column, mapping.credit_column,
             mapping.debit_column, mapping.narration_column, mapping.currency_column]
    return [n for n in names if n]


def check_bank_header(text: str, mapping: Mapping) -> list[str]:
    """The header row (after the mapping's skip_rows); refuses a file missing a mapped column."""
    header, _ = _csv_rows(text, mapping.skip_rows)
    missing = _missing(header, mapping_columns(mapping))
    if missing:
        shown = ", ".join(repr(h) for h in header[:12] if h) or "nothing"
        raise StatementInvalid([
            f"Row {mapping.skip_rows + 1} (the header) has no column {', '.join(repr(m) for m in missing)}; "
            f"it has {shown}. Check the bank mapping's column names and rows to skip."])
    return header


def parse_bank_csv(text: str, mapping: Mapping) -> Iterator[ParsedLine]:
    header = check_bank_header(text, mapping)
    _, rows = _csv_rows(text, mapping.skip_rows)
    index = {name: i for i, name in enumerate(header)}
    errors: list[str] = []
    dates: dict[str, date] = {}  # a statement has few distinct dates; strptime is the slow part
    for number, cells in rows:
        line = _bank_line(number, cells, index, mapping, errors, dates)
        if line is not None and not errors:
            yield line
    if errors:
        raise StatementInvalid(errors)


def _bank_line(number: int, cells: list[str], index: dict[str, int], mapping: Mapping,
               errors: list[str], dates: dict[str, date]) -> ParsedLine | None:
    def cell(column: str | None) -> str:
        if not column:
            return ""
        i = index[column]
        return cells[i].strip() if i < len(cells) else ""

    where = f"Row {number}"
    if mapping.currency_column:
        currency = cell(mapping.currency_column).upper()
        if currency and currency != "INR":
            errors.append(f"{where}, column '{mapping.currency_column}': {currency} — only INR statements are reconciled.")
            return None
    text_date = cell(mapping.date_column)
    day = dates.get(text_date)
    if day is None:
        try:
            day = datetime.strptime(text_date, mapping.date_format).date()
        except ValueError:
            try:  # '01/04/2026 10:32:11' with a date-only format: the date part is what counts
                day = datetime.strptime(text_date.split(" ")[0], mapping.date_format).date()
            except ValueError:
                errors.append(f"{where}, column '{mapping.date_column}': '{text_date[:30]}' is not a date "
                              f"in the format {mapping.date_format}.")
                return None
        dates[text_date] = day
    amount = _bank_amount(where, cell, mapping, errors)
    if amount is None:
        return None
    narration = cell(mapping.narration_column)
    reference = cell(mapping.reference_column)
    if reference.isdigit() and len(reference) > 12 and len(reference.lstrip("0")) <= 12:
        reference = reference.lstrip("0").zfill(12)  # '0000412345678901': a 12-digit RRN, zero-padded
    if not reference or set(reference) <= {"0"}:
        found = UPI_RRN.search(narration)
        reference = found.group(1) if found else ""
    # No per-line copy of the row: the whole file is kept on the import (StatementImport.content)
    # and line_no finds the row in it. Building and storing 100k JSON copies cost a third of
    # the import's time (bench/reconcile.py).
    return ParsedLine(line_no=number, txn_date=day, amount_paise=amount, credit=amount > 0,
                      reference=reference[:64] or None, narration=narration[:400])


def _bank_amount(where: str, cell: Any, mapping: Mapping, errors: list[str]) -> int | None:
    def paise(column: str) -> int | None:
        text = cell(column)
        if not text:
            return 0
        try:
            return rupees_to_paise(text)
        except ValueError:
            errors.append(f"{where}, column '{column}': '{text[:20]}' is not an amount in rupees.")
            return None

    if mapping.amount_column:
        value = paise(mapping.amount_column)
        if value is not None and value == 0 and not cell(mapping.amount_column):
            errors.append(f"{where}, column '{mapping.amount_column}': the amount is empty.")
            return None
        return value
    credit = paise(mapping.credit_column) if mapping.credit_column else 0
    debit = paise(mapping.debit_column) if mapping.debit_column else 0
    if credit is None or debit is None:
        return None
    if credit and debit:
        errors.append(f"{where}: both '{mapping.credit_column}' and '{mapping.debit_column}' have an amount.")
        return None
    if not credit and not debit:
        names = " or ".join(repr(c) for c in (mapping.credit_column, mapping.debit_column) if c)
        errors.append(f"{where}: no amount in {names}.")
        return None
    return abs(credit) if credit else -abs(debit)


def check_header(text: str, kind: str, mapping: Mapping | None) -> None:
    if kind == "razorpay_settlement":
        check_razorpay_header(text)
    elif mapping is None:
        raise ServiceError("Choose the bank mapping this statement uses.", field="source")
    else:
        check_bank_header(text, mapping)


def parse(text: str, kind: str, mapping: Mapping | None) -> Iterator[ParsedLine]:
    """Lines of a statement; StatementInvalid (raised after the last row) if any row is bad."""
    if kind == "razorpay_settlement":
        return parse_razorpay(text)
    if mapping is None:
        raise StatementInvalid(["The bank mapping of this import was deleted."])
    return parse_bank_csv(text, mapping)
