"""Results: validation against the test's definition, reference interval and flags, delta
checks, calculated tests, and the technician's worklist.

The interval is chosen by the patient's sex and age *at collection* and copied into the
result, so a later catalogue change never alters what a report said. A result entered here is
"entered", never verified: verification is the pathologist's.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import aliased, contains_eager, joinedload, selectinload

from app import audit
from app.extensions import db
from app.formatting import IST
from app.models import LabTest, Order, OrderTest, ReferenceInterval, Result, Sample
from app.models.base import utcnow
from app.services import ServiceError, calculations, samples

_NUMBER = re.compile(r"^(?P<cmp><=|>=|<|>)?\s*(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))$")
ENTERABLE_SAMPLE_STATES = ("received", "in_process", "done")


class ResultInvalid(ServiceError):
    pass


@dataclass(frozen=True)
class ParsedValue:
    text: str
    number: Decimal | None


# ---------------------------------------------------------------- values and flags

def parse_value(test: LabTest, raw: str, *, strict: bool = True) -> ParsedValue:
    """Validate a value for a test. `strict` (manual entry) refuses what an analyzer may
    legitimately send: '----' or '***' for a numeric test, more decimals than the test keeps,
    a word not in the choice list. Analyzer values are kept as sent (numbers rounded)."""
    text = " ".join((raw or "").split())
    if not text:
        raise ResultInvalid("Enter a value.", field="value")
    if len(text) > 400:
        raise ResultInvalid("Keep the value under 400 characters.", field="value")
    if test.result_type == "numeric":
        return _parse_number(test, text, strict=strict)
    if test.result_type == "choice" and test.choices:
        options = test.choices.split("|")
        for option in options:
            if option.lower() == text.lower():
                return ParsedValue(option, None)
        if strict:
            raise ResultInvalid(f"Choose one of: {', '.join(options)}.", field="value")
    return ParsedValue(text, None)


def _parse_number(test: LabTest, text: str, *, strict: bool) -> ParsedValue:
    candidate = text.replace(" ", "")
    if candidate.count(",") == 1 and "." not in candidate:
        candidate = candidate.replace(",", ".")  # comma decimals from European-configured analyzers
    match = _NUMBER.match(candidate)
    if match is None:
        if strict:
            raise ResultInvalid(f"{test.name} is a number (in {test.unit or 'its unit'}).", field="value")
        return ParsedValue(text, None)
    try:
        number = Decimal(match["num"])
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise ResultInvalid("Enter a number.", field="value") from None
    decimals = max(0, -number.as_tuple().exponent) if isinstance(number.as_tuple().exponent, int) else 0
    if strict and decimals > test.decimals:
        raise ResultInvalid(f"{test.name} is reported with {test.decimals} decimal"
                            f"{'' if test.decimals == 1 else 's'}.", field="value")
    return ParsedValue(format_number(number, test.decimals, match["cmp"] or ""), number)


def format_number(number: Decimal, decimals: int, comparator: str = "") -> str:
    quantum = Decimal(1).scaleb(-decimals)
    return f"{comparator}{number.quantize(quantum, rounding=ROUND_HALF_UP)}"


def age_in_days(date_of_birth: date, at: datetime | date) -> int:
    on = at.astimezone(IST).date() if isinstance(at, datetime) else at
    return max(0, (on - date_of_birth).days)


@dataclass(frozen=True)
class Interval:
    """A reference interval as results use it: read from ReferenceInterval, kept per process."""
    id: int
    sex: str
    age_min_days: int
    age_max_days: int
    low: Decimal | None
    high: Decimal | None
    critical_low: Decimal | None
    critical_high: Decimal | None
    text: str | None
    source: str


# (test id, lab_test.updated_at) -> its intervals. Every result save flags against them, and
# loading them was a join (a row per interval through every entity of the save) on each save.
# A trigger moves lab_test.updated_at on any change to the test's intervals (migration 0016),
# and the key is read from the test row the save loads in its own transaction, so a changed
# interval is never served from here. Bounded: cleared when it grows past the limit.
_INTERVALS: dict[tuple[int, datetime], tuple[Interval, ...]] = {}
_INTERVALS_LIMIT = 5000


def intervals_of(test: LabTest) -> tuple[Interval, ...]:
    cached = _INTERVALS.get((test.id, test.updated_at))
    if cached is None:
        load_intervals([test])
        cached = _INTERVALS[(test.id, test.updated_at)]
    return cached


def load_intervals(tests: Iterable[LabTest]) -> None:
    """Put the intervals of every test not cached yet in the cache, in one query (a whole
    grid's tests on a fresh process)."""
    missing = {test.id: test for test in tests if (test.id, test.updated_at) not in _INTERVALS}
    if not missing:
        return
    found: dict[int, list[Interval]] = {test_id: [] for test_id in missing}
    # In the order of LabTest.intervals, so choose_interval breaks any tie as it always did.
    for iv in db.session.execute(select(ReferenceInterval).where(ReferenceInterval.test_id.in_(missing))
                                 .order_by(ReferenceInterval.sex, ReferenceInterval.age_min_days)).scalars():
        found[iv.test_id].append(Interval(iv.id, iv.sex, iv.age_min_days, iv.age_max_days, iv.low, iv.high,
                                          iv.critical_low, iv.critical_high, iv.text, iv.source or ""))
    if len(_INTERVALS) + len(found) > _INTERVALS_LIMIT:
        _INTERVALS.clear()
    for test_id, intervals in found.items():
        _INTERVALS[(test_id, missing[test_id].updated_at)] = tuple(intervals)


def choose_interval(intervals: "Sequence[Interval | ReferenceInterval]", sex: str,
                    age_days: int) -> "Interval | ReferenceInterval | None":
    """The interval for this sex and age: a sex-specific band beats 'any', a narrower age band
    beats a wider one."""
    fitting = [iv for iv in intervals
               if iv.sex in (sex, "any") and iv.age_min_days <= age_days < iv.age_max_days]
    if not fitting:
        return None
    return min(fitting, key=lambda iv: (iv.sex == "any", iv.age_max_days - iv.age_min_days))


def interval_snapshot(iv: "Interval | ReferenceInterval | None") -> dict | None:
    if iv is None:
        return None
    return {key: (str(value) if isinstance(value, Decimal) else value) for key, value in (
        ("id", iv.id), ("sex", iv.sex), ("age_min_days", iv.age_min_days), ("age_max_days", iv.age_max_days),
        ("low", iv.low), ("high", iv.high), ("critical_low", iv.critical_low),
        ("critical_high", iv.critical_high), ("text", iv.text), ("source", iv.source))}


def flag_for(value: ParsedValue, iv: "Interval | ReferenceInterval | None") -> tuple[str | None, bool]:
    """(flag, critical). LL/HH beyond the critical limits, L/H outside the interval, A for a
    qualitative value other than the interval's normal text."""
    if iv is None:
        return None, False
    if value.number is not None:
        n = value.number
        if iv.critical_low is not None and n < iv.critical_low:
            return "LL", True
        if iv.critical_high is not None and n > iv.critical_high:
            return "HH", True
        if iv.low is not None and n < iv.low:
            return "L", False
        if iv.high is not None and n > iv.high:
            return "H", False
        return None, False
    if iv.text and iv.low is None and iv.high is None and value.text.lower() != iv.text.lower():
        return "A", False
    return None, False


def delta_for(test: LabTest, patient_id: int, order_id: int, number: Decimal | None) -> dict | None:
    """Compare with the patient's previous result of this test from an earlier order."""
    if number is None or (test.delta_abs is None and test.delta_pct is None):
        return None
    previous = db.session.execute(
        select(Result.value_num, Result.entered_at, OrderTest.id).join(OrderTest, Result.order_test_id == OrderTest.id)
        .where(Result.patient_id == patient_id, Result.test_id == test.id, Result.is_current,
               Result.value_num.is_not(None), OrderTest.order_id != order_id)
        .order_by(Result.entered_at.desc()).limit(1)).first()
    if previous is None:
        return None
    change = number - previous.value_num
    failed = test.delta_abs is not None and abs(change) > test.delta_abs
    percent = None
    if previous.value_num != 0:
        percent = (abs(change) / abs(previous.value_num) * 100).quantize(Decimal("0.1"))
        failed = failed or (test.delta_pct is not None and percent > test.delta_pct)
    return {"previous": str(previous.value_num.normalize()), "previous_at": previous.entered_at.isoformat(),
            "change": str(change.normalize()), "percent": None if percent is None else str(percent),
            "limit_abs": None if test.delta_abs is None else str(test.delta_abs),
            "limit_pct": None if test.delta_pct is None else str(test.delta_pct), "failed": failed}


# ---------------------------------------------------------------- saving

@dataclass
class Entry:
    """What to save for one ordered test."""
    raw: str
    comment: str = ""
    source: str = "manual"
    instrument_id: int | None = None
    message_id: int | None = None
    instrument_flags: str = ""
    factor: Decimal | None = None  # instrument unit -> catalogue unit


def current_result(order_test_id: int) -> Result | None:
    return db.session.execute(select(Result).where(Result.order_test_id == order_test_id, Result.is_current)
                              ).scalar_one_or_none()


def _collection_time(sample: Sample | None) -> datetime:
    if sample is not None:
        return sample.collected_at or sample.received_at or utcnow()
    return utcnow()


@dataclass
class Saved:
    """What one save changed: the result, its ordered test, and the calculated tests of the
    order that use it, each with its current result (the grid re-renders exactly these)."""
    order_test: OrderTest
    result: Result
    dependents: list[tuple[OrderTest, Result | None]]


def save(order_test: OrderTest, entry: Entry, *, user_id: int | None) -> Result:
    """Save a result for one ordered test and recompute the calculated tests that use it. The
    rows are written (flushed) before it returns, so a caller may point other rows at the
    result's id (the unmatched queue does) without a relationship to order the writes."""
    saved = save_with_dependents(order_test, entry, user_id=user_id).result
    db.session.flush()
    return saved


def save_with_dependents(order_test: OrderTest, entry: Entry, *, user_id: int | None) -> Saved:
    """Save a result and recompute the calculated tests that use it."""
    locked = _lock_for_save(OrderTest.id == order_test.id)
    assert locked is not None  # the caller holds the row
    return _save_locked(*locked, entry, user_id=user_id)


def save_entry(accession: str, order_test_id: int, entry: Entry, *, user_id: int | None) -> Saved | None:
    """The grid's save: the ordered test only if it belongs to the order with this
    accession (None otherwise), found, locked and loaded in one statement. The new rows are
    written with the caller's commit (one flush for the whole save)."""
    locked = _lock_for_save(OrderTest.id == order_test_id, Order.accession == accession)
    return None if locked is None else _save_locked(*locked, entry, user_id=user_id)


def _lock_for_save(*where) -> tuple[OrderTest, Result | None, int] | None:  # type: ignore[no-untyped-def]
    """The order row is locked first: two inputs of one order saved at the same moment (two
    screens, a screen and an analyzer) are serialised, so the calculated tests always see
    every input and never keep a stale value. The same statement loads everything a save
    reads - the ordered test, its order, patient, test and tube, its current result and how
    many other tests on its tube still wait - instead of a lock plus a query or lazy load for
    each (the test's intervals come from intervals_of). The count holds until the commit:
    the tube's tests belong to this order, whose row is locked."""
    others = aliased(OrderTest)
    others_waiting = (select(func.count(others.id))
                      .where(others.sample_id == OrderTest.sample_id, others.status == "pending",
                             others.id != OrderTest.id).scalar_subquery())
    row = db.session.execute(
        select(OrderTest, Order.id, Result, others_waiting).join(OrderTest.order)
        .outerjoin(Result, (Result.order_test_id == OrderTest.id) & Result.is_current)
        .where(*where)
        .options(contains_eager(OrderTest.order).joinedload(Order.patient),
                 joinedload(OrderTest.test), joinedload(OrderTest.sample))
        .with_for_update(of=Order)).first()
    return None if row is None else (row[0], row[2], row[3])


def _save_locked(order_test: OrderTest, current: Result | None, others_waiting: int, entry: Entry, *,
                 user_id: int | None) -> Saved:
    result = _save_one(order_test, entry, user_id=user_id, current=current, others_waiting=others_waiting)
    _, dependents = _recalculate(order_test.order, changed_code=order_test.test.code, user_id=user_id)
    return Saved(order_test, result, dependents)


_UNKNOWN = object()


def _save_one(order_test: OrderTest, entry: Entry, *, user_id: int | None, current: object = _UNKNOWN,
              others_waiting: int | None = None) -> Result:
    test, sample = order_test.test, order_test.sample
    if entry.source != "calculated" and (sample is None or sample.status not in ENTERABLE_SAMPLE_STATES):
        state = "rejected" if sample is not None and sample.status == "rejected" else "not received yet"
        raise ResultInvalid(f"The tube for {test.name} is {state}: results need a received tube.")
    value = parse_value(test, entry.raw, strict=entry.source == "manual")
    if value.number is not None and entry.factor not in (None, Decimal(1)):
        number = value.number * entry.factor
        value = ParsedValue(format_number(number, test.decimals, value.text[:1] if value.text[:1] in "<>" else ""),
                            number)
    elif value.number is not None:
        value = ParsedValue(value.text, value.number.quantize(Decimal(1).scaleb(-test.decimals),
                                                              rounding=ROUND_HALF_UP))
    comment = entry.comment.strip()[:2000]
    if current is _UNKNOWN:  # the caller may already know it (recalculation does)
        current = current_result(order_test.id)
    assert current is None or isinstance(current, Result)
    if current is not None and current.status not in ("entered",):
        raise ResultInvalid(f"{test.name} is already {current.status}: the pathologist must send it back "
                            f"before it can change.")
    if current is not None and current.value_text == value.text and current.comment == comment \
            and current.source == entry.source:
        return current  # the same value saved again (a double Enter, a resent message)
    patient = order_test.order.patient
    at = _collection_time(sample)
    iv = choose_interval(intervals_of(test), patient.sex, age_in_days(patient.date_of_birth, at))
    flag, critical = flag_for(value, iv)
    fields = dict(value_text=value.text, value_num=value.number, unit=test.unit, flag=flag, critical=critical,
                  interval=interval_snapshot(iv), comment=comment, source=entry.source,
                  instrument_id=entry.instrument_id, message_id=entry.message_id,
                  instrument_flags=entry.instrument_flags[:60],
                  delta=delta_for(test, patient.id, order_test.order_id, value.number))
    audited = ("value_text", "flag", "critical", "comment", "source")
    if current is not None and entry.source in ("manual", "calculated"):
        # A correction before verification: same attempt, the change is in the audit trail.
        audit.apply_changes(current, {**fields, "entered_by_id": user_id, "entered_at": utcnow()},
                            entity_type="result", fields=audited)
        result = current
    else:
        if current is not None:  # the analyzer ran the sample again: a new attempt, the old one kept
            current.is_current, current.status = False, "rerun"
            db.session.flush([current])
        order_test.attempts = (order_test.attempts or 0) + 1
        order_test.status = "entered"  # before the flush below: one UPDATE of the row, not two
        result = Result(order_test_id=order_test.id, patient_id=patient.id, test_id=test.id,
                        attempt=order_test.attempts, entered_by_id=user_id, status="entered", **fields)
        audit.add_created(result, entity_type="result", fields=("order_test_id", "attempt", *audited),
                          extra={"test": test.code, "message_id": entry.message_id}, flush=False)
    order_test.status = "entered"
    if entry.source != "calculated":
        from app.services import verification  # verification builds on results, not the other way
        verification.try_autoverify(result, order_test, test, sample)
    if sample is not None:
        samples.start_processing(sample)
        samples.complete_if_done(sample, entered=order_test, others_waiting=others_waiting)
    return result


def recalculate(order: Order, *, changed_code: str | None = None, user_id: int | None = None) -> list[Result]:
    """Compute the order's calculated tests whose inputs all have values. A value an analyzer
    or a person entered for a 'calculated' test (MCH from the analyzer) is never overwritten.
    With `changed_code`, only the formulas that use that test are looked at (most saves on a
    busy grid touch one or two)."""
    return _recalculate(order, changed_code=changed_code, user_id=user_id)[0]


def _recalculate(order: Order, *, changed_code: str | None, user_id: int | None
                 ) -> tuple[list[Result], list[tuple[OrderTest, Result | None]]]:
    """The results computed, and every calculated test looked at with its current result."""
    formulas = calculations.dependents(changed_code) if changed_code is not None else list(calculations.FORMULAS)
    if not formulas:
        return [], []
    # Only the order's tests these formulas involve (a package has ~80 tests; loading them all
    # on every save was most of a save's time), with their tests in the identity map so
    # `ot.test` below costs no query.
    involved = set(formulas) | {name for code in formulas for name in calculations.FORMULAS[code].inputs}
    # The tests come attached to their ordered tests (not as loose rows the identity map
    # would drop and `ot.test` load again one by one), each with its current result. The
    # query's autoflush writes the result just saved first, so it is among them.
    found = db.session.execute(
        select(OrderTest, LabTest.id, Result).join(OrderTest.test)
        .outerjoin(Result, (Result.order_test_id == OrderTest.id) & Result.is_current)
        .where(OrderTest.order_id == order.id, LabTest.code.in_(involved))
        .options(contains_eager(OrderTest.test))).all()
    wanted = {ot.test.code: ot for ot, _, _ in found if ot.test.code in formulas}
    if not wanted:
        return [], []
    currents = {ot.id: result for ot, _, result in found if result is not None}
    values = {ot.test.code: result.value_num for ot, _, result in found
              if result is not None and result.value_num is not None}
    patient = order.patient
    ctx = calculations.Context(age_years=age_in_days(patient.date_of_birth, utcnow()) // 365, sex=patient.sex)
    saved, rows = [], []
    for code, order_test in wanted.items():
        existing = currents.get(order_test.id)
        rows.append((order_test, existing))
        if existing is not None and (existing.source != "calculated" or existing.status != "entered"):
            continue
        number = calculations.compute(code, values, ctx)
        if number is None:
            continue
        saved.append(_save_one(order_test, Entry(raw=format_number(number, order_test.test.decimals),
                                                 source="calculated"), user_id=user_id, current=existing))
        rows[-1] = (order_test, saved[-1])
    return saved, rows


# ---------------------------------------------------------------- reading

def order_tests_for_entry(order_id: int, ids: list[int] | None = None) -> list[OrderTest]:
    """An order's tests with what the entry grid shows. With `ids` (the rows one save
    re-renders, which mostly have results and so their interval snapshot), the intervals and
    the patient are left to load only where a row has no result yet."""
    stmt = select(OrderTest).where(OrderTest.order_id == order_id).order_by(OrderTest.id)
    if ids is None:
        stmt = stmt.options(selectinload(OrderTest.test),
                            selectinload(OrderTest.sample), selectinload(OrderTest.order).selectinload(Order.patient))
    else:
        stmt = stmt.where(OrderTest.id.in_(ids)).options(joinedload(OrderTest.test), joinedload(OrderTest.sample))
    return list(db.session.execute(stmt).scalars())


def order_test_of(accession: str, order_test_id: int) -> OrderTest | None:
    """One ordered test, only if it belongs to the order with this accession."""
    return db.session.execute(select(OrderTest, Order.id).join(Order, OrderTest.order_id == Order.id)
                              .where(OrderTest.id == order_test_id, Order.accession == accession)).scalar()


def dependent_ids(order_test: OrderTest) -> list[int]:
    """Ids of the order's calculated tests that use this test's value (they change with it)."""
    codes = calculations.dependents(order_test.test.code)
    if not codes:
        return []
    return list(db.session.execute(
        select(OrderTest.id, LabTest.code).join(LabTest, OrderTest.test_id == LabTest.id)
        .where(OrderTest.order_id == order_test.order_id, LabTest.code.in_(codes))).scalars())


def currents_for(order_test_ids: list[int]) -> dict[int, Result]:
    if not order_test_ids:
        return {}
    return {r.order_test_id: r for r in db.session.execute(
        select(Result).where(Result.order_test_id.in_(order_test_ids), Result.is_current)).scalars()}


@dataclass(frozen=True)
class WorklistFilter:
    department_id: int | None = None
    instrument_id: int | None = None
    status: str = "pending"  # pending | entered | all
    priority: str | None = None
    day: date | None = None
    limit: int = 200


def worklist(f: WorklistFilter) -> list[OrderTest]:
    """Tests on received tubes, STAT first, then those with a critical result, then oldest."""
    from app.models import InstrumentCode
    # Every joined tenant table is named in the select list so tenant scoping covers it.
    stmt = (select(OrderTest, Sample.id, Order.id, LabTest.id, Result.id).join(Sample, OrderTest.sample_id == Sample.id).join(Order, OrderTest.order_id == Order.id)
            .join(LabTest, OrderTest.test_id == LabTest.id)
            .outerjoin(Result, (Result.order_test_id == OrderTest.id) & Result.is_current)
            .where(Sample.status.in_(("received", "in_process", "done")))
            .options(selectinload(OrderTest.test), selectinload(OrderTest.sample),
                     selectinload(OrderTest.order).selectinload(Order.patient)))
    if f.status == "pending":
        stmt = stmt.where(OrderTest.status == "pending")
    elif f.status == "entered":
        stmt = stmt.where(OrderTest.status == "entered")
    if f.department_id:
        stmt = stmt.where(LabTest.department_id == f.department_id)
    if f.instrument_id:
        stmt = stmt.where(LabTest.id.in_(select(InstrumentCode.test_id)
                                         .where(InstrumentCode.instrument_id == f.instrument_id)))
    if f.priority in ("routine", "urgent", "stat"):
        stmt = stmt.where(Order.priority == f.priority)
    if f.day:
        start = datetime.combine(f.day, datetime.min.time(), tzinfo=IST)
        stmt = stmt.where(Sample.received_at >= start, Sample.received_at < start + timedelta(days=1))
    stmt = stmt.order_by((Order.priority == "stat").desc(), Result.critical.is_(True).desc(),
                         (Order.priority == "urgent").desc(), Sample.received_at, OrderTest.id).limit(f.limit)
    return list(db.session.execute(stmt).scalars())
