"""Admin: price lists (each overrides the catalogue price of some tests and panels, in an
htmx table on the list's page) and the B2B clients that use them."""
from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for

from app.extensions import db
from app.models import Client, PriceList, PriceListItem
from app.portals import see_other
from app.portals.admin import bp
from app.portals.admin.catalogue import TEMPLATE_HELPERS, render, save, wants_fragment
from app.portals.admin.forms import ClientForm, PriceForm, PriceListForm
from app.security import get_or_404
from app.services import ServiceError
from app.services import catalogue_admin as catalogue

# --- price lists ----------------------------------------------------------------------------


@bp.get("/price-lists", endpoint="price_lists")
def price_lists_list():  # type: ignore[no-untyped-def]
    return render_template("admin/price_lists.html", price_lists=catalogue.list_price_lists())


def _price_list_page(form: PriceListForm, price_list: PriceList | None, status: int = 200, **prices: Any):  # type: ignore[no-untyped-def]
    context = _prices_context(price_list, **prices) if price_list else {"price_list": None}
    return render("admin/price_list_form.html", "admin/_price_list_form.html", status, form=form, **context)


@bp.route("/price-lists/new", methods=["GET", "POST"])
def price_list_new():  # type: ignore[no-untyped-def]
    form = PriceListForm()
    if request.method == "GET":
        return _price_list_page(form, None)
    price_list, err = save(form, catalogue.create_price_list)
    if err:
        return _price_list_page(form, None, 422)
    flash(f"Added price list {price_list.name}. Add its prices below.", "success")
    return see_other(url_for(".price_list_edit", price_list_id=price_list.id))


@bp.route("/price-lists/<int:price_list_id>", methods=["GET", "POST"])
def price_list_edit(price_list_id: int):  # type: ignore[no-untyped-def]
    price_list = get_or_404(PriceList, id=price_list_id)
    form = PriceListForm(obj=price_list)
    if request.method == "GET":
        return _price_list_page(form, price_list)
    _, err = save(form, lambda data: catalogue.update_price_list(price_list, data))
    if err:
        return _price_list_page(form, price_list, 422)
    flash(f"Saved price list {price_list.name}.", "success")
    return see_other(url_for(".price_lists"))


def _prices_context(price_list: PriceList, *, price_form: PriceForm | None = None, row_errors: dict | None = None,
                    message: str = "") -> dict[str, Any]:
    return {"price_list": price_list, "rows": catalogue.price_rows(price_list), "codes": catalogue.orderable_codes(),
            "price_form": price_form or PriceForm(formdata=None), "row_errors": row_errors or {},
            "message": message}


def _prices_answer(price_list: PriceList, status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    if wants_fragment():
        return render_template("admin/_price_list_items.html", **TEMPLATE_HELPERS,
                               **_prices_context(price_list, **context)), status
    if status >= 400:
        return _price_list_page(PriceListForm(formdata=None, obj=price_list), price_list, status, **context)
    flash(context.get("message", "Saved."), "success")
    return see_other(url_for(".price_list_edit", price_list_id=price_list.id) + "#prices")


@bp.post("/price-lists/<int:price_list_id>/items")
def price_add(price_list_id: int):  # type: ignore[no-untyped-def]
    price_list = get_or_404(PriceList, id=price_list_id)
    form = PriceForm()
    _, err = save(form, lambda data: catalogue.add_price(price_list, data))
    if err:
        return _prices_answer(price_list, 422, price_form=form)
    return _prices_answer(price_list, message=f"Added the price for {form.code.data.strip().upper()}.")


@bp.post("/price-lists/<int:price_list_id>/items/<int:item_id>")
def price_change(price_list_id: int, item_id: int):  # type: ignore[no-untyped-def]
    price_list = get_or_404(PriceList, id=price_list_id)
    item = get_or_404(PriceListItem, id=item_id, price_list_id=price_list.id)
    try:
        catalogue.change_price(item, request.form)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _prices_answer(price_list, 422, row_errors={item_id: err.message})
    return _prices_answer(price_list, message="Saved the price.")


@bp.post("/price-lists/<int:price_list_id>/items/<int:item_id>/delete")
def price_remove(price_list_id: int, item_id: int):  # type: ignore[no-untyped-def]
    price_list = get_or_404(PriceList, id=price_list_id)
    item = get_or_404(PriceListItem, id=item_id, price_list_id=price_list.id)
    catalogue.remove_price(item)
    db.session.commit()
    return _prices_answer(price_list, message="Removed the price; the catalogue price applies again.")


# --- clients ----------------------------------------------------------------------------------


@bp.get("/clients", endpoint="clients")
def clients_list():  # type: ignore[no-untyped-def]
    return render_template("admin/clients.html", clients=catalogue.list_clients())


def _client_form(client: Client | None) -> ClientForm:
    form = ClientForm(data=catalogue.client_form_data(client) if client else None)
    chosen = [client.price_list_id] if client and client.price_list_id else []
    form.price_list_id.choices = [("", "— Catalogue prices —")] + catalogue.price_list_choices(include=chosen)
    return form


def _client_page(form: ClientForm, client: Client | None, status: int = 200):  # type: ignore[no-untyped-def]
    return render("admin/client_form.html", "admin/_client_form.html", status, form=form, client=client)


@bp.route("/clients/new", methods=["GET", "POST"])
def client_new():  # type: ignore[no-untyped-def]
    form = _client_form(None)
    if request.method == "GET":
        return _client_page(form, None)
    client, err = save(form, catalogue.create_client)
    if err:
        return _client_page(form, None, 422)
    flash(f"Added client {client.code}.", "success")
    return see_other(url_for(".clients"))


@bp.route("/clients/<int:client_id>", methods=["GET", "POST"])
def client_edit(client_id: int):  # type: ignore[no-untyped-def]
    client = get_or_404(Client, id=client_id)
    form = _client_form(client)
    if request.method == "GET":
        return _client_page(form, client)
    _, err = save(form, lambda data: catalogue.update_client(client, data))
    if err:
        return _client_page(form, client, 422)
    flash(f"Saved client {client.code}.", "success")
    return see_other(url_for(".clients"))
