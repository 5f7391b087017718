"""Admin catalogue editing, through the pages as an administrator uses them: tests and
their reference intervals, panels and their member tests, referrers, price lists and
clients. Bad input answers 422 with the message in place and saves nothing; every change
is audited with before/after; another lab's rows answer 404; other roles get 403."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from stdnum import luhn

from app import audit, security
from app.models import (Client, Department, LabTest, Panel, PriceList, PriceListItem, ReferenceInterval,
                        Referrer)
from app.services import orders, patients
from tests.helpers import audit_events
from tests.factories import PASSWORD

HTMX = {"HX-Request": "true"}


@pytest.fixture
def lab(client, auth, factory, session):
    org = factory.org()
    catalogue = factory.catalogue(org)
    admin = factory.user(org, "admin")
    auth.login(admin.username, PASSWORD)
    departments = {d.code: d for d in session.execute(select(Department)).scalars()}
    return {"org": org, "admin": admin, "departments": departments, **catalogue}


def count(session, model) -> int:
    session.expire_all()
    return session.execute(select(func.count(model.id))).scalar_one()




def text_of(response) -> str:
    return response.get_data(as_text=True)


def created_id(response) -> int:
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


# --- tests: list ----------------------------------------------------------------------------


def test_test_list_searches_and_filters_by_department(client, lab):
    page = text_of(client.get("/admin/catalogue"))
    assert "Haemoglobin" in page and "Glucose fasting" in page and 'hx-get="/admin/catalogue"' in page
    found = client.get("/admin/catalogue", query_string={"q": "gluc"}, headers=HTMX)
    assert found.status_code == 200
    html = text_of(found)
    assert "Glucose fasting" in html and "Haemoglobin" not in html and "<html" not in html  # the rows only
    haem = lab["departments"]["HAEM"].id
    html = text_of(client.get("/admin/catalogue", query_string={"department": haem}))
    assert "Haemoglobin" in html and "Creatinine" not in html
    assert "No tests match." in text_of(client.get("/admin/catalogue", query_string={"q": "%_nothing"}))


# --- tests: create and edit -----------------------------------------------------------------


def new_test(lab, **changes) -> dict:
    data = {"code": "HBA1C", "name": "Glycated haemoglobin", "loinc": "4548-4",
            "department_id": lab["departments"]["BIOC"].id, "specimen": "Whole blood", "container": "EDTA",
            "unit": "%", "result_type": "numeric", "choices": "", "decimals": "1", "method": "HPLC",
            "tat_hours": "24", "price": "₹ 1,450.50", "sac_code": "999316", "gst_rate": "0",
            "orderable": "y", "active": "y"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_create_test_saves_paise_and_is_audited(client, lab, session):
    response = client.post_form("/admin/catalogue/tests/new", new_test(lab, code="hba1c"))
    assert response.status_code == 303
    test = session.get(LabTest, created_id(response))
    assert (test.code, test.price_paise, test.loinc, test.decimals) == ("HBA1C", 145050, "4548-4", 1)
    [event] = audit_events(session, "lab_test.created")
    assert event.entity_type == "lab_test" and event.entity_id == str(test.id)
    assert event.after["price_paise"] == 145050 and event.before is None


@pytest.mark.parametrize("changes,field,message", [
    ({"loinc": "4548-5"}, "loinc", "check digit does not match"),
    ({"loinc": "ABC"}, "loinc", "looks like 718-7"),
    ({"code": "HB"}, "code", "A test with the code HB already exists"),
    ({"code": "cbc"}, "code", "A panel with the code CBC already exists"),
    ({"code": "HB A1C"}, "code", "Capital letters A–Z, digits and dashes only"),
    ({"result_type": "choice", "choices": ""}, "choices", "at least two answers"),
    ({"result_type": "choice", "choices": "Positive|positive"}, "choices", "each answer only once"),
    ({"price": "-5"}, "price", "cannot be negative"),
    ({"price": "Infinity"}, "price", "Enter an amount in rupees"),
    ({"price": ""}, "price", "Enter the price in rupees"),
    ({"gst_rate": "7"}, "gst_rate", "0, 5, 12, 18 or 28"),
    ({"name": "x" * 10_000}, "name", "200 characters"),
    ({"name": "  "}, "name", "Enter the test name"),
    ({"decimals": "5"}, "decimals", "0 to 4"),
    ({"tat_hours": "0"}, "tat_hours", "whole number of hours"),
    ({"sac_code": "99A"}, "sac_code", "4 to 8 digits"),
    ({"unit": "mg / dL"}, "unit", "UCUM"),
    ({"department_id": "999999999"}, "department_id", "Choose a department"),
    ({"specimen": ""}, "specimen", "Enter the specimen"),
    ({"name": "Glucose\x00"}, "name", "control characters"),
])
def test_bad_test_input_answers_422_and_saves_nothing(client, lab, session, changes, field, message):
    before = count(session, LabTest)
    response = client.post_form("/admin/catalogue/tests/new", new_test(lab, **changes))
    assert response.status_code == 422
    html = text_of(response)
    assert message.lower() in html.lower()
    assert f'id="{field}-err"' in html and f'aria-describedby="{field}-err' in html  # the message is on its field
    assert count(session, LabTest) == before
    assert audit_events(session, "lab_test.created") == []


def test_htmx_422_swaps_only_the_form(client, lab):
    response = client.post_form("/admin/catalogue/tests/new", new_test(lab, gst_rate="7"), headers=HTMX)
    assert response.status_code == 422
    html = text_of(response)
    assert html.lstrip().startswith("<form") and "<html" not in html and "GST rate must be" in html


def test_html_in_names_is_escaped(client, lab, session):
    script = "<script>alert(1)</script>"
    refused = client.post_form("/admin/catalogue/tests/new", new_test(lab, name=script, loinc="1-1"))
    assert refused.status_code == 422
    assert script not in text_of(refused) and "&lt;script&gt;alert(1)&lt;/script&gt;" in text_of(refused)
    saved = client.post_form("/admin/catalogue/tests/new", new_test(lab, name=script))
    assert saved.status_code == 303
    for page in ("/admin/catalogue", saved.headers["Location"]):
        html = text_of(client.get(page))
        assert script not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_edit_records_only_the_changed_fields(client, lab, session):
    hb = lab["tests"]["HB"]
    form = text_of(client.get(f"/admin/catalogue/tests/{hb.id}"))
    assert 'value="150.00"' in form  # the price is shown in rupees
    data = new_test(lab, code="HB", name="Haemoglobin (Hb)", loinc="718-7", department_id=hb.department_id,
                    specimen="Whole blood", container="EDTA", unit="mg/dL", decimals="0", method="", price="175")
    assert client.post_form(f"/admin/catalogue/tests/{hb.id}", data).status_code == 303
    [event] = audit_events(session, "lab_test.updated")
    assert event.before == {"name": "Haemoglobin", "loinc": None, "price_paise": 15000}
    assert event.after == {"name": "Haemoglobin (Hb)", "loinc": "718-7", "price_paise": 17500}
    # saving again without changes writes no audit row
    assert client.post_form(f"/admin/catalogue/tests/{hb.id}", data).status_code == 303
    assert len(audit_events(session, "lab_test.updated")) == 1


def place_order(session, lab, codes: list[str]) -> None:
    org = lab["org"]
    branch = org.branches[0]
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        security.use_tenant(session, org.id)
        patient = patients.register({"name": "Asha Rao", "sex": "female", "dob": "1990-05-17",
                                     "mobile": "98765 43210", "pin_code": "560038", "state_code": "29"},
                                    branch_id=branch.id, created_by_id=None, confirm_new=True)
        orders.create_order(patient, branch, orders.OrderRequest(codes=codes), created_by_id=None,
                            discount_limit_percent=0)
    session.commit()


def test_code_cannot_change_once_orders_use_it(client, lab, session):
    place_order(session, lab, ["CBC", "TSH"])  # HB is ordered inside the CBC panel, TSH on its own
    for code in ("HB", "TSH"):
        test = lab["tests"][code]
        data = new_test(lab, code=code + "X", name=test.name, loinc="", department_id=test.department_id)
        response = client.post_form(f"/admin/catalogue/tests/{test.id}", data)
        assert response.status_code == 422 and f"orders already use {code}" in text_of(response)
    crea = lab["tests"]["CREA"]  # never ordered: its code may still change
    data = new_test(lab, code="CREAT", name="Creatinine", loinc="", department_id=crea.department_id)
    assert client.post_form(f"/admin/catalogue/tests/{crea.id}", data).status_code == 303
    session.expire_all()
    assert session.get(LabTest, crea.id).code == "CREAT"


def test_tests_are_deactivated_not_deleted(client, lab, session):
    tsh = lab["tests"]["TSH"]
    data = new_test(lab, code="TSH", name="TSH", loinc="", department_id=tsh.department_id, active=None)
    assert client.post_form(f"/admin/catalogue/tests/{tsh.id}", data).status_code == 303
    session.expire_all()
    assert session.get(LabTest, tsh.id).active is False
    assert orders.resolve(["TSH"])[1] == ["TSH"]  # reception can no longer order it
    assert client.post_form(f"/admin/catalogue/tests/{tsh.id}/delete").status_code == 404


# --- reference intervals ----------------------------------------------------------------------


def interval(**changes) -> dict:
    data = {"sex": "any", "age_from": "18", "age_from_unit": "years", "age_to": "150", "age_to_unit": "years",
            "low": "13", "high": "17", "critical_low": "7", "critical_high": "20", "text": "",
            "source": "Dacie and Lewis, 12th ed."}
    data.update(changes)
    return data


def add_interval(client, test, **changes):
    return client.post_form(f"/admin/catalogue/tests/{test.id}/intervals", interval(**changes), headers=HTMX)


def test_add_interval_stores_days_and_is_audited(client, lab, session):
    hb = lab["tests"]["HB"]
    response = add_interval(client, hb, age_from="2", age_from_unit="months", age_to="1", age_to_unit="years")
    assert response.status_code == 200
    html = text_of(response)
    assert html.lstrip().startswith('<section id="intervals"') and "2 months to under 1 year" in html
    [row] = session.execute(select(ReferenceInterval).where(ReferenceInterval.test_id == hb.id)).scalars()
    assert (row.age_min_days, row.age_max_days, str(row.low), str(row.critical_high)) == (61, 365, "13.0000", "20.0000")
    [event] = audit_events(session, "reference_interval.created")
    assert event.after["age_min_days"] == 61 and event.after["source"] == "Dacie and Lewis, 12th ed."


@pytest.mark.parametrize("changes,field,message", [
    ({"low": "17", "high": "13"}, "high", "high limit must be above the low limit"),
    ({"low": "13", "high": "13"}, "high", "high limit must be above the low limit"),
    ({"critical_low": "13"}, "critical_low", "critical low must be below the low limit"),
    ({"critical_high": "16"}, "critical_high", "critical high must be above the high limit"),
    ({"source": ""}, "source", "Name the source"),
    ({"age_from": "20", "age_to": "18"}, "age_to", "must end after it starts"),
    ({"age_to": "151"}, "age_to", "150 years at most"),
    ({"age_from": "x"}, "age_from", "whole number"),
    ({"low": "abc"}, "low", "Enter a number"),
    ({"high": "NaN"}, "high", "Enter a number"),
    ({"low": "1.23456"}, "low", "4 after it"),
    ({"low": "", "high": "", "critical_low": "", "critical_high": "", "text": ""}, "low", "or a text"),
    ({"sex": "other"}, "sex", "Choose any, male or female"),
])
def test_bad_interval_answers_422_with_the_message_on_its_field(client, lab, session, changes, field, message):
    hb = lab["tests"]["HB"]
    response = add_interval(client, hb, **changes)
    assert response.status_code == 422
    html = text_of(response)
    assert message.lower() in html.lower() and f'id="{field}-err"' in html
    assert count(session, ReferenceInterval) == 0


def test_overlapping_bands_of_the_same_sex_are_refused(client, lab, session):
    hb = lab["tests"]["HB"]
    assert add_interval(client, hb, sex="male").status_code == 200
    assert add_interval(client, hb, sex="female", low="12", high="15").status_code == 200  # other sex: fine
    assert add_interval(client, hb, sex="any", age_from="0", age_to="18",
                        low="11", high="16").status_code == 200  # adjacent band: fine (upper bound excluded)
    for sex, age_from, age_to in (("male", "60", "150"), ("any", "17", "19"), ("female", "0", "150")):
        response = add_interval(client, hb, sex=sex, age_from=age_from, age_to=age_to)
        assert response.status_code == 422, (sex, age_from, age_to)
        assert "must not overlap" in text_of(response) and 'id="age_from-err"' in text_of(response)
    assert count(session, ReferenceInterval) == 3


def test_edit_and_delete_interval_are_audited(client, lab, session):
    hb = lab["tests"]["HB"]
    add_interval(client, hb, sex="male")
    add_interval(client, hb, sex="female", low="12", high="15")
    male_id, female_id = session.execute(select(ReferenceInterval.id).order_by(ReferenceInterval.id)).scalars()
    row_form = client.get(f"/admin/catalogue/tests/{hb.id}/intervals", query_string={"edit": male_id}, headers=HTMX)
    assert 'value="13"' in text_of(row_form) and "Save interval" in text_of(row_form)
    url = f"/admin/catalogue/tests/{hb.id}/intervals/{male_id}"
    # editing must not overlap the other rows, but may keep its own band
    assert client.post_form(url, interval(sex="any"), headers=HTMX).status_code == 422
    response = client.post_form(url, interval(sex="male", low="13.5"), headers=HTMX)
    assert response.status_code == 200 and "13.5" in text_of(response)
    [event] = audit_events(session, "reference_interval.updated")
    assert event.before == {"low": "13.0000"} and event.after == {"low": "13.5000"}
    response = client.post_form(f"{url}/delete", headers=HTMX)
    assert response.status_code == 200
    assert [i.id for i in session.execute(select(ReferenceInterval)).scalars()] == [female_id]
    [deleted] = audit_events(session, "reference_interval.deleted")
    assert deleted.entity_id == str(male_id) and deleted.before["sex"] == "male" and deleted.after is None
    # without htmx, the same actions answer 303 back to the test's page
    plain = client.post_form(f"/admin/catalogue/tests/{hb.id}/intervals/{female_id}/delete")
    assert plain.status_code == 303 and plain.headers["Location"].endswith(f"/admin/catalogue/tests/{hb.id}#intervals")


def test_interval_must_belong_to_the_test_in_the_url(client, lab, session):
    hb, wbc = lab["tests"]["HB"], lab["tests"]["WBC"]
    add_interval(client, hb)
    iv = session.execute(select(ReferenceInterval)).scalar_one()
    assert client.post_form(f"/admin/catalogue/tests/{wbc.id}/intervals/{iv.id}", interval()).status_code == 404
    assert client.post_form(f"/admin/catalogue/tests/{wbc.id}/intervals/{iv.id}/delete").status_code == 404
    assert count(session, ReferenceInterval) == 1


# --- panels -------------------------------------------------------------------------------------


def new_panel(**changes) -> dict:
    data = {"code": "THY", "name": "Thyroid and sugar", "test_codes": "TSH, GLUF", "price": "400",
            "sac_code": "999316", "gst_rate": "0", "active": "y"}
    data.update(changes)
    return data


def panel_codes(session, panel_id: int) -> list[str]:
    session.expire_all()
    return [item.test.code for item in session.get(Panel, panel_id).items]


def test_create_panel_with_its_tests_in_order(client, lab, session):
    response = client.post_form("/admin/catalogue/panels/new", new_panel())
    assert response.status_code == 303
    panel_id = created_id(response)
    assert panel_codes(session, panel_id) == ["TSH", "GLUF"]
    assert session.get(Panel, panel_id).price_paise == 40000
    [event] = audit_events(session, "panel.created")
    assert event.after["tests"] == ["TSH", "GLUF"] and event.after["code"] == "THY"
    assert "Thyroid and sugar" in text_of(client.get("/admin/catalogue/panels"))


@pytest.mark.parametrize("changes,message", [
    ({"test_codes": "TSH TSH"}, "only once: TSH"),
    ({"test_codes": "TSH, NOPE"}, "No test has the code NOPE"),
    ({"test_codes": ""}, "List the panel&#39;s tests"),
    ({"code": "HB"}, "A test with the code HB already exists"),
    ({"code": "CBC"}, "A panel with the code CBC already exists"),
    ({"price": "-1"}, "cannot be negative"),
    ({"gst_rate": "7"}, "0, 5, 12, 18 or 28"),
])
def test_bad_panel_answers_422_and_saves_nothing(client, lab, session, changes, message):
    response = client.post_form("/admin/catalogue/panels/new", new_panel(**changes))
    assert response.status_code == 422 and message in text_of(response)
    assert count(session, Panel) == 1


def test_panel_members_add_remove_and_reorder(client, lab, session):
    cbc = lab["cbc"]
    url = f"/admin/catalogue/panels/{cbc.id}/tests"
    added = client.post_form(url, {"test_code": "crea"}, headers=HTMX)
    assert added.status_code == 200 and text_of(added).lstrip().startswith('<section id="panel-tests"')
    assert panel_codes(session, cbc.id) == ["HB", "WBC", "PLT", "CREA"]
    twice = client.post_form(url, {"test_code": "HB"}, headers=HTMX)
    assert twice.status_code == 422 and "HB is already in this panel" in text_of(twice)
    unknown = client.post_form(url, {"test_code": "NOPE"}, headers=HTMX)
    assert unknown.status_code == 422 and "no test with the code NOPE" in text_of(unknown)
    items = {i.test.code: i for i in session.get(Panel, cbc.id).items}
    assert client.post_form(f"{url}/{items['CREA'].id}/move", {"direction": "up"}, headers=HTMX).status_code == 200
    assert panel_codes(session, cbc.id) == ["HB", "WBC", "CREA", "PLT"]
    assert client.post_form(f"{url}/{items['HB'].id}/delete", headers=HTMX).status_code == 200
    assert panel_codes(session, cbc.id) == ["WBC", "CREA", "PLT"]
    added_event, = audit_events(session, "panel.test_added")
    assert added_event.before == {"tests": ["HB", "WBC", "PLT"]} and added_event.after == {"tests": ["HB", "WBC", "PLT", "CREA"]}
    [moved] = audit_events(session, "panel.tests_reordered")
    assert moved.after == {"tests": ["HB", "WBC", "CREA", "PLT"]}
    [removed] = audit_events(session, "panel.test_removed")
    assert removed.before == {"tests": ["HB", "WBC", "CREA", "PLT"]} and removed.after == {"tests": ["WBC", "CREA", "PLT"]}


def test_component_tests_may_join_a_panel_but_a_panel_keeps_one_test(client, lab, session):
    plt = lab["tests"]["PLT"]
    plt.orderable = False
    session.commit()
    panel = client.post_form("/admin/catalogue/panels/new", new_panel(code="PLTONLY", test_codes="PLT"))
    assert panel.status_code == 303
    panel_id = created_id(panel)
    [item] = session.get(Panel, panel_id).items
    last = client.post_form(f"/admin/catalogue/panels/{panel_id}/tests/{item.id}/delete", headers=HTMX)
    assert last.status_code == 422 and "at least one test" in text_of(last)
    assert panel_codes(session, panel_id) == ["PLT"]


def test_panel_edit_is_audited(client, lab, session):
    cbc = lab["cbc"]
    data = {"code": "CBC", "name": "Complete blood count", "price": "399", "sac_code": "999316", "gst_rate": "0",
            "active": "y"}
    assert client.post_form(f"/admin/catalogue/panels/{cbc.id}", data).status_code == 303
    [event] = audit_events(session, "panel.updated")
    assert event.before == {"price_paise": 35000} and event.after == {"price_paise": 39900}


# --- referrers ----------------------------------------------------------------------------------


def new_referrer(**changes) -> dict:
    data = {"name": "Dr. Arvind Shetty", "kind": "doctor", "qualification": "MD (Medicine)", "phone": "98450 12345",
            "email": "arvind@example.in", "active": "y"}
    data.update(changes)
    return data


@pytest.mark.parametrize("typed,stored", [
    ("98450 12345", "+919845012345"),
    ("+91-98450-12345", "+919845012345"),
    ("080 2345 6789", "+918023456789"),  # a Bengaluru landline
    ("", None),
])
def test_referrer_phone_is_normalised_mobile_or_landline(client, lab, session, typed, stored):
    response = client.post_form("/admin/referrers/new", new_referrer(phone=typed))
    assert response.status_code == 303
    referrer = session.execute(select(Referrer).where(Referrer.name == "Dr. Arvind Shetty")).scalar_one()
    assert referrer.phone == stored
    [event] = audit_events(session, "referrer.created")
    assert event.after["phone"] == stored


@pytest.mark.parametrize("changes,message", [
    ({"phone": "12345"}, "not a valid phone number"),
    ({"phone": "call me"}, "not a phone number"),
    ({"email": "arvind@"}, "not a valid email address"),
    ({"kind": "quack"}, "Choose doctor, hospital or self"),
    ({"name": ""}, "Enter the doctor"),
])
def test_bad_referrer_answers_422(client, lab, session, changes, message):
    before = count(session, Referrer)
    response = client.post_form("/admin/referrers/new", new_referrer(**changes))
    assert response.status_code == 422 and message in text_of(response)
    assert count(session, Referrer) == before


def test_referrer_edit_and_search(client, lab, session):
    referrer = lab["referrer"]
    data = new_referrer(name="Dr. Kavita Menon", phone="", email="", qualification="MBBS")
    assert client.post_form(f"/admin/referrers/{referrer.id}", data).status_code == 303
    [event] = audit_events(session, "referrer.updated")
    assert event.before == {"qualification": ""} and event.after == {"qualification": "MBBS"}
    html = text_of(client.get("/admin/referrers", query_string={"q": "kavita"}, headers=HTMX))
    assert "Dr. Kavita Menon" in html and "<html" not in html


# --- price lists and clients ------------------------------------------------------------------


def make_price_list(client, session, name="Corporate 2025") -> PriceList:
    response = client.post_form("/admin/price-lists/new", {"name": name, "active": "y"})
    assert response.status_code == 303
    return session.get(PriceList, created_id(response))


def test_price_list_override_changes_the_price_orders_use(client, lab, session):
    price_list = make_price_list(client, session)
    url = f"/admin/price-lists/{price_list.id}/items"
    assert client.post_form(url, {"code": "hb", "price": "100"}, headers=HTMX).status_code == 200
    assert client.post_form(url, {"code": "CBC", "price": "250.50"}, headers=HTMX).status_code == 200
    response = client.post_form("/admin/clients/new", {"code": "SUNRISE", "name": "Sunrise Hospital",
                                                       "gstin": "29AAFCC9980M1ZR", "state_code": "",
                                                       "price_list_id": price_list.id, "credit_limit": "50,000",
                                                       "credit_days": "45", "active": "y"})
    assert response.status_code == 303
    session.expire_all()
    b2b = session.execute(select(Client).where(Client.code == "SUNRISE")).scalar_one()
    assert (b2b.state_code, b2b.credit_limit_paise, b2b.price_list_id) == ("29", 5_000_000, price_list.id)

    def prices(client_row):
        found, _ = orders.resolve(["HB", "CBC", "GLUF"], client_row)
        return {o.code: o.price_paise for o in found}

    assert prices(None) == {"HB": 15000, "CBC": 35000, "GLUF": 8000}
    assert prices(b2b) == {"HB": 10000, "CBC": 25050, "GLUF": 8000}  # GLUF is not in the list

    hb_item = session.execute(select(PriceListItem).where(PriceListItem.test_id == lab["tests"]["HB"].id)).scalar_one()
    changed = client.post_form(f"{url}/{hb_item.id}", {"price": "90"}, headers=HTMX)
    assert changed.status_code == 200 and 'value="90.00"' in text_of(changed)
    session.expire_all()
    assert prices(b2b)["HB"] == 9000
    [event] = audit_events(session, "price_list_item.updated")
    assert event.before == {"price_paise": 10000} and event.after == {"price_paise": 9000}
    assert client.post_form(f"{url}/{hb_item.id}/delete", headers=HTMX).status_code == 200
    session.expire_all()
    assert prices(b2b)["HB"] == 15000
    [removed] = audit_events(session, "price_list_item.deleted")
    assert removed.before["price_paise"] == 9000 and removed.after is None
    assert [e.after["code"] for e in audit_events(session, "price_list_item.created")] == ["HB", "CBC"]


@pytest.mark.parametrize("data,message", [
    ({"code": "NOPE", "price": "10"}, "No test or panel has the code NOPE"),
    ({"code": "HB", "price": "-10"}, "cannot be negative"),
    ({"code": "HB", "price": ""}, "Enter the price in rupees"),
    ({"code": "HB", "price": "ten"}, "Enter an amount in rupees"),
])
def test_bad_price_answers_422_and_saves_nothing(client, lab, session, data, message):
    price_list = make_price_list(client, session)
    response = client.post_form(f"/admin/price-lists/{price_list.id}/items", data, headers=HTMX)
    assert response.status_code == 422 and message in text_of(response)
    assert count(session, PriceListItem) == 0


def test_a_code_is_priced_once_per_list_and_list_names_are_unique(client, lab, session):
    price_list = make_price_list(client, session)
    url = f"/admin/price-lists/{price_list.id}/items"
    assert client.post_form(url, {"code": "HB", "price": "100"}).status_code == 303
    again = client.post_form(url, {"code": "HB", "price": "120"}, headers=HTMX)
    assert again.status_code == 422 and "already in this list" in text_of(again)
    item = session.execute(select(PriceListItem)).scalar_one()
    bad = client.post_form(f"{url}/{item.id}", {"price": "-1"}, headers=HTMX)
    assert bad.status_code == 422 and "cannot be negative" in text_of(bad)
    session.expire_all()
    assert session.get(PriceListItem, item.id).price_paise == 10000
    duplicate = client.post_form("/admin/price-lists/new", {"name": "corporate 2025", "active": "y"})
    assert duplicate.status_code == 422 and "already has this name" in text_of(duplicate)
    assert count(session, PriceList) == 1


def gstin_with_check_character(first14: str) -> str:
    """A GSTIN with a valid Luhn mod-36 check character (india.md §2.1)."""
    return first14 + luhn.calc_check_digit(first14, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def new_client(**changes) -> dict:
    data = {"code": "APOLLO-1", "name": "Apollo Clinic", "gstin": "", "state_code": "29", "address": "Jayanagar",
            "price_list_id": "", "credit_limit": "0", "credit_days": "30", "active": "y"}
    data.update(changes)
    return data


@pytest.mark.parametrize("gstin,state", [
    ("29AAFCC9980M1ZR", "29"),
    ("27 AAPFU 0939F 1ZV", "27"),
    (gstin_with_check_character("38AAPFU0939F1Z"), "38"),  # Ladakh: stdnum 2.2 does not know 38 yet
    (gstin_with_check_character("97AAPFU0939F1Z"), "97"),  # Other Territory
])
def test_valid_gstins_are_accepted_and_give_the_state(client, lab, session, gstin, state):
    response = client.post_form("/admin/clients/new", new_client(gstin=gstin, state_code=""))
    assert response.status_code == 303, text_of(response)
    saved = session.execute(select(Client)).scalar_one()
    assert saved.gstin == gstin.replace(" ", "") and saved.state_code == state
    [event] = audit_events(session, "client.created")
    assert event.after["gstin"] == saved.gstin


def test_the_ladakh_gstin_check_character_is_s():
    assert gstin_with_check_character("38AAPFU0939F1Z") == "38AAPFU0939F1ZS"  # india.md §2.1


@pytest.mark.parametrize("changes,field,message", [
    ({"gstin": "27AAPFU0939F1ZO"}, "gstin", "check character does not match"),
    ({"gstin": "38AAPFU0939F1ZT"}, "gstin", "check character does not match"),
    ({"gstin": "29AAFCC9980M1Z"}, "gstin", "15 characters"),
    ({"gstin": "99AAPFU0939F1ZV"}, "gstin", "not a GST state code"),
    ({"gstin": "29AAFCC9980M1ZR", "state_code": "27"}, "state_code", "issued in state 29"),
    ({"state_code": "40"}, "state_code", "two-digit GST state code"),
    ({"code": "apollo 1"}, "code", "Capital letters"),
    ({"credit_limit": "-100"}, "credit_limit", "cannot be negative"),
    ({"credit_days": "400"}, "credit_days", "0 to 365"),
    ({"price_list_id": "999999999"}, "price_list_id", "Choose one of the lab"),
])
def test_bad_client_answers_422_and_saves_nothing(client, lab, session, changes, field, message):
    response = client.post_form("/admin/clients/new", new_client(**changes))
    assert response.status_code == 422
    html = text_of(response)
    assert message in html and f'id="{field}-err"' in html
    assert count(session, Client) == 0


def test_an_inactive_price_list_cannot_be_given_to_a_client(client, lab, session):
    price_list = make_price_list(client, session, name="Old rates")
    assert client.post_form(f"/admin/price-lists/{price_list.id}", {"name": "Old rates"}).status_code == 303
    response = client.post_form("/admin/clients/new", new_client(price_list_id=price_list.id))
    assert response.status_code == 422 and "This price list is inactive" in text_of(response)
    [event] = audit_events(session, "price_list.updated")
    assert event.before == {"active": True} and event.after == {"active": False}


def test_client_edit_is_audited_and_codes_are_unique(client, lab, session):
    assert client.post_form("/admin/clients/new", new_client()).status_code == 303
    assert client.post_form("/admin/clients/new", new_client(name="Other")).status_code == 422
    apollo = session.execute(select(Client)).scalar_one()
    assert client.post_form(f"/admin/clients/{apollo.id}", new_client(credit_days="60")).status_code == 303
    [event] = audit_events(session, "client.updated")
    assert event.before == {"credit_days": 30} and event.after == {"credit_days": 60}


# --- tenancy, roles, CSRF -------------------------------------------------------------------------


def test_another_organizations_rows_answer_404(client, lab, factory, session):
    other = factory.org()
    theirs = factory.catalogue(other)
    their_test = theirs["tests"]["HB"]
    their_interval = ReferenceInterval(test_id=their_test.id, low=1, high=2, source="x")
    their_list = PriceList(name="Theirs")
    session.add_all([their_interval, their_list])
    session.flush()
    their_item = PriceListItem(price_list_id=their_list.id, test_id=their_test.id, price_paise=100)
    their_client = Client(code="THEIRS", name="Their client", state_code="29", price_list_id=their_list.id)
    session.add_all([their_item, their_client])
    session.commit()
    their_panel_item = theirs["cbc"].items[0]
    pages = [
        f"/admin/catalogue/tests/{their_test.id}", f"/admin/catalogue/tests/{their_test.id}/intervals",
        f"/admin/catalogue/panels/{theirs['cbc'].id}", f"/admin/referrers/{theirs['referrer'].id}",
        f"/admin/price-lists/{their_list.id}", f"/admin/clients/{their_client.id}",
    ]
    for url in pages:
        assert client.get(url).status_code == 404, url
        assert client.post_form(url, {"name": "Taken over", "code": "X"}).status_code == 404, url
    posts = [
        f"/admin/catalogue/tests/{their_test.id}/intervals/{their_interval.id}",
        f"/admin/catalogue/tests/{their_test.id}/intervals/{their_interval.id}/delete",
        f"/admin/catalogue/panels/{theirs['cbc'].id}/tests",
        f"/admin/catalogue/panels/{theirs['cbc'].id}/tests/{their_panel_item.id}/delete",
        f"/admin/catalogue/panels/{theirs['cbc'].id}/tests/{their_panel_item.id}/move",
        f"/admin/price-lists/{their_list.id}/items", f"/admin/price-lists/{their_list.id}/items/{their_item.id}",
        f"/admin/price-lists/{their_list.id}/items/{their_item.id}/delete",
    ]
    for url in posts:
        assert client.post_form(url, {"price": "1", "test_code": "HB"}).status_code == 404, url
    # my own interval/item ids under their parent are no better
    mine = lab["cbc"].items[0]
    assert client.post_form(f"/admin/catalogue/panels/{theirs['cbc'].id}/tests/{mine.id}/delete").status_code == 404
    # a price list of another lab cannot be given to my client, nor their department to my test
    security.use_tenant(session, lab["org"].id)
    response = client.post_form("/admin/clients/new", new_client(price_list_id=their_list.id))
    assert response.status_code == 422
    their_dept = their_test.department_id
    assert client.post_form("/admin/catalogue/tests/new", new_test(lab, department_id=their_dept)).status_code == 422
    # their tests and panels are not found by code either
    bare = client.post_form(f"/admin/catalogue/panels/{lab['cbc'].id}/tests", {"test_code": "NOTMINE"})
    assert bare.status_code == 422
    # lists show only my rows
    assert "Their client" not in text_of(client.get("/admin/clients"))
    assert "Theirs" not in text_of(client.get("/admin/price-lists"))


@pytest.mark.parametrize("role", ["reception", "billing"])
def test_other_roles_get_403(client, auth, factory, session, role):
    org = factory.org()
    catalogue = factory.catalogue(org)
    auth.login(factory.user(org, role).username, PASSWORD)
    hb = catalogue["tests"]["HB"]
    for url in ("/admin/catalogue", "/admin/catalogue/panels", "/admin/referrers", "/admin/price-lists",
                "/admin/clients", f"/admin/catalogue/tests/{hb.id}"):
        assert client.get(url).status_code == 403, url
    for url in ("/admin/catalogue/tests/new", f"/admin/catalogue/tests/{hb.id}", f"/admin/catalogue/tests/{hb.id}/intervals",
                "/admin/catalogue/panels/new", "/admin/referrers/new", "/admin/price-lists/new", "/admin/clients/new"):
        assert client.post_form(url, {"code": "X", "name": "X", "price": "1"}).status_code == 403, url
    assert count(session, LabTest) == 7 and count(session, ReferenceInterval) == 0


def test_posts_without_csrf_token_are_refused(client, lab, session):
    before = count(session, LabTest)
    assert client.post("/admin/catalogue/tests/new", data=new_test(lab)).status_code == 400
    assert client.post(f"/admin/catalogue/tests/{lab['tests']['HB'].id}/intervals", data=interval()).status_code == 400
    assert count(session, LabTest) == before and count(session, ReferenceInterval) == 0


def test_admin_menu_and_pages_render(client, lab):
    home = text_of(client.get("/admin/"))
    nav = home[home.index('<nav aria-label="Main">'):home.index("</nav>")]
    for label in ("Catalogue", "Referrers", "Price lists", "Clients"):
        assert label in nav
    for url in ("/admin/catalogue/tests/new", "/admin/catalogue/panels/new", "/admin/referrers/new",
                "/admin/price-lists/new", "/admin/clients/new", f"/admin/catalogue/tests/{lab['tests']['HB'].id}",
                f"/admin/catalogue/panels/{lab['cbc'].id}", f"/admin/referrers/{lab['referrer'].id}"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = text_of(response)
        assert 'name="csrf_token"' in html
        # every visible input has a label
        for input_id in re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html):
            assert f'for="{input_id}"' in html, (url, input_id)
