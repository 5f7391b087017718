"""Candidate fixes for the name search at 1M patients, timed on a scratch copy of the
search bench's database (the app is not changed; nothing touches lis_bench_search).

    .venv/bin/python bench/search_variants.py [--per-kind 100] [--keep]

Copies lis_bench_search (built by bench/search.py) to lis_bench_search_scratch, draws the
same name queries as bench/search.py (same seed), folds them with the app's fold(), and
for each variant builds its index and times every query with EXPLAIN (ANALYZE, TIMING OFF):

- knn64:   today's query, ORDER BY key <<-> name_search LIMIT 20 on
           GiST (org_id, name_search gist_trgm_ops(siglen=64)) — ix_patient_name_knn
- knn256:  the same query on GiST siglen=256
- gin:     GIN (name_search gin_trgm_ops); WHERE key <% name_search (word_similarity
           ≥ pg_trgm.word_similarity_threshold, set to the app's floor 0.45)
           ORDER BY word_similarity DESC, name_search LIMIT 20 — the same rows the app
           keeps today (top 20 by word similarity, floor 0.45), found by the index
- gin+prefix: gin, except keys under 3 letters (no full trigram to index): a btree range
           scan of names beginning with the key (ix_patient_org_name_dob), in name order

Also reports, per variant, how many queries return the same similarity scores as today's
(ids may differ among equal scores).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

import database  # noqa: E402
import patients_1m  # noqa: E402
import search  # noqa: E402

SCRATCH = "lis_bench_search_scratch"
FLOOR = 0.45  # app.services.patients.MIN_WORD_SIMILARITY
COLUMNS = "patient.*"  # the app selects every column of Patient

KNN = f"""SELECT {COLUMNS}, word_similarity(%(k)s, name_search) AS s FROM patient
          WHERE org_id = %(org)s ORDER BY %(k)s <<-> name_search LIMIT 20"""
GIN = f"""SELECT {COLUMNS}, word_similarity(%(k)s, name_search) AS s FROM patient
          WHERE org_id = %(org)s AND %(k)s <% name_search
          ORDER BY s DESC, name_search LIMIT 20"""
PREFIX = f"""SELECT {COLUMNS}, word_similarity(%(k)s, name_search) AS s FROM patient
             WHERE org_id = %(org)s AND name_search >= %(k)s AND name_search < %(k_next)s
             ORDER BY org_id, name_search LIMIT 20"""

VARIANTS = {
    "knn64": ("CREATE INDEX ix_variant ON patient USING gist (org_id, name_search gist_trgm_ops(siglen=64))", KNN),
    "knn256": ("CREATE INDEX ix_variant ON patient USING gist (org_id, name_search gist_trgm_ops(siglen=256))", KNN),
    "gin": ("CREATE INDEX ix_variant ON patient USING gin (name_search gin_trgm_ops)", GIN),
    "gin+prefix": ("CREATE INDEX ix_variant ON patient USING gin (name_search gin_trgm_ops)", None),
}


def scratch_copy(server_url: str) -> str:
    admin = patients_1m.admin_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(SCRATCH),
                                                                      sql.Identifier(patients_1m.SEARCH_DB)))
    return database._libpq_url(database.with_database(server_url, SCRATCH))


def next_prefix(key: str) -> str:
    return key[:-1] + chr(ord(key[-1]) + 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7, help="bench/search.py's --seed")
    parser.add_argument("--keep", action="store_true", help=f"keep {SCRATCH}")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    from app.services.names import fold

    server_url, _ = database.server_urls()
    source = patients_1m.search_db_url(server_url)
    queries = search.make_queries(source, 300, args.seed)  # the very queries search.py uses
    names = {k: [fold(q.q) for q in v[:args.per_kind]] for k, v in queries.items() if k.startswith("name_")}
    url = scratch_copy(server_url)
    print(f"{SCRATCH}: copied; {sum(map(len, names.values()))} name queries", flush=True)
    reference: dict[str, list[float]] = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            org = conn.execute("SELECT id FROM organization WHERE code = 'demo'").fetchone()[0]
            conn.execute("DROP INDEX ix_patient_name_knn")
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(f"SET pg_trgm.word_similarity_threshold = {FLOOR}")
            print(f"{'variant':<11} {'kind':<14} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  same scores", flush=True)
            built = None
            for variant in args.variants.split(","):
                ddl, query = VARIANTS[variant]
                if ddl != built:
                    conn.execute("DROP INDEX IF EXISTS ix_variant")
                    conn.execute(ddl)
                    conn.execute("ANALYZE patient")
                    built = ddl
                for kind, keys in names.items():
                    times, same = [], 0
                    for key in keys:
                        statement = query or (PREFIX if len(key) < 3 else GIN)
                        params = {"k": key, "org": org, "k_next": next_prefix(key)}
                        plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, params,
                                            prepare=False).fetchone()[0][0]
                        times.append(plan["Planning Time"] + plan["Execution Time"])
                        scores = [round(r[-1], 4) for r in conn.execute(statement, params)]
                        if variant.startswith("knn"):
                            scores = [s for s in scores if s >= FLOOR]  # the app's floor, after the query
                        ref = reference.setdefault(f"{kind}:{key}", scores)
                        same += scores == ref
                    p = search.percentiles(times)
                    print(f"{variant:<11} {kind:<14} {p['p50']:>8.2f} {p['p95']:>8.2f} {p['max']:>8.2f}  "
                          f"{same}/{len(keys)}", flush=True)
                if variant != "gin+prefix":
                    size = conn.execute("SELECT pg_size_pretty(pg_relation_size('ix_variant'))").fetchone()[0]
                    print(f"  index size {size}", flush=True)
    finally:
        if not args.keep:
            with psycopg.connect(patients_1m.admin_url(server_url), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


if __name__ == "__main__":
    main()
