"""Calculated tests: each is a formula over other results of the same order.

A calculated value is computed when all its inputs have a current result and is recomputed
when an input changes. Inputs are in the catalogue's units (mg/dL, g/dL, 10*3/uL...).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

D = Decimal


@dataclass(frozen=True)
class Context:
    age_years: int
    sex: str  # male / female / other


@dataclass(frozen=True)
class Formula:
    inputs: tuple[str, ...]
    compute: Callable[[dict[str, Decimal], Context], Decimal | None]
    why_not: str = ""  # shown when compute() declines (e.g. Friedewald with TG > 400)


def _div(a: Decimal, b: Decimal) -> Decimal | None:
    return None if b == 0 else a / b


def _friedewald(v: dict[str, Decimal], _: Context) -> Decimal | None:
    # Friedewald (Clin Chem 1972) is invalid above TG 400 mg/dL: the lab must measure LDL directly.
    if v["TG"] > 400:
        return None
    return v["CHOL"] - v["HDL"] - v["TG"] / 5


def _vldl(v: dict[str, Decimal], _: Context) -> Decimal | None:
    return None if v["TG"] > 400 else v["TG"] / 5


def _egfr_ckd_epi_2021(v: dict[str, Decimal], ctx: Context) -> Decimal | None:
    """CKD-EPI 2021 creatinine equation, without the race coefficient (Inker et al., NEJM 2021):
    142 x min(Scr/k,1)^a x max(Scr/k,1)^-1.200 x 0.9938^age [x 1.012 if female];
    k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M). Adults only; sex must be known."""
    if ctx.age_years < 18 or ctx.sex not in ("male", "female") or v["CREA"] <= 0:
        return None
    female = ctx.sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = float(v["CREA"]) / kappa
    egfr = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938 ** ctx.age_years
    return D(str(egfr * (1.012 if female else 1.0)))


def _absolute(percent_code: str) -> Formula:
    return Formula(("WBC", percent_code), lambda v, _: v["WBC"] * v[percent_code] / 100)


FORMULAS: dict[str, Formula] = {
    "LDL": Formula(("CHOL", "HDL", "TG"), _friedewald, "Not calculated: triglycerides above 400 mg/dL "
                                                        "(Friedewald invalid); measure LDL directly."),
    "VLDL": Formula(("TG",), _vldl, "Not calculated: triglycerides above 400 mg/dL."),
    "NHDL": Formula(("CHOL", "HDL"), lambda v, _: v["CHOL"] - v["HDL"]),
    "TCHDL": Formula(("CHOL", "HDL"), lambda v, _: _div(v["CHOL"], v["HDL"])),
    "IBIL": Formula(("TBIL", "DBIL"), lambda v, _: v["TBIL"] - v["DBIL"]),
    "GLOB": Formula(("TP", "ALB"), lambda v, _: v["TP"] - v["ALB"]),
    "AGR": Formula(("TP", "ALB"), lambda v, _: _div(v["ALB"], v["TP"] - v["ALB"])),
    "BUN": Formula(("UREA",), lambda v, _: v["UREA"] * D("0.467")),
    "EGFR": Formula(("CREA",), _egfr_ckd_epi_2021, "Not calculated: adults (18+) of known sex only."),
    "MCH": Formula(("HB", "RBC"), lambda v, _: _div(v["HB"] * 10, v["RBC"])),
    "MCHC": Formula(("HB", "HCT"), lambda v, _: _div(v["HB"] * 100, v["HCT"])),
    "ANC": _absolute("NEUTP"),
    "ALC": _absolute("LYMPP"),
    "AMC": _absolute("MONOP"),
    "AEC": _absolute("EOSP"),
    "ABC": _absolute("BASOP"),
    "TSAT": Formula(("FE", "TIBC"), lambda v, _: _div(v["FE"] * 100, v["TIBC"])),
    # mg/L albumin over mg/dL creatinine: x100 gives mg albumin per g creatinine.
    "UACR": Formula(("MALB", "UCREA"), lambda v, _: _div(v["MALB"] * 100, v["UCREA"])),
}


def dependents(code: str) -> list[str]:
    """Calculated tests that use `code` as an input."""
    return [name for name, formula in FORMULAS.items() if code in formula.inputs]


def compute(code: str, values: dict[str, Decimal], ctx: Context) -> Decimal | None:
    formula = FORMULAS[code]
    if any(name not in values for name in formula.inputs):
        return None
    return formula.compute(values, ctx)
