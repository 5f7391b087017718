"""A bench database with a million patients in the demo lab, kept between runs.

    from patients_1m import ensure_dataset
    url = ensure_dataset(server_url, env_for, patients=1_000_000, reuse=True)

`lis_bench_search` (not `lis_bench`, which bench/run.py drops and re-creates) is migrated
and seeded through the app like any bench database, then filled with COPY: rows are made
in Python (names need the app's own fold()) and streamed in one COPY with the patient
table's secondary indexes dropped, then the indexes are re-created from their own
definitions (pg_get_indexdef, so whatever the migrations say is what gets built), and the
table is VACUUM ANALYZEd. About 2–4 minutes on 2 cores; `reuse` skips all that when the
database already holds this generator's data and its names still fold the way
app/services/names.py folds them today.

The name search's word tables (name_word, patient_word: migration 0007) are filled from
the loaded names with the migration's own backfill statements (`fill_words`).

The patients:
- names from bench/indian_names.py: a region first (weighted), then a given name, sometimes
  a middle name or (south) an initial, and a surname, favouring the front of each list so
  common names are common; 15 % take their given name from another region;
- name_search = app.services.names.fold(full_name), computed by the app's function;
- MRNs 100001… with the app's Verhoeff check digit (identifiers.with_check_digit), and
  patient_mrn_seq moved past them, so the app's next MRN does not collide;
- E.164 mobiles +91 9xxxxxxxxx; in every block of ten patients three are a family sharing
  one mobile and a surname;
- dates of birth from newborns to 95 years (15 % estimated from an age), sex from the
  given name (a few "other"), registered at the main lab or the collection centre over
  the last three years.
"""
from __future__ import annotations

import functools
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR.parent))  # the project, after bench/ (both have a run.py)

import database  # noqa: E402
import indian_names  # noqa: E402

SEARCH_DB = "lis_bench_search"
GENERATOR_VERSION = 1  # bump when the rows generated change
SEED = 20261121
FIRST_MRN = 100001
FAMILY_BLOCK, FAMILY_SIZE = 10, 3  # in each block of 10 patients, 3 share a mobile
MOBILE_MULTIPLIER = 387420489  # 3**18: coprime with 10**9, so key → key·m mod 10**9 is one-to-one
COLUMNS = ("mrn", "full_name", "name_search", "sex", "date_of_birth", "dob_estimated", "mobile", "address",
           "city", "registered_branch_id", "org_id", "created_at", "updated_at")


def admin_url(server_url: str) -> str:
    return database._libpq_url(database.with_database(server_url, "postgres"))


def search_db_url(server_url: str) -> str:
    return database._libpq_url(database.with_database(server_url, SEARCH_DB))


def _meta(server_url: str) -> dict | None:
    """The dataset description stored as the database's comment, or None if there is no
    such database (or it was never finished)."""
    with psycopg.connect(admin_url(server_url), autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                           (SEARCH_DB,)).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0] or "null")
    except ValueError:
        return None


def ensure_dataset(server_url: str, env_for: Callable[[str], dict[str, str]], *, patients: int, reuse: bool,
                   password: str) -> str:
    """The URL of a migrated, seeded database holding `patients` generated patients.
    `env_for(database_url)` gives the environment the app is configured from."""
    url = search_db_url(server_url)
    meta = _meta(server_url)
    if reuse and meta and meta.get("patients") == patients and meta.get("generator") == GENERATOR_VERSION:
        stale = _fold_mismatches(url)
        if not stale:
            print(f"Reusing {SEARCH_DB} ({patients:,} patients, loaded {meta.get('loaded_at')}); "
                  "migrating to head if needed…", flush=True)
            database.migrate_and_seed(env_for(url), password)  # no-op when up to date and seeded
            settle_words(url)  # a migration that just backfilled them cannot VACUUM
            return url
        print(f"{SEARCH_DB}: {stale} sampled names no longer fold as name_search says (names.py changed); "
              "rebuilding.", flush=True)
    elif reuse:
        print(f"{SEARCH_DB} missing or not this dataset ({meta}); building it.", flush=True)
    _recreate(server_url)
    started = time.monotonic()
    print(f"Migrating and seeding {SEARCH_DB}…", flush=True)
    database.migrate_and_seed(env_for(url), password)
    load_patients(url, patients)
    loaded = dict(patients=patients, generator=GENERATOR_VERSION, seed=SEED,
                  loaded_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  build_seconds=round(time.monotonic() - started))
    with psycopg.connect(admin_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(SEARCH_DB),
                                                                     sql.Literal(json.dumps(loaded))))
    return url


def _recreate(server_url: str) -> None:
    with psycopg.connect(admin_url(server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SEARCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SEARCH_DB}")


def drop(server_url: str) -> None:
    with psycopg.connect(admin_url(server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SEARCH_DB} WITH (FORCE)")


def _fold_mismatches(url: str, sample: int = 3000) -> int:
    """How many of a sample of stored names the app's fold() would now key differently."""
    from app.services.names import fold

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT full_name, name_search FROM patient TABLESAMPLE SYSTEM (1) LIMIT %s",
                            (sample,)).fetchall()
    if not rows:
        return sample
    return sum(1 for full, key in rows if fold(full) != key)


# --- generation -----------------------------------------------------------------------


def _pick(rng: random.Random, items: tuple[str, ...], skew: float = 1.7) -> str:
    """Favour the front of the list: index = n · u^skew."""
    return items[int(len(items) * rng.random() ** skew)]


def mobile_for(key: int) -> str:
    return "+919%09d" % ((key * MOBILE_MULTIPLIER) % 10**9)


def _age_days(rng: random.Random) -> int:
    if rng.random() < 0.08:
        return rng.randrange(0, 13 * 365)  # children, newborns included
    return int(rng.triangular(13, 95, 38) * 365.25) + rng.randrange(365)


def generate(count: int, org_id: int, branch_ids: list[int], seed: int = SEED) -> Iterator[tuple]:
    """Rows in COPY column order (COLUMNS)."""
    from app.services.identifiers import with_check_digit
    from app.services.names import fold

    folded = functools.lru_cache(maxsize=None)(fold)
    rng = random.Random(seed)
    regions = indian_names.REGIONS
    weights = [r.weight for r in regions]
    today = date.today()
    now = datetime.now(timezone.utc)
    family: tuple[indian_names.Region, str] | None = None
    for i in range(count):
        block, member = divmod(i, FAMILY_BLOCK)
        if member < FAMILY_SIZE:
            if member == 0:
                region = rng.choices(regions, weights)[0]
                family = (region, _pick(rng, region.surnames))
            region, surname = family  # type: ignore[misc]
            mobile = mobile_for(1 + block)
        else:
            region = rng.choices(regions, weights)[0]
            surname = _pick(rng, region.surnames)
            mobile = mobile_for(10**7 + i)
        given_from = rng.choices(regions, weights)[0] if rng.random() < 0.15 else region
        female = rng.random() < 0.5
        given = _pick(rng, given_from.female if female else given_from.male)
        sex = "female" if female else "male"
        if rng.random() < 0.002:
            sex = "other"
        parts = [given]
        middles = region.middle_female if female else region.middle_male
        if middles and rng.random() < 0.3:
            middle = _pick(rng, middles, 1.0)
            if middle != surname:
                parts.append(middle)
        parts.append(surname)
        if region.initials and rng.random() < 0.3:
            parts.insert(0, rng.choice("ABCDGKMNPRSTV") + ".")
        full_name = " ".join(parts)
        age = _age_days(rng)
        created = now - timedelta(seconds=rng.randrange(3 * 365 * 86400))
        yield (with_check_digit(FIRST_MRN + i), full_name, folded(full_name), sex,
               today - timedelta(days=age), rng.random() < 0.15, mobile, "", "",
               branch_ids[0] if rng.random() < 0.6 else branch_ids[-1], org_id, created, created)


def load_patients(url: str, count: int) -> None:
    """COPY `count` generated patients into the demo lab, with the table's secondary
    indexes dropped during the load and re-created afterwards; then VACUUM ANALYZE."""
    with psycopg.connect(url) as conn:
        org_id = conn.execute("SELECT id FROM organization WHERE code = 'demo'").fetchone()[0]
        branch_ids = [r[0] for r in conn.execute(
            "SELECT id FROM branch WHERE org_id = %s ORDER BY is_main_lab DESC, id", (org_id,))]
        existing = conn.execute("SELECT count(*) FROM patient").fetchone()[0]
        if existing:
            raise RuntimeError(f"{SEARCH_DB} already has {existing} patients; load into a fresh database")
        indexes = conn.execute("""
            SELECT i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'patient'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
            ORDER BY i.relname""").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        started = time.monotonic()
        print(f"Generating and copying {count:,} patients…", flush=True)
        with conn.cursor().copy(f"COPY patient ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(generate(count, org_id, branch_ids), start=1):
                copy.write_row(row)
                if n % 200_000 == 0:
                    print(f"  {n:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
        conn.execute("SELECT setval('patient_mrn_seq', %s)", (FIRST_MRN + count,))
        conn.commit()
        print(f"  copied in {time.monotonic() - started:.0f} s; re-creating {len(indexes)} indexes…", flush=True)
        conn.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            t0 = time.monotonic()
            conn.execute(definition)
            conn.commit()
            print(f"  {name}: {time.monotonic() - t0:.0f} s", flush=True)
    fill_words(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE patient")
    settle_words(url)
    print(f"Loaded and indexed in {time.monotonic() - started:.0f} s.", flush=True)


# The name search's word tables (migration 0007): filled from the loaded names with the
# migration's own backfill statements, their keys and foreign keys dropped meanwhile and
# re-created from their own definitions (pg_get_constraintdef), like the patient indexes.
WORD_TABLES = ("patient_word", "name_word")
WORD_BACKFILL = (
    """INSERT INTO patient_word (org_id, word, patient_id, name_search)
       SELECT DISTINCT p.org_id, w.word, p.id, p.name_search
       FROM patient p CROSS JOIN LATERAL unnest(string_to_array(p.name_search, ' ')) AS w(word)
       WHERE w.word <> ''""",
    "INSERT INTO name_word (org_id, word, patients) SELECT org_id, word, count(*) FROM patient_word GROUP BY 1, 2",
)


def fill_words(url: str) -> None:
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        constraints = conn.execute("""
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint
            WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('p', 'f')""", (list(WORD_TABLES),)).fetchall()
        for table, name, _, _ in sorted(constraints, key=lambda c: c[3] != "f"):  # foreign keys first
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        conn.execute(f"TRUNCATE {', '.join(WORD_TABLES)}")
        for statement in WORD_BACKFILL:
            conn.execute(statement)
        for table, name, definition, _ in sorted(constraints, key=lambda c: c[3] != "p"):  # keys first
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        words = conn.execute("SELECT count(*) FROM name_word").fetchone()[0]
        conn.commit()
    print(f"  name words: {words:,} distinct, in {time.monotonic() - started:.0f} s", flush=True)


def settle_words(url: str) -> None:
    """VACUUM ANALYZE the word tables: search reads patient_word by index-only scans, which
    need its visibility map (autovacuum would get there, later)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in WORD_TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
