"""Analyzer links: which are connected and what each sent today (refreshing itself), and an
instrument's recent messages with the raw bytes on demand."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import Instrument, InstrumentMessage
from app.models.instrument import MESSAGE_OUTCOMES
from app.models.instrument_order import ORDER_STATUSES, InstrumentOrder
from app.portals import page_or_fragment, see_other
from app.portals.technician import bp
from app.security import get_or_404
from app.services import ServiceError, instrument_orders, instruments

# Control characters of HL7/MLLP and ASTM framing, shown by name so a technician can read them.
CONTROL_NAMES = {0x02: "STX", 0x03: "ETX", 0x04: "EOT", 0x05: "ENQ", 0x06: "ACK", 0x0B: "VT", 0x0D: "CR",
                 0x0A: "LF", 0x15: "NAK", 0x17: "ETB", 0x1C: "FS", 0x09: "TAB", 0x00: "NUL"}


def visible_controls(raw: bytes) -> str:
    """The message as text with every control character written out (<VT>, <FS>, <CR>...); a
    line break follows each <CR> and <LF> so segments and records read one per line. The
    template escapes the result like any other text."""
    text = raw.decode("utf-8", errors="replace")
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append(f"<{CONTROL_NAMES.get(code, f'0x{code:02X}')}>" + ("\n" if code in (0x0A, 0x0D) else ""))
        else:
            out.append(ch)
    return "".join(out)


@bp.get("/instruments", endpoint="instruments")
def instruments_status():  # type: ignore[no-untyped-def]
    """The page; its status table alone for the htmx poll every 10 s."""
    return render_template(page_or_fragment("technician/instruments.html", "technician/_instrument_status.html"),
                           links=instruments.status())


def _choice_arg(name: str, allowed: tuple[str, ...]) -> str | None:
    """A list filter from the query string; anything not offered means no filter."""
    value = request.args.get(name) or None
    return value if value in allowed else None


@bp.get("/instruments/<int:instrument_id>/messages", endpoint="instrument_messages")
def instrument_messages(instrument_id: int):  # type: ignore[no-untyped-def]
    instrument = get_or_404(Instrument, id=instrument_id)
    outcome = _choice_arg("outcome", MESSAGE_OUTCOMES)
    return render_template("technician/instrument_messages.html", instrument=instrument, outcome=outcome,
                           outcomes=MESSAGE_OUTCOMES,
                           messages=instruments.messages(instrument.id, outcome=outcome, limit=100))


@bp.get("/instruments/<int:instrument_id>/messages/<int:message_id>/raw", endpoint="instrument_message_raw")
def instrument_message_raw(instrument_id: int, message_id: int):  # type: ignore[no-untyped-def]
    instrument = get_or_404(Instrument, id=instrument_id)
    message = get_or_404(InstrumentMessage, id=message_id, instrument_id=instrument.id)
    return render_template(page_or_fragment("technician/instrument_message.html", "technician/_raw_message.html"),
                           instrument=instrument, message=message, text=visible_controls(message.raw))


@bp.get("/instruments/<int:instrument_id>/orders", endpoint="instrument_orders")
def instrument_orders_page(instrument_id: int):  # type: ignore[no-untyped-def]
    """Orders pushed to this analyzer (ORM^O01 on tube receipt): sent, answered or failed."""
    instrument = get_or_404(Instrument, id=instrument_id)
    status = _choice_arg("status", ORDER_STATUSES)
    return render_template("technician/instrument_orders.html", instrument=instrument, status=status,
                           statuses=ORDER_STATUSES, orders=instrument_orders.recent(instrument.id, status=status))


@bp.post("/instruments/<int:instrument_id>/orders/<int:order_id>/retry", endpoint="instrument_order_retry")
def instrument_order_retry(instrument_id: int, order_id: int):  # type: ignore[no-untyped-def]
    instrument = get_or_404(Instrument, id=instrument_id)
    order = get_or_404(InstrumentOrder, id=order_id, instrument_id=instrument.id)
    try:
        instrument_orders.retry(order, user_id=current_user.id)
    except ServiceError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        db.session.commit()
        flash("The order will be sent again when the analyzer is connected.", "success")
    return see_other(url_for(".instrument_orders", instrument_id=instrument.id))
