"""Patient name search by word (services/patients.py search): names beginning with 1–2
letters, one word, several words driven from the rarest, misspellings, the word index kept
right through registrations and renames, and tenant isolation."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event, func, select

from app import audit, security
from app.extensions import db
from app.models import NameWord, Patient, PatientWord
from app.services import names, patients


@pytest.fixture
def org(factory):
    return factory.org()


@pytest.fixture
def add(factory, org):
    """Register patients in `org` by name (mobiles made unique); returns the patient."""

    def register(name: str, *, in_org=None):  # type: ignore[no-untyped-def]
        return factory.patient(in_org or org, name=name)

    return register


def found(query: str) -> list[str]:
    return [p.full_name for p in patients.search(query)]


def word_index(session) -> tuple[dict[str, int], set[tuple[int, str]]]:
    """(dictionary word → count, {(patient id, word)}) of the current organization."""
    counts = dict(session.execute(select(NameWord.word, NameWord.patients)).all())
    rows = set(session.execute(select(PatientWord.patient_id, PatientWord.word)).all())
    return counts, rows


def expected_index(session) -> tuple[dict[str, int], set[tuple[int, str]]]:
    """The same, recomputed from the patients' folded names (what the migration does)."""
    rows = {(pid, w) for pid, key in session.execute(select(Patient.id, Patient.name_search)) for w in key.split()}
    counts: dict[str, int] = {}
    for _, word in rows:
        counts[word] = counts.get(word, 0) + 1
    return counts, rows


def test_under_three_letters_finds_names_beginning_with_them_in_name_order(add):
    for name in ("Kavita Rao", "Kamal Nath", "Ramesh Kapoor", "K. Suresh", "Kiran Bedi"):
        add(name)
    assert found("Ka") == ["Kamal Nath", "Kavita Rao"]  # not Kapoor (not the beginning), not "K. Suresh"
    assert found("KA") == found("ka")
    assert found("Ki") == ["Kiran Bedi"]
    assert found("Ze") == []


def test_one_word_finds_a_surname_and_a_given_name_beginning_best_match_first(add):
    add("Mohan Raut")
    add("Asha Rao")
    add("Vikram Rao")
    add("Kavitha Iyer")
    add("Kaveri Menon")
    assert found("rao")[:2] == ["Vikram Rao", "Asha Rao"]  # exact word first, newest first among equals
    assert "Mohan Raut" in found("rao")  # a near word, after them
    assert set(found("Kavi")) == {"Kavitha Iyer", "Kaveri Menon"}
    assert found("Iyer") == ["Kavitha Iyer"]


def test_a_surname_that_folds_under_three_letters_is_a_word_not_a_beginning(add):
    add("Ravi Jha")
    add("Jaya Prakash")
    add("Amit Dey")
    assert fold_lengths("Jha", "Dey") == [2, 2]
    assert found("Jha")[0] == "Ravi Jha"  # "ja": the word, before names beginning with it
    assert found("Dey") == ["Amit Dey"]
    assert found("Ja") == ["Jaya Prakash"]  # two letters typed: names beginning with them


def fold_lengths(*typed: str) -> list[int]:
    return [len(names.fold(t)) for t in typed]


def test_one_common_word_returns_the_newest_of_its_patients(add):
    for n in range(patients.NEWEST_PER_WORD + 5):
        add(f"Person{chr(65 + n % 26)}{n} Gowda")
    result = patients.search("Gowda")
    assert len(result) == 20
    assert [p.id for p in result] == sorted((p.id for p in result), reverse=True)


def test_several_words_start_from_the_rarest_and_match_every_word(add, session):
    for given in ("Manjunath", "Ramesh", "Suresh", "Lokesh", "Mahesh", "Prakash", "Naveen", "Santosh", "Girish",
                  "Harish", "Umesh", "Dinesh"):
        add(f"{given} Gowda")  # many Gowdas
    add("Gowramma Gowda")
    add("Gowramma Shetty")
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        result = found("Gowramma Gowda")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert result[0] == "Gowramma Gowda"
    assert not {"Manjunath Gowda", "Ramesh Gowda"} & set(result)  # every typed word must match
    # The patients read are the rare word's ("hit.word = ANY(…)"); Gowdas are only probed.
    drive = [(sql, params) for sql, params in statements if "FROM patient_word AS hit" in sql]
    assert len(drive) == 1
    sql, params = drive[0]
    listed = re.search(r"hit\.word = ANY \(%\((\w+)\)s", sql).group(1)
    assert params[listed] == [names.fold("Gowramma")]


def test_an_old_patient_with_two_common_words_is_found(add):
    old = add("Ramesh Kumar")
    for n in range(patients.NEWEST_PER_WORD + 3):
        add(f"Ramesh Other{chr(65 + n % 26)}{n}")
        add(f"Someone{chr(65 + n % 26)}{n} Kumar")
    assert patients.search("Ramesh Kumar")[0].id == old.id
    assert patients.search("kumar ramesh")[0].id == old.id


def test_initials_and_short_words_match_the_beginning_of_a_word(add):
    add("K. Ramesh")
    add("S. Ramesh")
    add("Ramesh Kapoor")
    assert found("K Ramesh") == ["K. Ramesh", "Ramesh Kapoor"]  # "K" begins a word of both


@pytest.mark.parametrize("registered,typed", [
    ("Lakshmi Gudivada", "Laxmi Gudivada"),     # a variant fold() joins
    ("Mohammed Sheikh", "Muhammad Shekh"),     # variants in both words
    ("Anthony Gomes", "Anthoy Gomes"),         # a typing slip
    ("Hemant Rana", "Hemnat Rana"),            # two letters swapped
    ("Sumanta Das", "Sumatna Das"),
    ("Preeti Sharma", "priti"),                # one word, a variant
    ("Sreelakshmi Swaminathan", "Srilaksmhi Swaminathan"),
    ("Rashid Farooqui", "Rsahid Farooqui"),    # a swap that fold() turns into two edits
    ("Rekha Hegde", "Rkha Hegde"),             # a dropped vowel
    ("Nasreen Ansari", "Narseen Ansari"),      # two letters swapped
    ("Prakash Patil", "Praksah Patil"),        # a swap that fold() would not undo
])
def test_misspellings_and_variants_are_found_first(add, registered, typed):
    add("Someone Else")
    add(registered)
    add("Ravi Das")
    assert found(typed)[0] == registered, typed


def test_a_word_one_slip_away_ranks_before_words_that_merely_share_trigrams(add):
    add("Nirmala Mehta")
    add("Nirav Mehta")  # newer, and nearer to "Niramla" by trigrams
    assert found("Niramla Mehta")[0] == "Nirmala Mehta"


def test_a_typed_word_the_name_lacks_still_finds_the_closest_names(add):
    add("Anthony Gomes")
    add("Maria Fernandes")
    assert found("Anthony Joseph Gomes") == ["Anthony Gomes"]  # registered without the middle name
    assert found("Qwxyz Pqrst") == []  # nothing like any word


def test_registration_and_renames_keep_the_word_index_and_counts_right(add, org, session):
    asha = add("Asha Rao")
    add("Vikram Rao")
    add("Asha Kumari")
    counts, _ = word_index(session)
    assert counts[names.fold("Asha")] == 2 and counts[names.fold("Rao")] == 2
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        patients.update(asha, {**patients.as_form_data(asha), "name": "Asha Reddy"})
        session.commit()
    assert word_index(session) == expected_index(session)
    counts, rows = word_index(session)
    assert counts[names.fold("Rao")] == 1 and counts[names.fold("Reddy")] == 1 and counts[names.fold("Asha")] == 2
    assert (asha.id, names.fold("Rao")) not in rows
    assert found("Reddy") == ["Asha Reddy"] and found("Rao") == ["Vikram Rao"]
    # A word no patient has any more leaves the dictionary.
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        patients.update(asha, {**patients.as_form_data(asha), "name": "Asha Rao"})
        session.commit()
    counts, _ = word_index(session)
    assert names.fold("Reddy") not in counts and counts[names.fold("Rao")] == 2
    # An edit that does not touch the name leaves the index alone; a name with a repeated
    # word counts the patient once.
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        patients.update(asha, {**patients.as_form_data(asha), "city": "Mysuru"})
        add("Kumar Kumar")
        session.commit()
    assert word_index(session) == expected_index(session)
    assert found("Reddy") == []


def test_another_organizations_patients_and_words_never_come_back(add, factory, org, session):
    other = factory.org()
    theirs = [add("Gowramma Gowda", in_org=other), add("Zubeida Khan", in_org=other), add("Kavya Rao", in_org=other)]
    security.use_tenant(session, org.id)
    mine = add("Gowramma Gowda")
    add("Zubin Mehta")
    add("Kavita Rao")
    security.use_tenant(session, org.id)
    mobile = theirs[1].mobile
    for typed in ("Gowramma Gowda", "Gowramma", "Gowda", "Zubeida", "Zubeida Khan", "Kavya", "Ka", "Rao",
                  theirs[1].mrn, mobile):
        result = patients.search(typed)
        assert all(p.org_id == org.id for p in result), typed
        assert not {p.id for p in result} & {p.id for p in theirs}, typed
    assert [p.id for p in patients.search("Gowramma Gowda")] == [mine.id]
    # Their words are not in this organization's dictionary, so never suggested here.
    looked_up, _ = patients._look_up(["zubid", "kavi", "kan", "zubia"], {})
    suggested = {w for typed in looked_up for w in typed.near.keys() | typed.slips}
    assert suggested and not suggested & {names.fold("Zubeida"), names.fold("Kavya"), names.fold("Khan")}
    counts, _ = word_index(session)
    assert counts[names.fold("Gowramma")] == 1  # theirs is counted in their dictionary only
    security.use_tenant(session, other.id)
    assert word_index(session)[0][names.fold("Gowramma")] == 1


def test_name_search_refuses_to_run_without_an_organization(add, session):
    add("Asha Rao")
    security.use_tenant(session, None)
    with pytest.raises(security.TenantNotSet):
        patients.search("Asha Rao")


def test_the_word_index_is_what_the_migration_computes_from_the_names(add, session):
    """The service's rows equal migration 0007's backfill: string_to_array(name_search, ' ')."""
    for name in ("Asha Rao", "Vikram Rao", "K. Ramesh", "Dr. Meera Iyer", "Kumar Kumar", "राम कुमार शर्मा", "Mr"):
        add(name)
    by_sql = set(session.execute(
        select(Patient.id, func.unnest(func.string_to_array(Patient.name_search, " ")))).all())
    assert word_index(session) == expected_index(session)
    assert word_index(session)[1] == by_sql
