"""The demo lab: one organization with two branches, one user per role and a small
catalogue. Idempotent: seeding again changes nothing."""
from __future__ import annotations

from sqlalchemy import select

from app import audit, security
from app.extensions import db
from app.models import BankMapping, Branch, Client, LabTest, Organization, Panel, PriceList, PriceListItem, Referrer, Role
from app.services import catalogue_seed, instruments, users

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
REFERRERS = [
    dict(name="Dr. Kavita Menon", kind="doctor", qualification="MD (General Medicine)", phone="+919845012345"),
    dict(name="Dr. Arjun Reddy", kind="doctor", qualification="MBBS, DNB (Family Medicine)", phone="+919880098800"),
    dict(name="Sunrise Multispeciality Hospital", kind="hospital", qualification="", phone="+918025550100"),
]
# A B2B client billed at its own prices (a client-specific price list overrides the catalogue).
DEMO_CLIENT = dict(code="SUNRISE", name="Sunrise Multispeciality Hospital", gstin="29AAFCC9980M1ZR", state_code="29",
                   address="80 Feet Road, Koramangala, Bengaluru 560034", credit_limit_paise=50_000_00, credit_days=30)
DEMO_BANK_MAPPING = dict(name="HDFC Bank statement (CSV)", date_column="Date", date_format="%d/%m/%Y",
                         credit_column="Deposit Amt.", debit_column="Withdrawal Amt.",
                         reference_column="Chq./Ref.No.", narration_column="Narration", skip_rows=3)
DEMO_CLIENT_PRICES = {"CBC": 250_00, "LFT": 450_00, "KFT": 400_00, "TSH": 250_00}


_CBC_LOINC = {"6690-2": "WBC", "789-8": "RBC", "718-7": {"test": "HB", "factor": "0.1"}, "4544-3": "HCT",
              "787-2": "MCV", "785-6": "MCH", "786-4": {"test": "MCHC", "factor": "0.1"}, "788-0": "RDW",
              "777-3": "PLT", "770-8": "NEUTP", "736-9": "LYMPP", "5905-5": "MONOP", "713-8": "EOSP",
              "706-2": "BASOP"}
_SYSMEX = {"WBC": "WBC", "RBC": "RBC", "HGB": "HB", "HCT": "HCT", "MCV": "MCV", "MCH": "MCH", "MCHC": "MCHC",
           "PLT": "PLT", "RDW-CV": "RDW", "NEUT%": "NEUTP", "LYMPH%": "LYMPP", "MONO%": "MONOP", "EO%": "EOSP",
           "BASO%": "BASOP"}
# One analyzer of each common style, on loopback-friendly ports, so a new lab (and the replay
# tests) can see traffic land. Codes are each vendor's style; a real lab maps its own.
DEMO_INSTRUMENTS = [
    dict(name="Mindray BC-6800 (haematology)", make="Mindray", model="BC-6800", protocol="hl7", port=5101,
         sample_id_field="OBR-3", test_code_field="OBX-3.1", codes=_CBC_LOINC,
         # IS rows are the analyzer's mode and suspect flags (08001 Take Mode, 12002 Leucocytosis):
         # kept in the message, not results; ED rows are histograms.
         profile={"skip_value_types": ["ED", "IS"]}),
    dict(name="Mindray BS-240 (chemistry)", make="Mindray", model="BS-240", protocol="hl7", port=5102,
         sample_id_field="OBR-2", test_code_field="OBX-3.1", profile={"qc_field": "MSH-16", "qc_values": ["1", "2"]},
         codes={"1": "GLUF", "2": "UREA", "3": "CREA", "4": "CHOL", "5": "TG", "6": "HDL", "7": "TBIL",
                "8": "DBIL", "9": "ALT", "10": "AST", "11": "TP", "12": "ALB"}),
    dict(name="Roche cobas pure (chemistry/immunology)", make="Roche", model="cobas pure", protocol="hl7",
         port=5103, sample_id_field="SPM-2", test_code_field="OBX-3.1",
         codes={"8716": "GLUF", "8717": "CREA", "8718": "CHOL", "8719": "TSH", "8720": "FT4"}),
    dict(name="Sysmex XN-550 (haematology)", make="Sysmex", model="XN-550", protocol="astm", port=5104,
         sample_id_field="O-4.3", test_code_field="R-3.5", codes=_SYSMEX),
    dict(name="Beckman Coulter DxH 500", make="Beckman Coulter", model="DxH 500", protocol="astm", port=5105,
         sample_id_field="O-3", test_code_field="R-3.4",
         profile={"result_fields": {"range": 7, "flag": 8, "status": 10, "completed": 14}},
         codes={"WBC": "WBC", "RBC": "RBC", "HGB": "HB", "HCT": "HCT", "MCV": "MCV", "PLT": "PLT"}),
    dict(name="Roche cobas e 411 (immunology)", make="Roche", model="cobas e 411", protocol="astm", port=5106,
         sample_id_field="O-3", test_code_field="R-3.4", profile={"query_id_field": "Q-3.3"},
         codes={"10": "TSH", "20": "FT4", "30": "T3", "40": "T4"}),
]


def add_demo_instruments() -> None:
    for spec in DEMO_INSTRUMENTS:
        instruments.create(instruments.InstrumentData(**spec))


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
        catalogue_seed.load_standard_catalogue(org.id)
        db.session.flush()
        for values in REFERRERS:
            db.session.add(Referrer(org_id=org.id, **values))
        _add_client_price_list(org.id)
        # A saved bank-statement layout, so reconciliation can be tried at once (the clerk
        # adds the lab's own banks under Billing → Reconciliation → Bank mappings).
        db.session.add(BankMapping(org_id=org.id, **DEMO_BANK_MAPPING))
        passwords = {}
        with audit.acting_as(audit.AuditContext(actor_label="system:seed-demo", org_id=org.id)):
            for spec in DEMO_USERS:
                data = dict(spec, role=spec["role"].value,
                            branch_id=branch_ids[spec["branch"]] if spec["branch"] else None)
                user, pw = users.create_user(org.id, data, password=password)
                passwords[user.username] = pw
            add_demo_instruments()
        db.session.commit()
    return passwords


def _add_client_price_list(org_id: int) -> None:
    price_list = PriceList(org_id=org_id, name="Sunrise Hospital rates")
    db.session.add(price_list)
    db.session.flush()
    tests = {t.code: t.id for t in db.session.execute(select(LabTest).where(LabTest.code.in_(DEMO_CLIENT_PRICES)))
             .scalars()}
    panels = {p.code: p.id for p in db.session.execute(select(Panel).where(Panel.code.in_(DEMO_CLIENT_PRICES)))
              .scalars()}
    for code, paise in DEMO_CLIENT_PRICES.items():
        if code in panels:
            db.session.add(PriceListItem(org_id=org_id, price_list_id=price_list.id, panel_id=panels[code], price_paise=paise))
        elif code in tests:
            db.session.add(PriceListItem(org_id=org_id, price_list_id=price_list.id, test_id=tests[code], price_paise=paise))
    db.session.add(Client(org_id=org_id, price_list_id=price_list.id, **DEMO_CLIENT))
