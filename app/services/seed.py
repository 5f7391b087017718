"""The demo lab: one organization with two branches, one user per role and a small
catalogue. Idempotent: seeding again changes nothing."""
from __future__ import annotations

from sqlalchemy import select

from app import audit, security
from app.extensions import db
from app.models import Branch, Department, LabTest, Organization, Role
from app.services import users

DEMO_ORG_CODE = "demo"

# A valid GSTIN of the right shape for a Karnataka company (check character verified with
# python-stdnum; ../shared/reference/india.md §2.1). Demo data, not a real registration.
DEMO_ORG = dict(
    code=DEMO_ORG_CODE, legal_name="Demo Diagnostics Private Limited", display_name="Demo Diagnostics",
    gstin="29AAGCB7383J1Z4", pan="AAGCB7383J", address_line1="No. 12, 4th Cross, Indiranagar",
    address_line2="HAL 2nd Stage", city="Bengaluru", state_code="29", pin_code="560038",
    phone="+918041234567", email="lab@demo-diagnostics.example", nabl_certificate="MC-0000",
    upi_vpa="demodiagnostics@okaxis", upi_payee_name="Demo Diagnostics",
)
DEMO_BRANCHES = [
    dict(code="MAIN", name="Main Laboratory, Indiranagar", state_code="29", is_main_lab=True,
         address="No. 12, 4th Cross, Indiranagar, Bengaluru 560038", phone="+918041234567"),
    dict(code="JNR", name="Collection Centre, Jayanagar", state_code="29", is_main_lab=False,
         address="45, 11th Main, Jayanagar 4th Block, Bengaluru 560011", phone="+918041234568"),
]
DEMO_USERS = [
    dict(username="demo.admin", full_name="Anil Kumar", role=Role.ADMIN, branch=None),
    dict(username="demo.reception", full_name="Priya Sharma", role=Role.RECEPTION, branch="JNR"),
    dict(username="demo.technician", full_name="Ravi Shankar", role=Role.TECHNICIAN, branch="MAIN"),
    dict(username="demo.pathologist", full_name="Dr. Meera Iyer", role=Role.PATHOLOGIST, branch="MAIN",
         qualification="MD (Pathology)", registration_number="KMC 12345"),
    dict(username="demo.billing", full_name="Suresh Rao", role=Role.BILLING, branch="MAIN"),
]
DEPARTMENTS = [("HAEM", "Haematology"), ("BIOC", "Biochemistry"), ("CLIN", "Clinical Pathology"),
               ("SERO", "Serology")]
# code, name, LOINC, dept, specimen, container, UCUM unit, result type, decimals, method, TAT h, price ₹
DEMO_TESTS = [
    ("HB", "Haemoglobin", "718-7", "HAEM", "Whole blood", "EDTA", "g/dL", "numeric", 1, "Photometry", 6, 150),
    ("WBC", "Total leucocyte count", "6690-2", "HAEM", "Whole blood", "EDTA", "10*3/uL", "numeric", 1, "Impedance", 6, 150),
    ("PLT", "Platelet count", "777-3", "HAEM", "Whole blood", "EDTA", "10*3/uL", "numeric", 0, "Impedance", 6, 150),
    ("GLUF", "Glucose, fasting", "1558-6", "BIOC", "Plasma", "Fluoride", "mg/dL", "numeric", 0, "Hexokinase", 4, 80),
    ("CREA", "Creatinine", "2160-0", "BIOC", "Serum", "Plain", "mg/dL", "numeric", 2, "Enzymatic", 6, 200),
    ("TSH", "Thyroid stimulating hormone", "3016-3", "BIOC", "Serum", "Plain", "m[IU]/L", "numeric", 2, "CLIA", 24, 350),
    ("URE", "Urine routine examination", "24356-8", "CLIN", "Urine", "Urine container", None, "text", 0, "Dipstick and microscopy", 6, 150),
    ("HBSAG", "Hepatitis B surface antigen", "5196-1", "SERO", "Serum", "Plain", None, "choice", 0, "Rapid card", 24, 300),
]


def seed_demo(*, password: str | None = None) -> dict[str, str] | None:
    """Create the demo lab if it does not exist. Returns {username: password} when it
    created users (to print once), or None when the demo lab was already there."""
    existing = db.session.execute(
        select(Organization).where(Organization.code == DEMO_ORG_CODE)
    ).scalar_one_or_none()
    if existing is not None:
        return None
    with audit.acting_as(audit.AuditContext(actor_label="system:seed-demo")):
        org = Organization(**DEMO_ORG)
        db.session.add(org)
        db.session.flush()
        security.use_tenant(db.session, org.id)
        audit.record("organization.created", entity_type="organization", entity_id=org.id, org_id=org.id,
                     after={"code": org.code, "legal_name": org.legal_name, "gstin": org.gstin})
        branch_ids = {}
        for values in DEMO_BRANCHES:
            branch = Branch(org_id=org.id, **values)
            db.session.add(branch)
            db.session.flush()
            branch_ids[branch.code] = branch.id
        departments = {}
        for code, name in DEPARTMENTS:
            dept = Department(org_id=org.id, code=code, name=name)
            db.session.add(dept)
            db.session.flush()
            departments[code] = dept.id
        for code, name, loinc, dept, specimen, container, unit, rtype, decimals, method, tat, rupees in DEMO_TESTS:
            db.session.add(LabTest(
                org_id=org.id, code=code, name=name, loinc=loinc, department_id=departments[dept],
                specimen=specimen, container=container, unit=unit, result_type=rtype, decimals=decimals,
                method=method, tat_hours=tat, price_paise=rupees * 100,
            ))
        passwords = {}
        with audit.acting_as(audit.AuditContext(actor_label="system:seed-demo", org_id=org.id)):
            for spec in DEMO_USERS:
                data = dict(spec, role=spec["role"].value,
                            branch_id=branch_ids[spec["branch"]] if spec["branch"] else None)
                user, pw = users.create_user(org.id, data, password=password)
                passwords[user.username] = pw
        db.session.commit()
    return passwords
