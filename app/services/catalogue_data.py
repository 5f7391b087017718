"""The standard catalogue of an Indian diagnostic laboratory, as plain data.

Departments, orderable and component tests (with LOINC code, specimen, container, UCUM
unit, method, turnaround and price), reference intervals by sex and age band with
critical limits, panels (profiles) and health packages. `catalogue_seed.load_standard_catalogue`
writes it into one organization; nothing here touches the database.

REFERENCE INTERVALS ARE A STARTING POINT, NOT A CLAIM. ISO 15189 (2012 clause 5.5.2;
2022 clauses 7.3 and 7.4.1.6) requires each laboratory to verify the biological reference
intervals and clinical decision limits it reports, for its own analysers, reagents and
population (NABL 112 asks the same of Indian labs). Every interval
below names the SOURCE it was taken from; a lab must verify each one (CLSI EP28-A3c:
transference with 20 local reference subjects) before reporting against it, and should edit
the intervals in the catalogue where its instrument insert or population study differs.
Intervals marked "Manufacturer's insert — lab to verify" are typical values of a common
platform and are the least portable of all.

Conventions:
* Ages are in days, lower bound inclusive and upper bound exclusive; a "year" is 365 days,
  so an adult band 18 y+ is 6570..54750 (150 years). sex is "any", "male" or "female".
* An interval's `high` is the last value still within the interval at the test's reported
  precision (glucose 99 mg/dL, not 100), so a LIS that flags `value > high` flags 100.
* Prices are in rupees here (typical of an Indian mid-size lab, 2024) and stored as paise
  (rupees × 100) by the loader. Diagnostic services are exempt from GST: SAC 999316, rate 0.
* LOINC codes: each one was cross-checked against its LOINC long name (loinc.org pages,
  reference-laboratory test directories, public LOINC tables), and its mod-10 check digit
  is verified by tests/unit/test_catalogue_data.py. Where no code could be confirmed
  (Widal, malaria antigen, typhoid IgM, bleeding and clotting time) the field is None
  rather than a guess.
* Units are UCUM: "10*3/uL" (thousand per microlitre), "u[IU]/mL" (micro-international
  units per mL), "{ratio}" / "{INR}" for dimensionless results, "/[HPF]" per high-power field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SAC_CODE = "999316"  # SAC for diagnostic and laboratory services (GST exempt)
GST_RATE = 0

# --- Age bands (days; lower inclusive, upper exclusive) -------------------------------
MAX_AGE = 54750  # 150 years
D7, D28, M2, M3, M4, M6 = 7, 28, 61, 91, 122, 183
Y1, Y2, Y5, Y7, Y10, Y12, Y13, Y15, Y18 = 365, 730, 1825, 2555, 3650, 4380, 4745, 5475, 6570
ALL = (0, MAX_AGE)
NEWBORN = (0, D28)          # 0-27 days
INFANT = (D28, Y1)          # 28 days to 1 year
CHILD = (Y1, Y12)           # 1 to 12 years
ADOLESCENT = (Y12, Y18)     # 12 to 18 years
UNDER_18 = (0, Y18)
ADULT = (Y18, MAX_AGE)      # 18 years and over

# --- Sources ----------------------------------------------------------------------------
DACIE = "Dacie and Lewis Practical Haematology, 12th ed. (2017), reference ranges"
CLSI_H20 = "CLSI H20-A2 (leucocyte differential) / Dacie and Lewis Practical Haematology, 12th ed."
TIETZ = "Tietz Clinical Guide to Laboratory Tests, 4th ed. (2006)"
CALIPER = "CALIPER paediatric reference intervals (Colantonio et al., Clin Chem 2012;58:854)"
KOST = "critical limits after Kost GJ, JAMA 1990 / CAP critical-value surveys — lab to set its own"
ADA = "ADA Standards of Care in Diabetes 2024 (Diabetes Care 47 Suppl 1), section 2"
NCEP = "NCEP ATP III (JAMA 2001;285:2486) classification for adults"
NHLBI_PAED = "NHLBI Expert Panel on Cardiovascular Risk Reduction in Children 2011 (acceptable levels)"
KDIGO = "KDIGO 2012 CKD guideline (Kidney Int Suppl 2013;3:1)"
ATA = "ATA/AACE 2012 hypothyroidism guideline (NHANES III reference population, 0.45-4.12)"
ENDO_VITD = "Endocrine Society clinical practice guideline on vitamin D (JCEM 2011;96:1911)"
STRASINGER = "Strasinger and Di Lorenzo, Urinalysis and Body Fluids, 6th ed. (2014)"
INSERT = "Manufacturer's insert — lab to verify"
QUALITATIVE = "Qualitative test: expected result in health; kit insert — lab to verify"


# --- Data types -------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """One reference interval: a sex and an age band, numeric limits and/or a text."""

    low: float | None = None
    high: float | None = None
    sex: str = "any"
    age_min_days: int = 0
    age_max_days: int = MAX_AGE
    critical_low: float | None = None
    critical_high: float | None = None
    text: str | None = None
    source: str = ""


@dataclass(frozen=True)
class TestDef:
    code: str
    name: str
    loinc: str | None
    department: str
    specimen: str
    container: str
    unit: str | None
    result_type: str
    decimals: int
    method: str
    tat_hours: int
    rupees: int
    orderable: bool = True
    choices: str | None = None
    intervals: tuple[Interval, ...] = field(default_factory=tuple)

    @property
    def price_paise(self) -> int:
        return self.rupees * 100


@dataclass(frozen=True)
class PanelDef:
    code: str
    name: str
    rupees: int
    items: tuple[str, ...]
    is_package: bool = False

    @property
    def price_paise(self) -> int:
        return self.rupees * 100


@dataclass(frozen=True)
class DepartmentDef:
    code: str
    name: str
    sort_order: int


def iv(low: float | None = None, high: float | None = None, *, sex: str = "any",
       ages: tuple[int, int] = ALL, crit: tuple[float | None, float | None] = (None, None),
       text: str | None = None, src: str) -> Interval:
    """A reference interval, written compactly: iv(13.0, 17.0, sex="male", ages=ADULT, src=DACIE)."""
    return Interval(low=low, high=high, sex=sex, age_min_days=ages[0], age_max_days=ages[1],
                    critical_low=crit[0], critical_high=crit[1], text=text, source=src)


def neg(text: str = "Negative", src: str = QUALITATIVE) -> tuple[Interval, ...]:
    """The expected result of a qualitative test, for all ages and both sexes."""
    return (iv(text=text, src=src),)


def T(code: str, name: str, loinc: str | None, dept: str, specimen: str, container: str, unit: str | None,
      rtype: str, decimals: int, method: str, tat: int, rupees: int, *intervals: Interval,
      orderable: bool = True, choices: str | None = None) -> TestDef:
    return TestDef(code=code, name=name, loinc=loinc, department=dept, specimen=specimen, container=container,
                   unit=unit, result_type=rtype, decimals=decimals, method=method, tat_hours=tat, rupees=rupees,
                   orderable=orderable, choices=choices, intervals=tuple(intervals))


DEPARTMENTS: tuple[DepartmentDef, ...] = (
    DepartmentDef("HAEM", "Haematology", 10),
    DepartmentDef("BIOC", "Biochemistry", 20),
    DepartmentDef("CLIN", "Clinical Pathology", 30),
    DepartmentDef("SERO", "Serology", 40),
    DepartmentDef("COAG", "Coagulation", 50),
)

# Shorthands for the specimen/container pairs an Indian lab draws.
WB_EDTA = ("Whole blood", "EDTA")            # lavender top
SERUM = ("Serum", "Plain")                   # red top / SST (yellow)
FLUORIDE = ("Plasma", "Fluoride")            # grey top
CITRATE = ("Citrated plasma", "Citrate")     # light blue top, 3.2% citrate 1:9
URINE = ("Urine", "Urine container")         # clean-catch midstream, sterile container
STOOL = ("Stool", "Stool container")

HAEM_CRIT = "Dacie and Lewis 12th ed.; " + KOST

POS_NEG = "Negative|Positive"
REACTIVE = "Non-reactive|Reactive"
DIP_GRADES = "Nil|Trace|+|++|+++|++++"
DIP_NEG = "Negative|Trace|+|++|+++"

# --- Tests ------------------------------------------------------------------------------
# code, name, LOINC, dept, specimen, container, UCUM unit, result type, decimals, method, TAT h, price ₹,
# then the reference intervals.
HAEMATOLOGY: tuple[TestDef, ...] = (
    T("HB", "Haemoglobin", "718-7", "HAEM", *WB_EDTA, "g/dL", "numeric", 1, "Photometry (SLS-haemoglobin)", 6, 150,
      iv(14.0, 22.0, ages=NEWBORN, crit=(9.5, 22.3), src=DACIE + "; neonatal " + KOST),
      iv(10.0, 18.0, ages=(D28, M2), crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(9.5, 14.0, ages=(M2, Y1), crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(11.5, 13.5, ages=(Y1, Y7), crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(11.5, 15.5, ages=(Y7, Y12), crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(13.0, 16.0, sex="male", ages=ADOLESCENT, crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(12.0, 16.0, sex="female", ages=ADOLESCENT, crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(13.0, 17.0, sex="male", ages=ADULT, crit=(7.0, 20.0), src=HAEM_CRIT),
      iv(12.0, 15.0, sex="female", ages=ADULT, crit=(7.0, 20.0), src=HAEM_CRIT)),
    T("RBC", "Red blood cell count", "789-8", "HAEM", *WB_EDTA, "10*6/uL", "numeric", 2, "Electrical impedance", 6, 100,
      iv(4.0, 6.6, ages=NEWBORN, src=DACIE),
      iv(3.1, 5.3, ages=INFANT, src=DACIE),
      iv(3.9, 5.3, ages=CHILD, src=DACIE),
      iv(4.5, 5.5, sex="male", ages=(Y12, MAX_AGE), src=DACIE),
      iv(3.8, 4.8, sex="female", ages=(Y12, MAX_AGE), src=DACIE),
      orderable=False),
    T("HCT", "Haematocrit (PCV)", "4544-3", "HAEM", *WB_EDTA, "%", "numeric", 1, "Automated (cumulative pulse height)", 6, 100,
      iv(42.0, 65.0, ages=NEWBORN, src=DACIE),
      iv(28.0, 42.0, ages=INFANT, src=DACIE),
      iv(34.0, 42.0, ages=CHILD, src=DACIE),
      iv(40.0, 50.0, sex="male", ages=(Y12, MAX_AGE), src=DACIE),
      iv(36.0, 46.0, sex="female", ages=(Y12, MAX_AGE), src=DACIE),
      orderable=False),
    T("MCV", "Mean corpuscular volume (MCV)", "787-2", "HAEM", *WB_EDTA, "fL", "numeric", 1, "Electrical impedance", 6, 100,
      iv(98.0, 118.0, ages=NEWBORN, src=DACIE),
      iv(70.0, 94.0, ages=INFANT, src=DACIE),
      iv(75.0, 91.0, ages=CHILD, src=DACIE),
      iv(83.0, 101.0, ages=(Y12, MAX_AGE), src=DACIE),
      orderable=False),
    T("MCH", "Mean corpuscular haemoglobin (MCH)", "785-6", "HAEM", *WB_EDTA, "pg", "numeric", 1, "Calculated (Hb / RBC)", 6, 100,
      iv(31.0, 37.0, ages=NEWBORN, src=DACIE),
      iv(23.0, 31.0, ages=INFANT, src=DACIE),
      iv(24.0, 30.0, ages=CHILD, src=DACIE),
      iv(27.0, 32.0, ages=(Y12, MAX_AGE), src=DACIE),
      orderable=False),
    T("MCHC", "Mean corpuscular haemoglobin concentration (MCHC)", "786-4", "HAEM", *WB_EDTA, "g/dL", "numeric", 1,
      "Calculated (Hb / HCT)", 6, 100,
      iv(30.0, 36.0, ages=(0, Y12), src=DACIE),
      iv(31.5, 34.5, ages=(Y12, MAX_AGE), src=DACIE),
      orderable=False),
    T("RDW", "Red cell distribution width (RDW-CV)", "788-0", "HAEM", *WB_EDTA, "%", "numeric", 1,
      "Calculated from RBC histogram", 6, 100,
      iv(11.6, 14.0, src=DACIE),
      orderable=False),
    T("WBC", "Total leucocyte count (TLC)", "6690-2", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 1, "Electrical impedance", 6, 150,
      iv(5.0, 26.0, ages=NEWBORN, crit=(2.0, 40.0), src=HAEM_CRIT),
      iv(6.0, 17.5, ages=INFANT, crit=(2.0, 30.0), src=HAEM_CRIT),
      iv(5.0, 15.0, ages=(Y1, Y7), crit=(2.0, 30.0), src=HAEM_CRIT),
      iv(4.5, 14.5, ages=(Y7, Y12), crit=(2.0, 30.0), src=HAEM_CRIT),
      iv(4.5, 13.0, ages=ADOLESCENT, crit=(2.0, 30.0), src=HAEM_CRIT),
      iv(4.0, 10.0, ages=ADULT, crit=(2.0, 30.0), src=HAEM_CRIT)),
    T("NEUTP", "Neutrophils", "770-8", "HAEM", *WB_EDTA, "%", "numeric", 0, "Flow cytometry (5-part differential)", 6, 100,
      iv(20.0, 60.0, ages=(0, Y7), src=CLSI_H20),
      iv(40.0, 80.0, ages=(Y7, MAX_AGE), src=CLSI_H20),
      orderable=False),
    T("LYMPP", "Lymphocytes", "736-9", "HAEM", *WB_EDTA, "%", "numeric", 0, "Flow cytometry (5-part differential)", 6, 100,
      iv(30.0, 70.0, ages=(0, Y7), src=CLSI_H20),
      iv(20.0, 40.0, ages=(Y7, MAX_AGE), src=CLSI_H20),
      orderable=False),
    T("MONOP", "Monocytes", "5905-5", "HAEM", *WB_EDTA, "%", "numeric", 0, "Flow cytometry (5-part differential)", 6, 100,
      iv(2.0, 10.0, src=CLSI_H20),
      orderable=False),
    T("EOSP", "Eosinophils", "713-8", "HAEM", *WB_EDTA, "%", "numeric", 0, "Flow cytometry (5-part differential)", 6, 100,
      iv(1.0, 6.0, src=CLSI_H20),
      orderable=False),
    T("BASOP", "Basophils", "706-2", "HAEM", *WB_EDTA, "%", "numeric", 0, "Flow cytometry (5-part differential)", 6, 100,
      iv(0.0, 2.0, src=CLSI_H20),
      orderable=False),
    T("ANC", "Absolute neutrophil count", "751-8", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 2, "Calculated (TLC × %)", 6, 100,
      iv(1.5, 8.5, ages=(0, Y7), crit=(0.5, None), src=CLSI_H20 + "; ANC <0.5 critical (severe neutropenia)"),
      iv(2.0, 7.0, ages=(Y7, MAX_AGE), crit=(0.5, None), src=CLSI_H20 + "; ANC <0.5 critical (severe neutropenia)"),
      orderable=False),
    T("ALC", "Absolute lymphocyte count", "731-0", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 2, "Calculated (TLC × %)", 6, 100,
      iv(2.0, 8.0, ages=(0, Y7), src=CLSI_H20),
      iv(1.0, 3.0, ages=(Y7, MAX_AGE), src=CLSI_H20),
      orderable=False),
    T("AMC", "Absolute monocyte count", "742-7", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 2, "Calculated (TLC × %)", 6, 100,
      iv(0.2, 1.0, src=CLSI_H20),
      orderable=False),
    T("AEC", "Absolute eosinophil count", "711-2", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 2, "Calculated (TLC × %)", 6, 100,
      iv(0.02, 0.5, src=CLSI_H20),
      orderable=False),
    T("ABC", "Absolute basophil count", "704-7", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 2, "Calculated (TLC × %)", 6, 100,
      iv(0.02, 0.1, src=CLSI_H20),
      orderable=False),
    T("PLT", "Platelet count", "777-3", "HAEM", *WB_EDTA, "10*3/uL", "numeric", 0, "Electrical impedance", 6, 150,
      iv(150, 450, ages=NEWBORN, crit=(20, 1000), src=HAEM_CRIT),
      iv(200, 550, ages=INFANT, crit=(20, 1000), src=HAEM_CRIT),
      iv(150, 450, ages=(Y1, Y18), crit=(20, 1000), src=HAEM_CRIT),
      iv(150, 410, ages=ADULT, crit=(20, 1000), src=HAEM_CRIT)),
    T("MPV", "Mean platelet volume (MPV)", "32623-1", "HAEM", *WB_EDTA, "fL", "numeric", 1, "Electrical impedance", 6, 100,
      iv(7.5, 11.5, src=INSERT + " (5-part analyser)"),
      orderable=False),
    T("ESR", "Erythrocyte sedimentation rate (ESR)", "4537-7", "HAEM", *WB_EDTA, "mm/h", "numeric", 0,
      "Modified Westergren", 4, 100,
      iv(0, 10, ages=UNDER_18, src=DACIE + " (ICSH 2011 Westergren)"),
      iv(0, 10, sex="male", ages=(Y18, 50 * Y1), src=DACIE),
      iv(0, 12, sex="male", ages=(50 * Y1, 60 * Y1), src=DACIE),
      iv(0, 14, sex="male", ages=(60 * Y1, 70 * Y1), src=DACIE),
      iv(0, 30, sex="male", ages=(70 * Y1, MAX_AGE), src=DACIE),
      iv(0, 12, sex="female", ages=(Y18, 50 * Y1), src=DACIE),
      iv(0, 19, sex="female", ages=(50 * Y1, 60 * Y1), src=DACIE),
      iv(0, 20, sex="female", ages=(60 * Y1, 70 * Y1), src=DACIE),
      iv(0, 35, sex="female", ages=(70 * Y1, MAX_AGE), src=DACIE)),
    T("PS", "Peripheral smear examination", "18314-5", "HAEM", *WB_EDTA, None, "text", 0,
      "Microscopy (Leishman stain)", 24, 250),
    T("RETIC", "Reticulocyte count", "4679-7", "HAEM", *WB_EDTA, "%", "numeric", 1,
      "Supravital stain (new methylene blue), microscopy", 24, 250,
      iv(2.0, 6.0, ages=NEWBORN, src=DACIE),
      iv(0.5, 2.5, ages=(D28, MAX_AGE), src=DACIE)),
    T("BLGRP", "Blood group (ABO) and Rh type", "882-1", "HAEM", *WB_EDTA, None, "choice", 0,
      "Slide and tube agglutination (forward and reverse grouping)", 6, 150,
      choices="A Positive|A Negative|B Positive|B Negative|AB Positive|AB Negative|O Positive|O Negative"),
)

BIOCHEMISTRY: tuple[TestDef, ...] = (
    # Glucose
    T("GLUF", "Glucose, fasting (FBS)", "1558-6", "BIOC", *FLUORIDE, "mg/dL", "numeric", 0, "Hexokinase", 4, 80,
      iv(50, 80, ages=NEWBORN, crit=(30, 300), src=TIETZ + "; neonatal " + KOST),
      iv(60, 99, ages=(D28, Y18), crit=(40, 400), src=TIETZ + "; " + KOST),
      iv(70, 99, ages=ADULT, crit=(40, 400), text="ADA 2024: 100-125 impaired fasting glucose; >=126 diabetes",
         src=ADA + "; " + KOST)),
    T("GLUPP", "Glucose, post-prandial (PPBS, 2 h)", "1521-4", "BIOC", *FLUORIDE, "mg/dL", "numeric", 0, "Hexokinase", 4, 80,
      iv(70, 139, crit=(40, 400), text="<140 normal; 140-199 impaired; >=200 diabetes (2-h OGTT cut-offs)",
         src=ADA + " (2-h thresholds applied to post-meal sample by convention); " + KOST)),
    T("GLUR", "Glucose, random (RBS)", "2345-7", "BIOC", *FLUORIDE, "mg/dL", "numeric", 0, "Hexokinase", 2, 80,
      iv(70, 140, crit=(40, 400), text=">=200 with classic symptoms suggests diabetes (ADA 2024)",
         src=ADA + "; " + KOST)),
    T("HBA1C", "Glycated haemoglobin (HbA1c)", "4548-4", "BIOC", *WB_EDTA, "%", "numeric", 1, "HPLC (NGSP certified)", 24, 500,
      iv(4.0, 5.6, text="ADA 2024: 5.7-6.4 prediabetes; >=6.5 diabetes; <7.0 usual treatment target", src=ADA)),
    # Kidney
    T("UREA", "Urea", "3091-6", "BIOC", *SERUM, "mg/dL", "numeric", 0, "Urease-GLDH (kinetic UV)", 6, 150,
      iv(10, 40, ages=UNDER_18, src=TIETZ),
      iv(17, 43, ages=ADULT, src=TIETZ)),
    T("BUN", "Blood urea nitrogen (BUN)", "3094-0", "BIOC", *SERUM, "mg/dL", "numeric", 1, "Calculated (urea × 0.467)", 6, 100,
      iv(5.0, 18.0, ages=UNDER_18, src=TIETZ),
      iv(8.0, 20.0, ages=ADULT, src=TIETZ),
      orderable=False),
    T("CREA", "Creatinine", "2160-0", "BIOC", *SERUM, "mg/dL", "numeric", 2, "Enzymatic (IDMS traceable)", 6, 200,
      iv(0.30, 1.00, ages=NEWBORN, src=CALIPER + " (enzymatic)"),
      iv(0.10, 0.40, ages=(D28, Y2), src=CALIPER + " (enzymatic)"),
      iv(0.20, 0.45, ages=(Y2, Y5), src=CALIPER + " (enzymatic)"),
      iv(0.30, 0.65, ages=(Y5, Y12), src=CALIPER + " (enzymatic)"),
      iv(0.45, 0.85, ages=(Y12, Y15), src=CALIPER + " (enzymatic)"),
      iv(0.60, 1.10, sex="male", ages=(Y15, Y18), crit=(None, 5.0), src=CALIPER + "; " + KOST),
      iv(0.50, 0.85, sex="female", ages=(Y15, Y18), crit=(None, 5.0), src=CALIPER + "; " + KOST),
      iv(0.67, 1.17, sex="male", ages=ADULT, crit=(None, 5.0),
         src=INSERT + " (enzymatic, IDMS); KDIGO 2012 for use with eGFR; " + KOST),
      iv(0.51, 0.95, sex="female", ages=ADULT, crit=(None, 5.0),
         src=INSERT + " (enzymatic, IDMS); KDIGO 2012 for use with eGFR; " + KOST)),
    T("EGFR", "eGFR (CKD-EPI 2021, creatinine)", "98979-8", "BIOC", *SERUM, "mL/min/{1.73_m2}", "numeric", 0,
      "Calculated (CKD-EPI 2021, race-free)", 6, 100,
      iv(text="CKD-EPI is not valid under 18 years; use the bedside Schwartz equation", ages=UNDER_18, src=KDIGO),
      iv(90, None, ages=ADULT,
         text="KDIGO G1 >=90; G2 60-89; G3a 45-59; G3b 30-44; G4 15-29; G5 <15 (with other markers of kidney damage)",
         src=KDIGO),
      orderable=False),
    T("URIC", "Uric acid", "3084-1", "BIOC", *SERUM, "mg/dL", "numeric", 1, "Uricase-POD", 6, 200,
      iv(2.0, 5.5, ages=UNDER_18, src=TIETZ),
      iv(3.5, 7.2, sex="male", ages=ADULT, src=TIETZ),
      iv(2.6, 6.0, sex="female", ages=ADULT, src=TIETZ)),
    # Electrolytes and minerals
    T("NA", "Sodium", "2951-2", "BIOC", *SERUM, "mmol/L", "numeric", 0, "ISE (indirect)", 4, 150,
      iv(136, 145, crit=(120, 160), src=TIETZ + "; " + KOST)),
    T("K", "Potassium", "2823-3", "BIOC", *SERUM, "mmol/L", "numeric", 1, "ISE (indirect)", 4, 150,
      iv(3.7, 5.9, ages=NEWBORN, crit=(2.8, 7.0), src=TIETZ + "; neonatal " + KOST),
      iv(4.1, 5.3, ages=INFANT, crit=(2.8, 6.5), src=TIETZ + "; " + KOST),
      iv(3.4, 4.7, ages=(Y1, Y18), crit=(2.8, 6.2), src=TIETZ + "; " + KOST),
      iv(3.5, 5.1, ages=ADULT, crit=(2.8, 6.2), src=TIETZ + "; " + KOST)),
    T("CL", "Chloride", "2075-0", "BIOC", *SERUM, "mmol/L", "numeric", 0, "ISE (indirect)", 4, 150,
      iv(98, 107, src=TIETZ)),
    T("CA", "Calcium, total", "17861-6", "BIOC", *SERUM, "mg/dL", "numeric", 1, "Arsenazo III", 6, 200,
      iv(7.6, 10.4, ages=NEWBORN, crit=(6.0, 13.0), src=TIETZ + "; " + KOST),
      iv(8.8, 10.8, ages=(D28, Y18), crit=(6.0, 13.0), src=TIETZ + "; " + KOST),
      iv(8.6, 10.2, ages=ADULT, crit=(6.0, 13.0), src=TIETZ + "; " + KOST)),
    T("PHOS", "Phosphorus, inorganic", "2777-1", "BIOC", *SERUM, "mg/dL", "numeric", 1, "Phosphomolybdate (UV)", 6, 200,
      iv(4.5, 9.0, ages=NEWBORN, crit=(1.0, None), src=TIETZ + "; " + KOST),
      iv(4.5, 6.7, ages=(D28, Y2), crit=(1.0, None), src=TIETZ + "; " + KOST),
      iv(4.5, 5.5, ages=(Y2, Y12), crit=(1.0, None), src=TIETZ + "; " + KOST),
      iv(2.5, 4.5, ages=(Y12, MAX_AGE), crit=(1.0, None), src=TIETZ + "; " + KOST)),
    T("MG", "Magnesium", "19123-9", "BIOC", *SERUM, "mg/dL", "numeric", 1, "Xylidyl blue", 6, 300,
      iv(1.6, 2.6, crit=(1.0, 4.7), src=TIETZ + "; " + KOST)),
    # Liver
    T("TBIL", "Bilirubin, total", "1975-2", "BIOC", *SERUM, "mg/dL", "numeric", 2, "Diazo (DPD)", 6, 150,
      iv(None, 12.0, ages=NEWBORN, crit=(None, 15.0),
         text="Neonates: interpret against the hour-specific nomogram (AAP 2022)", src=TIETZ + "; " + KOST),
      iv(0.3, 1.2, ages=(D28, MAX_AGE), src=TIETZ)),
    T("DBIL", "Bilirubin, direct (conjugated)", "1968-7", "BIOC", *SERUM, "mg/dL", "numeric", 2, "Diazo", 6, 150,
      iv(0.0, 0.3, src=TIETZ)),
    T("IBIL", "Bilirubin, indirect (unconjugated)", "1971-1", "BIOC", *SERUM, "mg/dL", "numeric", 2,
      "Calculated (total − direct)", 6, 100,
      iv(0.1, 1.0, src=TIETZ + " (derived: total minus direct)"),
      orderable=False),
    T("AST", "AST (SGOT)", "1920-8", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC without pyridoxal phosphate", 6, 150,
      iv(None, 75, ages=NEWBORN, src=TIETZ),
      iv(None, 60, ages=INFANT, src=TIETZ),
      iv(None, 45, ages=(Y1, Y18), src=TIETZ),
      iv(None, 40, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(None, 32, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
    T("ALT", "ALT (SGPT)", "1742-6", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC without pyridoxal phosphate", 6, 150,
      iv(None, 55, ages=(0, Y1), src=TIETZ),
      iv(None, 40, ages=(Y1, Y18), src=TIETZ),
      iv(None, 41, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(None, 33, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
    T("ALP", "Alkaline phosphatase (ALP)", "6768-6", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC (pNPP, AMP buffer)", 6, 200,
      iv(80, 320, ages=NEWBORN, src=CALIPER),
      iv(120, 520, ages=INFANT, src=CALIPER),
      iv(150, 380, ages=(Y1, Y10), src=CALIPER),
      iv(140, 460, ages=(Y10, Y13), src=CALIPER),
      iv(125, 520, sex="male", ages=(Y13, Y15), src=CALIPER),
      iv(60, 280, sex="female", ages=(Y13, Y15), src=CALIPER),
      iv(60, 370, sex="male", ages=(Y15, Y18), src=CALIPER),
      iv(45, 130, sex="female", ages=(Y15, Y18), src=CALIPER),
      iv(40, 129, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(35, 104, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
    T("GGT", "Gamma-glutamyl transferase (GGT)", "2324-2", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC (Szasz)", 6, 300,
      iv(None, 150, ages=NEWBORN, src=TIETZ),
      iv(None, 125, ages=(D28, M4), src=TIETZ),
      iv(None, 45, ages=(M4, Y18), src=TIETZ),
      iv(None, 71, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(None, 42, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
    T("TP", "Total protein", "2885-2", "BIOC", *SERUM, "g/dL", "numeric", 1, "Biuret", 6, 150,
      iv(4.6, 7.0, ages=NEWBORN, src=TIETZ),
      iv(5.1, 7.3, ages=INFANT, src=TIETZ),
      iv(6.0, 8.0, ages=(Y1, Y18), src=TIETZ),
      iv(6.4, 8.3, ages=ADULT, src=TIETZ)),
    T("ALB", "Albumin", "1751-7", "BIOC", *SERUM, "g/dL", "numeric", 1, "Bromocresol green", 6, 150,
      iv(2.8, 4.4, ages=NEWBORN, src=TIETZ),
      iv(3.4, 5.0, ages=(D28, Y18), src=TIETZ),
      iv(3.5, 5.2, ages=ADULT, src=TIETZ)),
    T("GLOB", "Globulin", "10834-0", "BIOC", *SERUM, "g/dL", "numeric", 1, "Calculated (total protein − albumin)", 6, 100,
      iv(2.0, 3.5, src=TIETZ + " (derived)"),
      orderable=False),
    T("AGR", "Albumin/globulin ratio", "1759-0", "BIOC", *SERUM, "{ratio}", "numeric", 2, "Calculated", 6, 100,
      iv(1.0, 2.1, src=TIETZ + " (derived from albumin and total protein intervals) — lab to verify"),
      orderable=False),
    # Lipids (fasting 9-12 h preferred; non-fasting acceptable for screening)
    T("CHOL", "Cholesterol, total", "2093-3", "BIOC", *SERUM, "mg/dL", "numeric", 0, "CHOD-PAP", 6, 150,
      iv(None, 169, ages=UNDER_18, text="<170 acceptable; 170-199 borderline; >=200 high", src=NHLBI_PAED),
      iv(None, 199, ages=ADULT, text="<200 desirable; 200-239 borderline high; >=240 high", src=NCEP)),
    T("TG", "Triglycerides", "2571-8", "BIOC", *SERUM, "mg/dL", "numeric", 0, "GPO-PAP", 6, 200,
      iv(None, 74, ages=(0, Y10), text="<75 acceptable; 75-99 borderline; >=100 high", src=NHLBI_PAED),
      iv(None, 89, ages=(Y10, Y18), text="<90 acceptable; 90-129 borderline; >=130 high", src=NHLBI_PAED),
      iv(None, 149, ages=ADULT, text="<150 normal; 150-199 borderline high; 200-499 high; >=500 very high", src=NCEP)),
    T("HDL", "HDL cholesterol", "2085-9", "BIOC", *SERUM, "mg/dL", "numeric", 0, "Direct (homogeneous enzymatic)", 6, 250,
      iv(45, None, ages=UNDER_18, text=">45 acceptable; 40-45 borderline; <40 low", src=NHLBI_PAED),
      iv(40, None, ages=ADULT, text="<40 low (a major risk factor); >=60 high (protective)", src=NCEP),
      orderable=False),
    T("LDL", "LDL cholesterol (calculated)", "13457-7", "BIOC", *SERUM, "mg/dL", "numeric", 0,
      "Calculated (Friedewald; invalid if TG >400)", 6, 250,
      iv(None, 109, ages=UNDER_18, text="<110 acceptable; 110-129 borderline; >=130 high", src=NHLBI_PAED),
      iv(None, 99, ages=ADULT,
         text="<100 optimal; 100-129 near optimal; 130-159 borderline high; 160-189 high; >=190 very high", src=NCEP),
      orderable=False),
    T("VLDL", "VLDL cholesterol (calculated)", "13458-5", "BIOC", *SERUM, "mg/dL", "numeric", 0, "Calculated (TG / 5)", 6, 100,
      iv(None, 30, src=NCEP + " (derived: TG/5 with TG <150)"),
      orderable=False),
    T("NHDL", "Non-HDL cholesterol", "43396-1", "BIOC", *SERUM, "mg/dL", "numeric", 0, "Calculated (total − HDL)", 6, 100,
      iv(None, 119, ages=UNDER_18, text="<120 acceptable; 120-144 borderline; >=145 high", src=NHLBI_PAED),
      iv(None, 129, ages=ADULT, text="<130 desirable (LDL goal + 30)", src=NCEP),
      orderable=False),
    T("TCHDL", "Total cholesterol/HDL ratio", "9830-1", "BIOC", *SERUM, "{ratio}", "numeric", 1, "Calculated", 6, 100,
      iv(None, 5.0, text="<3.5 desirable; >5.0 increased risk",
         src="Conventional cut-offs (Framingham/Castelli) — lab to verify"),
      orderable=False),
    # Thyroid
    T("T3", "Triiodothyronine, total (T3)", "3053-6", "BIOC", *SERUM, "ng/dL", "numeric", 0, "CLIA", 24, 250,
      iv(80, 200, src=INSERT + " (adult values; children run higher)"),
      orderable=False),
    T("T4", "Thyroxine, total (T4)", "3026-2", "BIOC", *SERUM, "ug/dL", "numeric", 1, "CLIA", 24, 250,
      iv(5.1, 14.1, src=INSERT + " (adult values)"),
      orderable=False),
    T("TSH", "Thyroid stimulating hormone (TSH)", "3016-3", "BIOC", *SERUM, "u[IU]/mL", "numeric", 2,
      "CLIA (3rd generation)", 24, 350,
      iv(0.70, 15.20, ages=(0, D7), src=INSERT + " (paediatric, ECLIA)"),
      iv(0.72, 11.00, ages=(D7, M3), src=INSERT + " (paediatric, ECLIA)"),
      iv(0.73, 8.35, ages=(M3, Y1), src=INSERT + " (paediatric, ECLIA)"),
      iv(0.70, 5.97, ages=(Y1, Y7), src=INSERT + " (paediatric, ECLIA)"),
      iv(0.60, 4.84, ages=(Y7, Y12), src=INSERT + " (paediatric, ECLIA)"),
      iv(0.51, 4.30, ages=ADOLESCENT, src=INSERT + " (paediatric, ECLIA)"),
      iv(0.45, 4.12, ages=ADULT, text="Pregnancy: use trimester-specific intervals", src=ATA)),
    T("FT3", "Free T3", "3051-0", "BIOC", *SERUM, "pg/mL", "numeric", 2, "CLIA", 24, 300,
      iv(2.00, 4.40, src=INSERT + " (adult values)")),
    T("FT4", "Free T4", "3024-7", "BIOC", *SERUM, "ng/dL", "numeric", 2, "CLIA", 24, 300,
      iv(0.93, 1.70, src=INSERT + " (adult values)")),
    # Iron, vitamins
    T("FE", "Iron, serum", "2498-4", "BIOC", *SERUM, "ug/dL", "numeric", 0, "Ferrozine", 24, 300,
      iv(50, 120, ages=UNDER_18, src=TIETZ),
      iv(65, 175, sex="male", ages=ADULT, src=TIETZ),
      iv(50, 170, sex="female", ages=ADULT, src=TIETZ)),
    T("TIBC", "Total iron binding capacity (TIBC)", "2500-7", "BIOC", *SERUM, "ug/dL", "numeric", 0, "Ferrozine (saturation)", 24, 350,
      iv(250, 450, src=TIETZ),
      orderable=False),
    T("TSAT", "Transferrin saturation", "2502-3", "BIOC", *SERUM, "%", "numeric", 0, "Calculated (iron / TIBC × 100)", 24, 100,
      iv(20, 50, sex="male", src=TIETZ),
      iv(15, 50, sex="female", src=TIETZ),
      orderable=False),
    T("FERR", "Ferritin", "2276-4", "BIOC", *SERUM, "ng/mL", "numeric", 1, "CLIA", 24, 600,
      iv(25, 600, ages=(0, M2), src=TIETZ),
      iv(50, 200, ages=(M2, M6), src=TIETZ),
      iv(7, 140, ages=(M6, Y18), src=TIETZ),
      iv(30, 400, sex="male", ages=ADULT, src=INSERT),
      iv(13, 150, sex="female", ages=ADULT, src=INSERT)),
    T("VITD", "Vitamin D, 25-hydroxy (total)", "62292-8", "BIOC", *SERUM, "ng/mL", "numeric", 1, "CLIA", 48, 1200,
      iv(30, 100, text="<20 deficient; 20-29 insufficient; 30-100 sufficient; >100 risk of toxicity", src=ENDO_VITD)),
    T("B12", "Vitamin B12 (cobalamin)", "2132-9", "BIOC", *SERUM, "pg/mL", "numeric", 0, "CLIA", 48, 900,
      iv(197, 771, src=INSERT)),
    # Inflammation, pancreas, muscle
    T("CRP", "C-reactive protein (CRP), quantitative", "1988-5", "BIOC", *SERUM, "mg/L", "numeric", 1,
      "Immunoturbidimetry", 6, 400,
      iv(None, 5.0, src=INSERT)),
    T("AMY", "Amylase", "1798-8", "BIOC", *SERUM, "U/L", "numeric", 0, "Enzymatic (CNPG3)", 6, 400,
      iv(28, 100, src=INSERT + " (adult values)")),
    T("LIP", "Lipase", "3040-3", "BIOC", *SERUM, "U/L", "numeric", 0, "Enzymatic colorimetric", 6, 500,
      iv(13, 60, src=INSERT + " (adult values)")),
    T("CK", "Creatine kinase (CK, total)", "2157-6", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC (NAC activated)", 6, 400,
      iv(None, 725, ages=NEWBORN, src=TIETZ),
      iv(None, 230, ages=(D28, Y18), src=TIETZ),
      iv(None, 190, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(None, 167, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
    T("LDH", "Lactate dehydrogenase (LDH)", "2532-0", "BIOC", *SERUM, "U/L", "numeric", 0, "IFCC (lactate to pyruvate)", 6, 350,
      iv(290, 775, ages=NEWBORN, src=TIETZ),
      iv(180, 430, ages=(D28, Y2), src=TIETZ),
      iv(110, 295, ages=(Y2, Y18), src=TIETZ),
      iv(135, 225, sex="male", ages=ADULT, src=INSERT + " (IFCC 37 °C)"),
      iv(135, 214, sex="female", ages=ADULT, src=INSERT + " (IFCC 37 °C)")),
)

CLINICAL_PATHOLOGY: tuple[TestDef, ...] = (
    # Urine routine: physical, chemical (reagent strip), microscopic
    T("UCOL", "Urine colour", "5778-6", "CLIN", *URINE, None, "choice", 0, "Visual", 4, 50,
      *neg("Pale yellow", STRASINGER),
      choices="Pale yellow|Yellow|Dark yellow|Amber|Colourless|Red|Brown", orderable=False),
    T("UAPP", "Urine appearance", "5767-9", "CLIN", *URINE, None, "choice", 0, "Visual", 4, 50,
      *neg("Clear", STRASINGER),
      choices="Clear|Slightly turbid|Turbid", orderable=False),
    T("UPH", "Urine pH", "5803-2", "CLIN", *URINE, "[pH]", "numeric", 1, "Dipstick (reagent strip)", 4, 50,
      iv(4.5, 8.0, src=STRASINGER),
      orderable=False),
    T("USG", "Urine specific gravity", "5811-5", "CLIN", *URINE, "1", "numeric", 3, "Dipstick (reagent strip)", 4, 50,
      iv(1.005, 1.030, src=STRASINGER),
      orderable=False),
    T("UPRO", "Urine protein", "20454-5", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Nil", STRASINGER), choices=DIP_GRADES, orderable=False),
    T("UGLU", "Urine glucose", "25428-4", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Nil", STRASINGER), choices=DIP_GRADES, orderable=False),
    T("UKET", "Urine ketones", "2514-8", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Negative", STRASINGER), choices=DIP_NEG, orderable=False),
    T("UBIL", "Urine bilirubin", "5770-3", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Negative", STRASINGER), choices="Negative|+|++|+++", orderable=False),
    T("UUBG", "Urine urobilinogen", "5818-0", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Normal", STRASINGER), choices="Normal|+|++|+++|++++", orderable=False),
    T("UBLD", "Urine blood", "5794-3", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Negative", STRASINGER), choices=DIP_NEG, orderable=False),
    T("UNIT", "Urine nitrite", "5802-4", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Negative", STRASINGER), choices=POS_NEG, orderable=False),
    T("ULE", "Urine leucocyte esterase", "5799-2", "CLIN", *URINE, None, "choice", 0, "Dipstick (reagent strip)", 4, 50,
      *neg("Negative", STRASINGER), choices=DIP_NEG, orderable=False),
    T("UPUS", "Urine pus cells", "5821-4", "CLIN", *URINE, "/[HPF]", "text", 0, "Microscopy", 4, 50,
      *neg("0-5 /hpf", STRASINGER), orderable=False),
    T("URBC", "Urine red blood cells", "13945-1", "CLIN", *URINE, "/[HPF]", "text", 0, "Microscopy", 4, 50,
      *neg("0-2 /hpf", STRASINGER), orderable=False),
    T("UEPI", "Urine epithelial cells", "5787-7", "CLIN", *URINE, "/[HPF]", "text", 0, "Microscopy", 4, 50,
      *neg("Occasional (0-5 /hpf)", STRASINGER), orderable=False),
    T("UCAST", "Urine casts", "9842-6", "CLIN", *URINE, None, "choice", 0, "Microscopy", 4, 50,
      *neg("Nil (occasional hyaline casts may be normal)", STRASINGER),
      choices="Nil|Hyaline|Granular|RBC casts|WBC casts|Waxy", orderable=False),
    T("UCRYS", "Urine crystals", "5782-8", "CLIN", *URINE, None, "choice", 0, "Microscopy", 4, 50,
      *neg("Nil", STRASINGER),
      choices="Nil|Calcium oxalate|Uric acid|Triple phosphate|Amorphous urates|Amorphous phosphates", orderable=False),
    # Urine albumin (spot sample)
    T("MALB", "Urine microalbumin", "14957-5", "CLIN", *URINE, "mg/L", "numeric", 1, "Immunoturbidimetry", 24, 400,
      iv(None, 20.0, text="Interpret as albumin/creatinine ratio (KDIGO)", src=INSERT)),
    T("UCREA", "Urine creatinine (spot)", "2161-8", "CLIN", *URINE, "mg/dL", "numeric", 1, "Enzymatic", 24, 150,
      iv(20.0, 320.0, text="Random urine; used to normalise albumin", src=TIETZ),
      orderable=False),
    T("UACR", "Urine albumin/creatinine ratio (ACR)", "14959-1", "CLIN", *URINE, "mg/g", "numeric", 1,
      "Calculated (albumin / creatinine)", 24, 100,
      iv(None, 29.9, text="KDIGO A1 <30; A2 30-300 moderately increased; A3 >300 severely increased", src=KDIGO),
      orderable=False),
    # Stool routine
    T("SCOL", "Stool colour", "9397-1", "CLIN", *STOOL, None, "choice", 0, "Visual (macroscopic)", 6, 50,
      *neg("Brown", TIETZ), choices="Brown|Yellow|Green|Black|Clay coloured|Red", orderable=False),
    T("SCONS", "Stool consistency", "11029-6", "CLIN", *STOOL, None, "choice", 0, "Visual (macroscopic)", 6, 50,
      *neg("Formed", TIETZ), choices="Formed|Semi-formed|Loose|Watery|Hard", orderable=False),
    T("SOBT", "Stool occult blood", "2335-8", "CLIN", *STOOL, None, "choice", 0, "Immunochromatography", 6, 150,
      *neg("Negative"), choices=POS_NEG),
    T("SOVA", "Stool ova and cysts", "10704-5", "CLIN", *STOOL, None, "text", 0,
      "Microscopy (saline and iodine mounts)", 6, 100,
      *neg("Not seen", TIETZ)),
)

SEROLOGY: tuple[TestDef, ...] = (
    T("HBSAG", "Hepatitis B surface antigen (HBsAg)", "5196-1", "SERO", *SERUM, None, "choice", 0,
      "Immunochromatography", 6, 300, *neg("Non-reactive"), choices=REACTIVE),
    T("HCV", "Anti-HCV antibody", "16128-1", "SERO", *SERUM, None, "choice", 0, "Immunochromatography", 6, 600,
      *neg("Non-reactive"), choices=REACTIVE),
    T("HIV", "HIV 1 & 2 antibody screening", "31201-7", "SERO", *SERUM, None, "choice", 0,
      "Immunochromatography (NACO-approved kit)", 6, 400,
      *neg("Non-reactive", QUALITATIVE + "; reactive screens need NACO strategy confirmation"), choices=REACTIVE),
    T("VDRL", "VDRL (RPR)", "20507-0", "SERO", *SERUM, None, "choice", 0, "RPR card (flocculation)", 6, 150,
      *neg("Non-reactive"), choices=REACTIVE),
    T("WIDAL", "Widal test (slide)", None, "SERO", *SERUM, None, "text", 0, "Slide agglutination", 24, 200,
      *neg("Titres of 1:80 or below for O and H are usually not significant; interpret against local baseline")),
    T("DENNS1", "Dengue NS1 antigen", "75377-2", "SERO", *SERUM, None, "choice", 0, "Immunochromatography", 6, 600,
      *neg(), choices=POS_NEG),
    T("DENIGM", "Dengue IgM antibody", "29663-2", "SERO", *SERUM, None, "choice", 0, "Immunochromatography", 6, 500,
      *neg(), choices=POS_NEG),
    T("DENIGG", "Dengue IgG antibody", "29661-6", "SERO", *SERUM, None, "choice", 0, "Immunochromatography", 6, 500,
      *neg(), choices=POS_NEG),
    T("MALAG", "Malaria antigen (Pf/Pv)", None, "SERO", *WB_EDTA, None, "choice", 0,
      "Immunochromatography (HRP-2 / pLDH)", 4, 400,
      *neg(), choices="Negative|P. falciparum positive|P. vivax positive|Mixed (Pf and Pv) positive"),
    T("RAF", "Rheumatoid factor (RA), quantitative", "11572-5", "SERO", *SERUM, "[IU]/mL", "numeric", 1,
      "Immunoturbidimetry", 24, 400,
      iv(None, 20.0, src=INSERT)),
    T("ASO", "Anti-streptolysin O (ASO), quantitative", "5370-2", "SERO", *SERUM, "[IU]/mL", "numeric", 0,
      "Immunoturbidimetry", 24, 400,
      iv(None, 200, src=INSERT + " (adult cut-off; titres vary with age and region)")),
    T("TYIGM", "Typhoid IgM antibody (S. Typhi)", None, "SERO", *SERUM, None, "choice", 0, "Immunochromatography", 6, 500,
      *neg(), choices=POS_NEG),
)

COAGULATION: tuple[TestDef, ...] = (
    T("PT", "Prothrombin time (PT)", "5902-2", "COAG", *CITRATE, "s", "numeric", 1, "Clotting (photo-optical)", 6, 300,
      iv(11.0, 13.5, text="Depends on thromboplastin and ISI: verify with the lab's mean normal PT",
         src=INSERT)),
    T("INR", "International normalised ratio (INR)", "6301-6", "COAG", *CITRATE, "{INR}", "numeric", 2,
      "Calculated ((PT / mean normal PT)^ISI)", 6, 100,
      iv(0.8, 1.2, crit=(None, 5.0), text="Therapeutic on warfarin usually 2.0-3.0 (2.5-3.5 for mechanical valves)",
         src=INSERT + "; " + KOST),
      orderable=False),
    T("APTT", "Activated partial thromboplastin time (APTT)", "14979-9", "COAG", *CITRATE, "s", "numeric", 1,
      "Clotting (photo-optical)", 6, 400,
      iv(26.0, 36.0, crit=(None, 100.0), src=INSERT + "; " + KOST)),
    T("FIB", "Fibrinogen", "3255-7", "COAG", *CITRATE, "mg/dL", "numeric", 0, "Clauss", 24, 600,
      iv(200, 400, crit=(100, None), src=DACIE + "; " + KOST)),
    T("DDIM", "D-dimer", "48065-7", "COAG", *CITRATE, "ug/mL{FEU}", "numeric", 2, "Immunoturbidimetry (latex)", 6, 1200,
      iv(None, 0.50, text="Age-adjusted cut-off over 50 years: age × 0.01 ug/mL FEU", src=INSERT)),
    T("BT", "Bleeding time", None, "COAG", "Capillary blood", "Bedside", "min", "numeric", 1, "Duke method", 2, 100,
      iv(1.0, 5.0, src="Duke method, conventional range (Godkar, Textbook of Medical Laboratory Technology) — lab to verify")),
    T("CT", "Clotting time", None, "COAG", "Whole blood", "Plain glass tube", "min", "numeric", 1,
      "Lee and White (37 °C)", 2, 100,
      iv(5.0, 11.0, src=DACIE + " (Lee and White)")),
)

TESTS: tuple[TestDef, ...] = HAEMATOLOGY + BIOCHEMISTRY + CLINICAL_PATHOLOGY + SEROLOGY + COAGULATION


# --- Panels (profiles) and packages ---------------------------------------------------------
# Items are test codes, in report order.
CBC_ITEMS = ("HB", "RBC", "HCT", "MCV", "MCH", "MCHC", "RDW", "WBC", "NEUTP", "LYMPP", "MONOP", "EOSP", "BASOP",
             "ANC", "ALC", "AMC", "AEC", "ABC", "PLT", "MPV")
LFT_ITEMS = ("TBIL", "DBIL", "IBIL", "AST", "ALT", "ALP", "GGT", "TP", "ALB", "GLOB", "AGR")
KFT_ITEMS = ("UREA", "BUN", "CREA", "EGFR", "URIC", "NA", "K", "CL", "CA", "PHOS")
LIPID_ITEMS = ("CHOL", "TG", "HDL", "LDL", "VLDL", "NHDL", "TCHDL")
THYROID_ITEMS = ("T3", "T4", "TSH")
URINE_ITEMS = ("UCOL", "UAPP", "UPH", "USG", "UPRO", "UGLU", "UKET", "UBIL", "UUBG", "UBLD", "UNIT", "ULE",
               "UPUS", "URBC", "UEPI", "UCAST", "UCRYS")
STOOL_ITEMS = ("SCOL", "SCONS", "SOBT", "SOVA")
COAG_ITEMS = ("PT", "INR", "APTT")
IRON_ITEMS = ("FE", "TIBC", "TSAT", "FERR")
ACR_ITEMS = ("MALB", "UCREA", "UACR")


def _combine(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """Concatenate item lists, keeping the first occurrence of each code."""
    seen: dict[str, None] = {}
    for group in groups:
        for code in group:
            seen.setdefault(code, None)
    return tuple(seen)


PANELS: tuple[PanelDef, ...] = (
    PanelDef("CBC", "Complete blood count (CBC)", 350, CBC_ITEMS),
    PanelDef("LFT", "Liver function test (LFT)", 600, LFT_ITEMS),
    PanelDef("KFT", "Kidney function test (KFT/RFT)", 650, KFT_ITEMS),
    PanelDef("LIPID", "Lipid profile", 600, LIPID_ITEMS),
    PanelDef("TFT", "Thyroid profile (T3, T4, TSH)", 500, THYROID_ITEMS),
    PanelDef("URINE-RE", "Urine routine examination", 150, URINE_ITEMS),
    PanelDef("STOOL-RE", "Stool routine examination", 150, STOOL_ITEMS),
    PanelDef("COAG", "Coagulation profile (PT/INR, APTT)", 650, COAG_ITEMS),
    PanelDef("IRON", "Iron studies", 1200, IRON_ITEMS),
    PanelDef("ACR", "Urine albumin/creatinine ratio", 600, ACR_ITEMS),
    PanelDef("PKG-BASIC", "Basic health check", 999,
             _combine(CBC_ITEMS, ("ESR", "GLUF"), LIPID_ITEMS, ("UREA", "CREA", "EGFR", "AST", "ALT", "TSH"),
                      URINE_ITEMS),
             is_package=True),
    PanelDef("PKG-DIAB", "Diabetes care", 1499,
             _combine(("GLUF", "GLUPP", "HBA1C"), ("UREA", "CREA", "EGFR"), LIPID_ITEMS, ACR_ITEMS, URINE_ITEMS),
             is_package=True),
    PanelDef("PKG-EXEC", "Executive full body check", 3999,
             _combine(CBC_ITEMS, ("ESR", "GLUF", "HBA1C"), LFT_ITEMS, KFT_ITEMS, LIPID_ITEMS, THYROID_ITEMS,
                      IRON_ITEMS, ("VITD", "B12", "CRP"), URINE_ITEMS),
             is_package=True),
)


def tests_by_code() -> dict[str, TestDef]:
    return {t.code: t for t in TESTS}


def panels_by_code() -> dict[str, PanelDef]:
    return {p.code: p for p in PANELS}


# Delta-check limits: a change larger than this from the patient's previous result is shown to
# the pathologist (absolute in the test's unit, or percent of the previous value). Starting
# values in the range published for inpatient delta checks (e.g. Ko DH et al., Ann Lab Med
# 2017;37:504; CLSI EP33); each lab should tune them to its population.
DELTA_CHECKS: dict[str, tuple[float | None, float | None]] = {
    "HB": (2.0, None), "PLT": (None, 50), "WBC": (None, 50), "MCV": (5.0, None),
    "CREA": (None, 50), "UREA": (None, 50), "NA": (8.0, None), "K": (1.0, None),
    "CA": (1.0, None), "TBIL": (None, 50), "TSH": (None, 75),
}
