"""Are the right patients found? The search bench's full-name and misspelt queries (the same
seed, so the same queries as bench/search.py), run through patients.search on
lis_bench_search, each checked against the patient it was drawn from:

    .venv/bin/python bench/search_quality.py [--per-kind 300] [--knn]

hit@1: the first result's folded name has the sampled patient's given name and surname as
words (with a million patients many share a name, so "that name", not "that patient");
hit@20: some result on the page has. --knn also runs the nearest-neighbour query the app
used before migration 0007 (ORDER BY key <<-> name_search LIMIT 20, similarity floor 0.45;
slow: ~0.4 s a query) for comparison. Prints the misses.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR.parent))

import database  # noqa: E402
import indian_names  # noqa: E402
import patients_1m  # noqa: E402
import search  # noqa: E402


def queries_with_intent(url: str, per_kind: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """(typed, intended name) for name_full and name_misspelt: search.make_queries' draws,
    replayed with the same random sequence, keeping the name each was made from."""
    rng = random.Random(seed)
    people = search.sample_patients(url, per_kind * 12, rng)
    rng.shuffle(people)
    counts = dict.fromkeys(search.KINDS, 0)
    out: dict[str, list[tuple[str, str]]] = {"name_full": [], "name_misspelt": []}

    def add(kind: str, q: str, intended: str = "") -> None:
        if counts[kind] < per_kind and len(q.strip()) >= 2:
            counts[kind] += 1
            if kind in out:
                out[kind].append((q, intended))

    for full_name, mrn, mobile in people:  # the same calls on rng as make_queries
        words = [w for w in full_name.split() if not w.endswith(".")]
        given, surname = words[0], words[-1]
        add("mrn", mrn)
        add("mobile", rng.choice(search.MOBILE_FORMATS)(search._national(mobile)))
        add("name_full", rng.choice((full_name, full_name.lower(), f"{given} {surname}")), f"{given} {surname}")
        add("name_first", search._case(rng, given[:rng.randint(3, max(3, min(6, len(given))))]))
        add("name_surname", search._case(rng, surname))
        add("name_prefix2", search._case(rng, rng.choice((given, surname))[:2]))
        variant_given, variant_surname = indian_names.VARIANTS.get(given), indian_names.VARIANTS.get(surname)
        if variant_given or variant_surname:
            add("name_misspelt", f"{rng.choice(variant_given) if variant_given else given} "
                                 f"{rng.choice(variant_surname) if variant_surname else surname}", f"{given} {surname}")
        elif len(given) >= 5 and rng.random() < 0.5:
            add("name_misspelt", f"{search._typo(rng, given)} {surname}", f"{given} {surname}")
        if all(n >= per_kind for n in counts.values()):
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7, help="bench/search.py's --seed")
    parser.add_argument("--knn", action="store_true", help="also the nearest-neighbour query used before 0007")
    args = parser.parse_args()
    from sqlalchemy import func, literal, select

    from app import create_app, security
    from app.extensions import db
    from app.models import Patient
    from app.services import names, patients
    from config import Config

    server_url, redis_url = database.server_urls()
    url = patients_1m.search_db_url(server_url)

    def knn(q: str) -> list[Patient]:
        key = names.fold(q)
        score = func.word_similarity(key, Patient.name_search)
        rows = db.session.execute(select(Patient, score).order_by(literal(key).op("<<->")(Patient.name_search))
                                  .limit(20)).all()
        return [patient for patient, similarity in rows if similarity >= 0.45]

    app = create_app(Config.from_env(dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url,
                                          SECRET_KEY="search-quality-" + "x" * 32, LIS_LOG_LEVEL="WARNING")))
    with app.app_context():
        org = db.session.execute(select(func.min(Patient.org_id)).execution_options(all_tenants=True)).scalar()
        security.use_tenant(db.session, org)
        for kind, cases in queries_with_intent(url, args.per_kind, args.seed).items():
            for label, find in [("words", patients.search)] + ([("knn", knn)] if args.knn else []):
                first = page = 0
                misses = []
                for typed, intended in cases:
                    want = names.fold(intended).split()
                    has = [all(w in p.name_search.split() for w in want) for p in find(typed)]
                    first += bool(has) and has[0]
                    page += any(has)
                    if not any(has):
                        misses.append(f"{typed} ({intended})")
                print(f"{kind:<14} {label:<6} hit@1 {first}/{len(cases)}  hit@20 {page}/{len(cases)}", flush=True)
                print(f"  misses: {'; '.join(misses) or 'none'}", flush=True)
            db.session.rollback()


if __name__ == "__main__":
    main()
