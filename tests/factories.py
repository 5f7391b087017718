"""Factories that build rows through the services (so audit and rules apply)."""
from __future__ import annotations

import itertools

from app import audit, security
from app.models import Branch, Organization, User
from app.services import users

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


class Factory:
    def __init__(self, session):  # type: ignore[no-untyped-def]
        self.session = session

    def org(self, code: str | None = None, **values) -> Organization:  # type: ignore[no-untyped-def]
        n = next(_seq)
        values = {"state_code": "29", "upi_vpa": f"lab{n}@okaxis", "upi_payee_name": f"Lab {n}", **values}
        org = Organization(code=code or f"org{n}", legal_name=f"Lab {n} Pvt Ltd", display_name=f"Lab {n}", **values)
        self.session.add(org)
        self.session.flush()
        security.use_tenant(self.session, org.id)
        branch = Branch(org_id=org.id, code="MAIN", name="Main lab", state_code="29", is_main_lab=True)
        self.session.add(branch)
        self.session.commit()
        return org

    def user(self, org: Organization, role: str = "admin", *, username: str | None = None,
             password: str = PASSWORD, branch: Branch | None = None) -> User:
        security.use_tenant(self.session, org.id)
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            user, _ = users.create_user(org.id, {
                "username": username or f"{role}{next(_seq)}", "full_name": f"Test {role.title()}",
                "role": role, "branch_id": branch.id if branch else None,
            }, password=password)
        self.session.commit()
        return user

    def catalogue(self, org: Organization) -> dict:
        """A small catalogue: tests in three containers, a CBC panel, a taxable item, a referrer."""
        from decimal import Decimal

        from app.models import Department, LabTest, Panel, PanelItem, Referrer

        security.use_tenant(self.session, org.id)
        haem = Department(org_id=org.id, code="HAEM", name="Haematology")
        bioc = Department(org_id=org.id, code="BIOC", name="Biochemistry")
        self.session.add_all([haem, bioc])
        self.session.flush()
        specs = [
            ("HB", "Haemoglobin", haem, "Whole blood", "EDTA", 15000), ("WBC", "Leucocyte count", haem, "Whole blood", "EDTA", 15000),
            ("PLT", "Platelet count", haem, "Whole blood", "EDTA", 15000), ("GLUF", "Glucose fasting", bioc, "Plasma", "Fluoride", 8000),
            ("CREA", "Creatinine", bioc, "Serum", "Plain", 20000), ("TSH", "TSH", bioc, "Serum", "Plain", 35000),
        ]
        tests = {}
        for code, name, dept, specimen, container, price in specs:
            tests[code] = LabTest(org_id=org.id, code=code, name=name, department_id=dept.id, specimen=specimen,
                                  container=container, unit="mg/dL", price_paise=price)
            self.session.add(tests[code])
        # A non-diagnostic, taxable service (e.g. home collection charge), SAC 999316 is exempt; 9985 is taxable.
        tests["HOME"] = LabTest(org_id=org.id, code="HOME", name="Home collection", department_id=bioc.id, specimen="None",
                                container="None", price_paise=10000, sac_code="998599", gst_rate=Decimal("18"))
        self.session.add(tests["HOME"])
        self.session.flush()
        cbc = Panel(org_id=org.id, code="CBC", name="Complete blood count", price_paise=35000)
        self.session.add(cbc)
        self.session.flush()
        for i, code in enumerate(["HB", "WBC", "PLT"]):
            self.session.add(PanelItem(org_id=org.id, panel_id=cbc.id, test_id=tests[code].id, position=i))
        referrer = Referrer(org_id=org.id, name="Dr. Kavita Menon", kind="doctor")
        self.session.add(referrer)
        self.session.commit()
        return {"tests": tests, "cbc": cbc, "referrer": referrer}

    def standard_catalogue(self, org: Organization) -> None:
        """The full seeded catalogue (departments, 116 tests with intervals, panels)."""
        from app.services import catalogue_seed

        security.use_tenant(self.session, org.id)
        catalogue_seed.load_standard_catalogue(org.id)
        self.session.commit()

    def patient(self, org: Organization, *, name: str | None = None, sex: str = "female",
                dob: str = "1980-05-17", mobile: str | None = None):  # type: ignore[no-untyped-def]
        from app.services import patients

        security.use_tenant(self.session, org.id)
        n = next(_seq)
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            patient = patients.register({"name": name or f"Test Patient {chr(65 + n % 26)}{n}", "sex": sex,
                                         "dob": dob, "mobile": mobile or f"98{n:08d}"[:10]},
                                        branch_id=None, created_by_id=None, confirm_new=True)
        self.session.commit()
        return patient

    def order(self, org: Organization, codes: list[str], *, patient=None, priority: str = "routine",  # type: ignore[no-untyped-def]
              receive: bool = True):
        """An order through the reception service; its tubes received at the lab unless told not to."""
        from app.models import Branch
        from app.services import orders, samples

        patient = patient or self.patient(org)
        security.use_tenant(self.session, org.id)
        branch = self.session.query(Branch).filter_by(org_id=org.id, code="MAIN").one()
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            order, _ = orders.create_order(patient, branch, orders.OrderRequest(codes=codes, priority=priority),
                                           created_by_id=None, discount_limit_percent=100)
            if receive:
                for sample in order.samples:
                    samples.receive(sample, user_id=None)
        self.session.commit()
        return order
