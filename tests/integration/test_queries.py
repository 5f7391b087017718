"""Precompiled read queries (app/queries.py): a statement that reads a tenant table without its
own `org_id = :org_id` is refused when it is defined; at run time :org_id comes only from the
session's organization (none: TenantNotSet) and parameters are checked; every dashboard,
queue and list read through them shows only the current organization's rows. The user
loader (auth.load_staff_user) behind current_user: what it carries, when it answers None,
and what the header of every staff page shows from it."""
from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from sqlalchemy import BigInteger, String, and_, bindparam, exists, func, or_, select, update

from app import audit, security
from app.models import AuditEvent, Bill, Branch, Department, LabTest, Order, Organization, Sample, User
from app.queries import Query, org
from app.services import auth as auth_service
from app.services import billing, billing_exceptions, dashboard, orders, results, users, verification
from tests.factories import PASSWORD
from tests.helpers import AuthActions
from tests.integration.test_lab_floor_portal import make_instrument, make_unmatched

HTMX = {"HX-Request": "true"}
_names = itertools.count(1)

samples_t, orders_t = Sample.__table__, Order.__table__


# ------------------------------------------------------------------ refused when defined


def test_a_tenant_table_read_without_its_filter_is_refused_when_defined():
    with pytest.raises(ValueError, match=r"reads tenant table sample without sample\.org_id = :org_id"):
        Query("bare_samples", select(samples_t.c.id))
    with pytest.raises(ValueError, match="sample"):
        Query("bare_count", select(func.count()).select_from(samples_t).where(samples_t.c.status == "pending"))
    scoped = Query("scoped_samples", select(samples_t.c.id).where(org(samples_t)))
    assert "sample.org_id = %(org_id)s" in scoped.sql


def test_a_join_filtering_only_one_of_its_tenant_tables_is_refused():
    joined = samples_t.join(orders_t, orders_t.c.id == samples_t.c.order_id)
    with pytest.raises(ValueError, match="lab_order without lab_order.org_id"):
        Query("samples_only", select(samples_t.c.id).select_from(joined).where(org(samples_t)))
    with pytest.raises(ValueError, match="sample without sample.org_id"):
        Query("orders_only", select(samples_t.c.id).select_from(joined).where(org(orders_t)))
    both = Query("both", select(samples_t.c.id).select_from(joined).where(org(samples_t), org(orders_t)))
    assert "sample.org_id = %(org_id)s" in both.sql and "lab_order.org_id = %(org_id)s" in both.sql


@pytest.mark.parametrize("make", [
    # a tenant table read only inside a scalar subquery, an EXISTS, a CTE or a derived table
    lambda: select(orders_t.c.id).where(
        org(orders_t), select(func.count()).select_from(samples_t)
        .where(samples_t.c.order_id == orders_t.c.id).scalar_subquery() > 0),
    lambda: select(orders_t.c.id).where(
        org(orders_t), select(samples_t.c.id).where(samples_t.c.order_id == orders_t.c.id).exists()),
    lambda: select(select(samples_t.c.id).cte("c").c.id),
    lambda: select(select(samples_t.c.id).subquery("sq").c.id),
], ids=["scalar_subquery", "exists", "cte", "derived_table"])
def test_a_tenant_table_nested_without_its_filter_is_refused(make):
    with pytest.raises(ValueError, match="reads tenant table sample without"):
        Query("nested", make())


def test_an_aliased_tenant_table_needs_its_own_filter():
    s2 = samples_t.alias("s2")
    with pytest.raises(ValueError, match=r"reads tenant table s2 without s2\.org_id"):
        Query("alias_unfiltered", select(s2.c.id))
    # a self-join filtered on the table but not on its alias: the alias would read every lab's rows
    self_join = samples_t.join(s2, s2.c.id == samples_t.c.recollect_of_id)
    with pytest.raises(ValueError, match=r"reads tenant table s2 without s2\.org_id"):
        Query("alias_side_unfiltered", select(samples_t.c.id, s2.c.id).select_from(self_join).where(org(samples_t)))
    with pytest.raises(ValueError, match=r"reads tenant table sample without sample\.org_id"):
        Query("table_side_unfiltered", select(samples_t.c.id, s2.c.id).select_from(self_join).where(org(s2)))
    both = Query("self_join", select(samples_t.c.id, s2.c.id).select_from(self_join).where(org(samples_t), org(s2)))
    assert "s2.org_id = %(org_id)s" in both.sql and "sample.org_id = %(org_id)s" in both.sql


def test_an_aliased_tenant_table_filtered_on_its_own_is_accepted():
    s2 = samples_t.alias("s2")
    query = Query("alias_filtered", select(s2.c.id).where(org(s2)))
    assert "s2.org_id = %(org_id)s" in query.sql


@pytest.mark.parametrize("make", [
    # the filter is one side of an OR: the other side reads every lab's rows
    lambda: select(samples_t.c.id).where(or_(org(samples_t), samples_t.c.status == "pending")),
    # filtered inside the subquery, not where the rows are read
    lambda: select(samples_t.c.id).where(samples_t.c.id.notin_(
        select(samples_t.c.id).where(org(samples_t)).scalar_subquery())),
    # the filter sits in a LEFT JOIN's ON, which cannot restrict the left side's rows
    lambda: select(samples_t.c.id).select_from(samples_t.outerjoin(
        orders_t, and_(orders_t.c.id == samples_t.c.order_id, org(samples_t), org(orders_t)))),
    # the filter compares the wrong table's org_id
    lambda: select(samples_t.c.id).select_from(samples_t.join(orders_t, orders_t.c.id == samples_t.c.order_id))
    .where(org(orders_t), samples_t.c.org_id == orders_t.c.org_id),
], ids=["or", "filtered_only_in_subquery", "left_side_in_outer_on", "indirect"])
def test_a_filter_that_does_not_restrict_the_rows_read_is_refused(make):
    with pytest.raises(ValueError, match="reads tenant table sample without"):
        Query("leaky", make())


def test_an_outer_joined_table_may_be_filtered_in_its_on_clause():
    query = Query("outer_on", select(orders_t.c.id, samples_t.c.id).select_from(orders_t.outerjoin(
        samples_t, and_(samples_t.c.order_id == orders_t.c.id, org(samples_t)))).where(org(orders_t)))
    assert "LEFT OUTER JOIN sample ON" in query.sql


def test_a_correlated_subquery_needs_only_its_own_tables_filtered():
    """The enclosing query's table, referred to from an EXISTS, is the enclosing rows
    (already filtered there); the subquery's own table needs its own filter."""
    query = Query("correlated", select(orders_t.c.id).where(
        org(orders_t), exists().where(org(samples_t), samples_t.c.order_id == orders_t.c.id)))
    assert "EXISTS (SELECT" in query.sql and query.sql.count("org_id = %(org_id)s") == 2
    with pytest.raises(ValueError, match="reads tenant table sample without"):
        Query("correlated_unfiltered", select(orders_t.c.id).where(
            org(orders_t), exists().where(samples_t.c.order_id == orders_t.c.id)))


def test_an_in_list_given_at_run_time_is_refused_when_defined():
    with pytest.raises(ValueError, match="IN list given at run time"):
        Query("in_list", select(samples_t.c.id).where(org(samples_t), samples_t.c.id.in_(bindparam("ids"))))


def test_all_tenants_must_not_filter_on_org_and_a_query_without_tenant_tables_must_say_all_tenants():
    with pytest.raises(ValueError, match="all_tenants=True but filters on :org_id"):
        Query("contradiction", select(samples_t.c.id).where(org(samples_t)), all_tenants=True)
    organizations = Organization.__table__
    with pytest.raises(ValueError, match="reads no tenant table; define it with all_tenants=True"):
        Query("orgs", select(organizations.c.id))
    with pytest.raises(ValueError, match="reads tenant table audit_event without"):
        # not TenantScoped, but its rows belong to an organization: it needs the filter too
        Query("audit_only", select(AuditEvent.__table__.c.id))
    across = Query("orgs_across", select(organizations.c.id), all_tenants=True)
    assert "org_id" not in across.sql
    across_samples = Query("samples_across", select(samples_t.c.id), all_tenants=True)
    assert "org_id" not in across_samples.sql


# ------------------------------------------------------------------ at run time


@pytest.fixture
def two_orgs_with_tubes(factory, session):
    """Two organizations, each with one tube waiting for receipt and one received."""
    made = {}
    for key in ("a", "b"):
        organization = factory.org()
        factory.standard_catalogue(organization)
        waiting = factory.order(organization, ["GLUF"], receive=False)
        received = factory.order(organization, ["GLUF"])
        made[key] = {"org": organization, "waiting": [s.id for s in waiting.samples],
                     "received": [s.id for s in received.samples]}
    return made


def test_without_an_organization_on_the_session_the_query_refuses_to_run(session, two_orgs_with_tubes):
    query = Query("tubes", select(samples_t.c.id).where(org(samples_t)))
    security.use_tenant(session, None)
    with pytest.raises(security.TenantNotSet):
        query.rows()
    with pytest.raises(security.TenantNotSet):
        query.one_or_none()
    with pytest.raises(security.TenantNotSet):
        query.one()
    # a query that says it reads across organizations runs without one
    across = Query("tubes_across", select(samples_t.c.id), all_tenants=True)
    ids = {row.id for row in across.rows()}
    every = two_orgs_with_tubes["a"]["waiting"] + two_orgs_with_tubes["a"]["received"] \
        + two_orgs_with_tubes["b"]["waiting"] + two_orgs_with_tubes["b"]["received"]
    assert set(every) <= ids


def test_org_id_comes_from_the_session_never_from_the_caller(session, two_orgs_with_tubes):
    a, b = two_orgs_with_tubes["a"], two_orgs_with_tubes["b"]
    query = Query("tubes", select(samples_t.c.id).where(org(samples_t)))
    security.use_tenant(session, a["org"].id)
    with pytest.raises(ValueError, match=":org_id comes from the session"):
        query.rows(org_id=b["org"].id)
    with pytest.raises(ValueError, match=":org_id comes from the session"):
        Query("across", select(samples_t.c.id), all_tenants=True).rows(org_id=b["org"].id)
    assert {row.id for row in query.rows()} == set(a["waiting"] + a["received"])
    security.use_tenant(session, b["org"].id)
    assert {row.id for row in query.rows()} == set(b["waiting"] + b["received"])


def test_unknown_and_missing_parameters_are_refused(session, two_orgs_with_tubes):
    a = two_orgs_with_tubes["a"]
    query = Query("tubes_in_state", select(samples_t.c.id).where(
        org(samples_t), samples_t.c.status == bindparam("status", type_=String)))
    security.use_tenant(session, a["org"].id)
    with pytest.raises(ValueError, match=r"unknown parameters \['colour'\]"):
        query.rows(status="pending", colour="red")
    with pytest.raises(ValueError, match=r"missing parameters \['status'\]"):
        query.rows()
    with pytest.raises(ValueError, match=r"missing parameters \['status'\]"):
        query.one_or_none()
    assert [row.id for row in query.rows(status="pending")] == a["waiting"]
    assert [row.id for row in query.rows(status="received")] == a["received"]


def test_in_of_literal_values_is_expanded_once_when_defined(session, two_orgs_with_tubes):
    a, b = two_orgs_with_tubes["a"], two_orgs_with_tubes["b"]
    query = Query("waiting_tubes", select(samples_t.c.id).where(
        org(samples_t), samples_t.c.status.in_(("pending", "collected"))).order_by(samples_t.c.id))
    # rendered with one placeholder per value, the values bound as defaults: no POSTCOMPILE left
    assert "POSTCOMPILE" not in query.sql
    assert re.search(r"sample\.status IN \(%\(\w+\)s::VARCHAR, %\(\w+\)s::VARCHAR\)", query.sql)
    sql_before = query.sql
    security.use_tenant(session, a["org"].id)
    assert [row.id for row in query.rows()] == a["waiting"]
    assert [row.id for row in query.rows()] == a["waiting"]  # and again, the same
    security.use_tenant(session, b["org"].id)
    assert [row.id for row in query.rows()] == b["waiting"]
    assert query.sql == sql_before
    with pytest.raises(ValueError, match="unknown parameters"):
        query.rows(status="received")


def test_a_bound_parameter_is_converted_by_its_type(session, two_orgs_with_tubes):
    a = two_orgs_with_tubes["a"]
    query = Query("tube", select(samples_t.c.status).where(
        org(samples_t), samples_t.c.id == bindparam("sample_id", type_=BigInteger)))
    security.use_tenant(session, a["org"].id)
    assert query.one(sample_id=a["waiting"][0]).status == "pending"
    assert query.one_or_none(sample_id=two_orgs_with_tubes["b"]["waiting"][0]) is None  # the other lab's tube


# ------------------------------------------------------------------ every dashboard stays within the organization


def _as(organization):  # type: ignore[no-untyped-def]
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=organization.id))


def _enter(session, organization, order: Order, code: str, raw: str) -> None:
    security.use_tenant(session, organization.id)
    with _as(organization):
        order_test = next(t for t in order.tests if t.test.code == code)
        results.save(order_test, results.Entry(raw=raw), user_id=None)
    session.commit()


def _pay(session, organization, order: Order, mode: str, paise: int, reference: str | None = None) -> None:
    security.use_tenant(session, organization.id)
    bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalars().first()
    with _as(organization):
        billing.record_payment(bill, mode=mode, amount_paise=paise, reference=reference, received_by_id=None)
    session.commit()


def _exception(session, organization) -> None:
    security.use_tenant(session, organization.id)
    billing_exceptions.open_exception(organization.id, kind="unknown_bill", source="webhook",
                                      dedupe_key=f"gateway:pay_{next(_names)}", amount_paise=100)
    session.commit()


def _audit_event(session, organization, action: str, *, actor: User | None = None) -> None:
    """An audit row dated in the future: the newest of its organization, first in any list."""
    session.add(AuditEvent(org_id=organization.id, at=datetime.now(timezone.utc) + timedelta(hours=1),
                           actor_user_id=actor.id if actor else None, actor_label="probe", action=action,
                           entity_type="probe", entity_id=str(next(_names))))
    session.commit()


def _build_lab(factory, session, *, waiting: int, pending_pair: bool, criticals: int, normals: int,
               unmatched: int, exceptions: int, extra_branch: bool, extra_department: bool,
               inactive_users: int, billing_clerk: bool):  # type: ignore[no-untyped-def]
    organization = factory.org()
    factory.standard_catalogue(organization)
    lab = {"org": organization, "admin": factory.user(organization, "admin"),
           "tech": factory.user(organization, "technician"), "orders": [], "waiting": [], "queued": []}
    security.use_tenant(session, organization.id)
    lab["main"] = session.execute(select(Branch).where(Branch.code == "MAIN")).scalar_one()
    if billing_clerk:
        factory.user(organization, "billing")
    for _ in range(inactive_users):
        gone = factory.user(organization, "reception")
        security.use_tenant(session, organization.id)
        with _as(organization):
            users.update_user(gone, {"full_name": gone.full_name, "role": gone.role, "branch_id": None,
                                     "active": False})
        session.commit()
    if extra_branch:
        session.add(Branch(org_id=organization.id, code="CC2", name="Collection centre 2", state_code="29"))
        session.commit()
    if extra_department:
        zeta = Department(org_id=organization.id, code="ZETA", name="Zeta studies")
        session.add(zeta)
        session.flush()
        session.add(LabTest(org_id=organization.id, code="ZT1", name="Zeta test", department_id=zeta.id,
                            specimen="Serum", container="Plain", unit="U/L", price_paise=10000))
        session.commit()
    for _ in range(waiting):
        order = factory.order(organization, ["GLUF"], receive=False)
        lab["orders"].append(order)
        lab["waiting"].extend(s.id for s in order.samples)
    if pending_pair:  # received, no result yet: two tests pending on the floor
        lab["orders"].append(factory.order(organization, ["GLUF", "CREA"]))
    for _ in range(criticals):  # potassium above 6.5 mmol/L: critical, waiting for verification
        order = factory.order(organization, ["K"])
        _enter(session, organization, order, "K", "7.1")
        lab["orders"].append(order)
        lab["queued"].append(order.id)
    for _ in range(normals):
        order = factory.order(organization, ["GLUF"])
        _enter(session, organization, order, "GLUF", "95")
        lab["orders"].append(order)
        lab["queued"].append(order.id)
    if unmatched:
        instrument = make_instrument(session, organization)
        for _ in range(unmatched):
            make_unmatched(session, organization, instrument)
    for _ in range(exceptions):
        _exception(session, organization)
    security.use_tenant(session, organization.id)
    lab["patients"] = sorted(o.patient.full_name for o in lab["orders"])
    return lab


@pytest.fixture
def labs(factory, session):  # type: ignore[no-untyped-def]
    a = _build_lab(factory, session, waiting=1, pending_pair=False, criticals=1, normals=0, unmatched=1,
                   exceptions=1, extra_branch=False, extra_department=False, inactive_users=0,
                   billing_clerk=False)
    b = _build_lab(factory, session, waiting=3, pending_pair=True, criticals=2, normals=1, unmatched=2,
                   exceptions=2, extra_branch=True, extra_department=True, inactive_users=1,
                   billing_clerk=True)
    _pay(session, a["org"], a["orders"][0], "cash", 1000)
    _pay(session, b["org"], b["orders"][0], "upi", 500, reference="412345678901")
    _pay(session, b["org"], b["orders"][1], "cash", 700)
    return {"a": a, "b": b}


def _active_tests(session, organization) -> int:
    security.use_tenant(session, organization.id)  # the ORM's own tenant criteria
    return session.execute(select(func.count(LabTest.id)).where(LabTest.active.is_(True))).scalar_one()


def test_admin_counts_are_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]
    tests_a, tests_b = _active_tests(session, a["org"]), _active_tests(session, b["org"])
    assert tests_a > 100 and tests_b == tests_a + 1
    security.use_tenant(session, a["org"].id)
    assert dashboard.admin_summary(a["admin"]).counts == {"Active users": 2, "Branches": 1,
                                                          "Tests in catalogue": tests_a}
    security.use_tenant(session, b["org"].id)
    assert dashboard.admin_summary(b["admin"]).counts == {"Active users": 3, "Branches": 2,
                                                          "Tests in catalogue": tests_b}


def test_recent_activity_is_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]
    _audit_event(session, a["org"], "probe.own")
    _audit_event(session, b["org"], "probe.elsewhere")
    security.use_tenant(session, a["org"].id)
    recent = dashboard.admin_summary(a["admin"]).recent
    assert recent[0].action == "probe.own"
    assert "probe.elsewhere" not in [row.action for row in recent]
    assert 1 < len(recent) <= 8
    security.use_tenant(session, b["org"].id)
    recent_b = dashboard.admin_summary(b["admin"]).recent
    assert recent_b[0].action == "probe.elsewhere" and "probe.own" not in [row.action for row in recent_b]


def test_recent_activity_is_the_users_own_in_the_organization(session, labs):
    a, b = labs["a"], labs["b"]
    tech = a["tech"]
    _audit_event(session, a["org"], "probe.mine", actor=tech)
    _audit_event(session, a["org"], "probe.colleague", actor=a["admin"])
    # the same user id on a row of the other organization: not this lab's activity
    _audit_event(session, b["org"], "probe.mine_elsewhere", actor=tech)
    security.use_tenant(session, a["org"].id)
    actions = [row.action for row in dashboard.recent_activity(tech)]
    assert actions[0] == "probe.mine"
    assert "probe.colleague" not in actions and "probe.mine_elsewhere" not in actions
    security.use_tenant(session, b["org"].id)
    assert "probe.mine" not in [row.action for row in dashboard.recent_activity(tech)]


def test_floor_counts_are_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]
    security.use_tenant(session, a["org"].id)
    assert dashboard.floor_counts() == {"awaiting_receipt": 1, "pending_tests": 0, "criticals": 1,
                                        "open_unmatched": 1}
    security.use_tenant(session, b["org"].id)
    assert dashboard.floor_counts() == {"awaiting_receipt": 3, "pending_tests": 2, "criticals": 2,
                                        "open_unmatched": 2}
    security.use_tenant(session, None)
    with pytest.raises(security.TenantNotSet):
        dashboard.floor_counts()


def test_verification_queue_is_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]
    security.use_tenant(session, a["org"].id)
    queue_a = verification.queue()
    assert [item.order_id for item in queue_a] == a["queued"]
    assert queue_a[0].criticals == 1 and queue_a[0].waiting == 1
    security.use_tenant(session, b["org"].id)
    queue_b = verification.queue()
    assert sorted(item.order_id for item in queue_b) == sorted(b["queued"])
    assert [item.criticals for item in queue_b] == [1, 1, 0]  # criticals first
    assert {item.patient_name for item in queue_b}.isdisjoint(item.patient_name for item in queue_a)
    assert [item.order_id for item in verification.queue(limit=1, offset=1)] == [queue_b[1].order_id]


def test_todays_orders_are_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]
    security.use_tenant(session, a["org"].id)
    rows = orders.todays_orders(None)
    assert sorted(row.patient_name for row in rows) == a["patients"] and len(rows) == 2
    assert {row.accession for row in rows} == {o.accession for o in a["orders"]}
    assert [row.accession for row in rows] == [o.accession for o in sorted(a["orders"], key=lambda o: -o.id)]
    assert sorted(row.patient_name for row in orders.todays_orders(a["main"].id)) == a["patients"]
    assert orders.todays_orders(b["main"].id) == []  # the other lab's branch: nothing
    security.use_tenant(session, b["org"].id)
    rows_b = orders.todays_orders(None)
    assert sorted(row.patient_name for row in rows_b) == b["patients"] and len(rows_b) == 7
    assert len(orders.todays_orders(None, limit=3)) == 3


def test_billing_home_counts_and_collections_are_the_organizations_own(session, labs):
    a, b = labs["a"], labs["b"]

    def orm_dues(organization):  # type: ignore[no-untyped-def]
        security.use_tenant(session, organization.id)
        return tuple(session.execute(select(func.count(Bill.id), func.coalesce(func.sum(
            Bill.total_paise - Bill.credited_paise - Bill.paid_paise), 0)).where(
            Bill.status.in_(("open", "partly_paid")))).one())

    dues_a, dues_b = orm_dues(a["org"]), orm_dues(b["org"])
    assert dues_a[0] == 2 and dues_b[0] == 7
    security.use_tenant(session, a["org"].id)
    assert billing.home_counts() == billing.HomeCounts(due_count=2, due_paise=dues_a[1], exceptions=1,
                                                       refund_approvals=0, einvoice_problems=0)
    assert billing.collections_today() == {"cash": 1000}
    assert billing.collections_today(a["main"].id) == {"cash": 1000}
    assert billing.collections_today(b["main"].id) == {}
    security.use_tenant(session, b["org"].id)
    assert billing.home_counts() == billing.HomeCounts(due_count=7, due_paise=dues_b[1], exceptions=2,
                                                       refund_approvals=0, einvoice_problems=0)
    assert billing.collections_today() == {"upi": 500, "cash": 700}
    assert billing.collections_today(a["main"].id) == {}


# ------------------------------------------------------------------ the user loader


@pytest.fixture
def staff(factory, session):  # type: ignore[no-untyped-def]
    organization = factory.org()
    security.use_tenant(session, organization.id)
    branch = Branch(org_id=organization.id, code="WF1", name="Whitefield centre", state_code="29")
    session.add(branch)
    session.commit()
    return {"org": organization, "branch": branch,
            "admin": factory.user(organization, "admin"),
            "tech": factory.user(organization, "technician", branch=branch)}


def _session_id(user: User) -> str:
    return f"{user.id}:{user.session_version}"


def test_loader_reads_the_user_with_organization_and_branch(session, staff, factory):
    organization, tech, admin = staff["org"], staff["tech"], staff["admin"]
    other = factory.org()
    for tenant in (None, other.id):  # before the request knows its organization, or another one's
        security.use_tenant(session, tenant)
        loaded = auth_service.load_staff_user(_session_id(tech))
        assert isinstance(loaded, auth_service.StaffUser)
        assert (loaded.id, loaded.org_id, loaded.username, loaded.full_name, loaded.role, loaded.branch_id,
                loaded.session_version) == (tech.id, organization.id, tech.username, tech.full_name, "technician",
                                            staff["branch"].id, tech.session_version)
        assert loaded.organization == auth_service.OrganizationHeader(organization.id, organization.legal_name,
                                                                      organization.display_name)
        assert loaded.branch == auth_service.BranchHeader(staff["branch"].id, "WF1", "Whitefield centre")
        assert loaded.get_id() == _session_id(tech)
        assert loaded.is_authenticated and loaded.is_active and not loaded.is_anonymous
        assert loaded.role_enum.label == "Technician"
    whole_org = auth_service.load_staff_user(_session_id(admin))
    assert whole_org.branch is None and whole_org.branch_id is None
    assert whole_org.organization.display_name == organization.display_name


def test_loader_answers_none_for_a_stale_inactive_malformed_or_unknown_session(session, staff):
    tech = staff["tech"]
    assert auth_service.load_staff_user(f"{tech.id}:{tech.session_version + 1}") is None
    assert auth_service.load_staff_user(f"{tech.id}:{tech.session_version - 1}") is None
    for malformed in ("abc", "1", "", f"{tech.id}", f"{tech.id}:x", f"x:{tech.session_version}", ":"):
        assert auth_service.load_staff_user(malformed) is None, malformed
    unknown = session.execute(select(func.max(User.id)).execution_options(all_tenants=True)).scalar_one() + 1000
    assert auth_service.load_staff_user(f"{unknown}:0") is None
    assert auth_service.load_staff_user(_session_id(tech)) is not None
    security.use_tenant(session, staff["org"].id)
    tech.active = False  # deactivated directly, session_version unchanged
    session.commit()
    assert auth_service.load_staff_user(_session_id(tech)) is None


def test_record_returns_the_users_orm_row(session, staff):
    security.use_tenant(session, staff["org"].id)
    loaded = auth_service.load_staff_user(_session_id(staff["tech"]))
    row = loaded.record()
    assert isinstance(row, User) and row is session.get(User, staff["tech"].id)
    assert row.username == loaded.username and row.branch.code == "WF1"


def _login(app, username: str):  # type: ignore[no-untyped-def]
    browser = app.test_client()
    assert AuthActions(browser).login(username, PASSWORD).status_code == 303
    return browser


def _sent_to_login(browser, path: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.get(path)
    assert page.status_code == 302 and urlsplit(page.headers["Location"]).path == "/login"
    fragment = browser.get(path, headers=HTMX)
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"] == "/login"


def test_a_user_deactivated_by_an_admin_is_sent_to_login_on_the_next_page(app, client, auth, staff):
    tech = staff["tech"]
    browser = _login(app, tech.username)
    assert browser.get("/technician/").status_code == 200
    auth.login(staff["admin"].username, PASSWORD)
    response = client.post_form(f"/admin/users/{tech.id}", {"username": tech.username, "full_name": tech.full_name,
                                                            "role": "technician", "branch_id": str(staff["branch"].id)})
    assert response.status_code == 303  # saved without "active"
    _sent_to_login(browser, "/technician/")
    assert client.get("/admin/").status_code == 200  # the admin's own session goes on


def test_a_bumped_session_version_sends_the_user_to_login(app, client, session, staff):
    tech = staff["tech"]
    browser = _login(app, tech.username)
    assert browser.get("/technician/").status_code == 200
    security.use_tenant(session, staff["org"].id)
    session.execute(update(User).where(User.id == tech.id).values(session_version=User.session_version + 1))
    session.commit()
    _sent_to_login(browser, "/technician/")
    fresh = _login(app, tech.username)  # logging in again carries the new version
    assert fresh.get("/technician/").status_code == 200


# ------------------------------------------------------------------ the header of every staff page


def test_header_shows_the_organization_and_the_users_branch(app, client, session, staff):
    organization = staff["org"]
    security.use_tenant(session, organization.id)
    organization.display_name = "Sunrise Diagnostics"
    session.commit()
    with_branch = _login(app, staff["tech"].username).get("/technician/").get_data(as_text=True)
    assert '<span class="brand">Sunrise Diagnostics</span>' in with_branch
    assert "· Sunrise Diagnostics</title>" in with_branch
    assert f"<span>{staff['tech'].full_name} · Technician · WF1</span>" in with_branch
    without = _login(app, staff["admin"].username).get("/admin/").get_data(as_text=True)
    assert '<span class="brand">Sunrise Diagnostics</span>' in without
    assert f"<span>{staff['admin'].full_name} · Admin</span>" in without
    assert "WF1" not in without.split('<div class="who">', 1)[1].split("</div>", 1)[0]


def test_hand_written_sql_must_take_org_id_from_the_session(session, two_orgs_with_tubes):
    from app.queries import TextQuery

    with pytest.raises(ValueError, match="must filter on :org_id"):
        TextQuery("unfiltered", "SELECT id FROM sample WHERE status = :status")
    waiting = TextQuery("waiting", "SELECT id FROM sample WHERE org_id = :org_id AND status = :status ORDER BY id")
    for key in ("a", "b"):
        security.use_tenant(session, two_orgs_with_tubes[key]["org"].id)
        assert [row.id for row in waiting.rows(status="pending")] == two_orgs_with_tubes[key]["waiting"]
    with pytest.raises(ValueError, match="comes from the session"):
        waiting.rows(status="pending", org_id=two_orgs_with_tubes["b"]["org"].id)
    security.use_tenant(session, None)
    with pytest.raises(security.TenantNotSet):
        waiting.rows(status="pending")


# --- which connection a precompiled read runs on (queries.read_connection) ----------------
# With the real engine (no rolled-back test connection), in an organization made for this.

def _committed_org(app) -> int:  # type: ignore[no-untyped-def]
    import uuid

    from app.extensions import db
    from tests.factories import Factory

    with app.app_context():
        org_id = Factory(db.session).org(code="rc" + uuid.uuid4().hex[:8]).id
        db.session.commit()
        db.session.remove()
    return org_id


def test_a_request_reads_on_its_own_connection_until_it_writes_then_sees_its_writes(app):
    from flask import g

    from app.extensions import db
    from app.queries import release_read_connection

    org_id = _committed_org(app)
    with app.app_context():
        pool = db.engine.pool
    idle = pool.checkedout()
    with app.test_request_context("/admin/"):
        security.use_tenant(db.session, org_id)
        before = dashboard._ADMIN_COUNTS.one()
        assert not db.session().in_transaction()  # the Session's transaction was not started for a read
        read_conn = g._lis_read_connection[0]
        assert pool.checkedout() == idle + 1
        db.session.add(Branch(org_id=org_id, code="RC2", name="Second", state_code="29"))
        db.session.flush()  # written, not committed: only the Session's connection sees it
        after = dashboard._ADMIN_COUNTS.one()
        assert after.branches == before.branches + 1
        assert read_conn.exec_driver_sql(
            "SELECT count(*) FROM branch WHERE org_id = %(org)s", {"org": org_id}).scalar() == before.branches
        assert pool.checkedout() == idle + 2  # a reading-then-writing request holds two
        db.session.rollback()
    assert pool.checkedout() == idle  # both back in the pool when the request ends
    release_read_connection()  # no request, nothing held: nothing to do


def test_outside_a_request_reads_use_the_sessions_connection(app):
    from app.extensions import db

    org_id = _committed_org(app)
    with app.app_context():
        security.use_tenant(db.session, org_id)
        dashboard._ADMIN_COUNTS.one()
        assert db.session().in_transaction()
        db.session.remove()


def test_a_locking_read_cannot_be_precompiled():
    with pytest.raises(ValueError, match="FOR UPDATE"):
        Query("locking", select(User.id).where(User.username == bindparam("u")).with_for_update(), all_tenants=True)
