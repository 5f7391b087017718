"""Candidate fixes for the name search at 1M patients, timed on a scratch copy of the
search bench's database (the app is not changed; nothing touches lis_bench_search).
The "words" prototype below is what the app now does (migration 0007, patients.search);
its tables here are proto_* so that they do not collide with the app's own.

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
- words:   a different design, in three routes by what was typed (timed from the client,
           all its statements together):
           · under 3 letters: the btree range scan of gin+prefix;
           · one word: the 3 dictionary words nearest to it (proto_name_word: every distinct
             folded word with its patient count, GiST trigram index; <<-> KNN is fast on a
             table of short single words), then the newest 20 patients having each
             (proto_patient_word (org_id, word, patient_id DESC) btree), ranked by similarity;
           · several words: the 8 nearest dictionary words of each typed word, then
             patients whose words overlap every one of those sets (GIN on
             string_to_array(name_search, ' '), with btree_gin for org_id), ranked.
           Results are not the same rows as today's by design (every typed word must match
           some word of the name), so "same scores" is not reported for it.

Also reports, per variant, how many queries return the same similarity scores as today's
(ids may differ among equal scores).
"""
from __future__ import annotations

import argparse
import sys
import time
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
          WHERE org_id = %(org)s AND %(k)s <%% name_search
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


WORDS_DDL = (
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX ix_words ON patient USING gin (org_id, (string_to_array(name_search, ' ')))",
    """CREATE TABLE proto_name_word AS SELECT org_id, w AS word, count(*) AS patients
       FROM patient, unnest(string_to_array(name_search, ' ')) w GROUP BY 1, 2""",
    "ALTER TABLE proto_name_word ADD PRIMARY KEY (org_id, word)",
    "CREATE INDEX ix_proto_name_word_trgm ON proto_name_word USING gist (org_id, word gist_trgm_ops)",
    """CREATE TABLE proto_patient_word AS SELECT org_id, w AS word, id AS patient_id
       FROM patient, unnest(string_to_array(name_search, ' ')) w""",
    "CREATE INDEX ix_proto_patient_word ON proto_patient_word (org_id, word, patient_id DESC)",
    "VACUUM ANALYZE patient", "VACUUM ANALYZE proto_name_word", "VACUUM ANALYZE proto_patient_word",
)
NEAREST_WORDS = """SELECT word FROM proto_name_word WHERE org_id = %(org)s AND word_similarity(%(w)s, word) >= 0.3
                   ORDER BY %(w)s <<-> word, patients DESC LIMIT %(n)s"""
ONE_WORD = f"""SELECT {COLUMNS}, word_similarity(%(k)s, name_search) AS s FROM patient WHERE id IN (
                 SELECT patient_id FROM unnest(%(c)s::text[]) AS c(word)
                 CROSS JOIN LATERAL (SELECT patient_id FROM proto_patient_word w WHERE w.org_id = %(org)s
                                     AND w.word = c.word ORDER BY patient_id DESC LIMIT 20) hits)
               ORDER BY s DESC, id DESC LIMIT 20"""
MANY_WORDS = f"""SELECT {COLUMNS}, word_similarity(%(k)s, name_search) AS s FROM patient
                 WHERE org_id = %(org)s AND {{conds}} ORDER BY s DESC, name_search LIMIT 20"""


def words_search(conn: psycopg.Connection, key: str, org: int) -> int:
    """The "words" design for one folded key; returns the number of rows found."""
    words = key.split()
    if len(key) < 3:
        return len(conn.execute(PREFIX, {"k": key, "org": org, "k_next": next_prefix(key)}).fetchall())
    if len(words) == 1:
        nearest = [r[0] for r in conn.execute(NEAREST_WORDS, {"w": key, "n": 3, "org": org})]
        return len(conn.execute(ONE_WORD, {"k": key, "c": nearest, "org": org}).fetchall())
    params: dict[str, object] = {"k": key, "org": org}
    conds = []
    for i, word in enumerate(words):
        nearest = [r[0] for r in conn.execute(NEAREST_WORDS, {"w": word, "n": 8, "org": org})]
        if nearest:
            params[f"c{i}"] = nearest
            conds.append(f"string_to_array(name_search, ' ') && %(c{i})s")
    return len(conn.execute(MANY_WORDS.format(conds=" AND ".join(conds) or "false"), params).fetchall())


def time_words(conn: psycopg.Connection, names: dict[str, list[str]], org: int) -> None:
    for ddl in WORDS_DDL:
        conn.execute(ddl)
    for kind, keys in names.items():
        times = []
        for key in keys:
            started = time.perf_counter()
            words_search(conn, key, org)
            times.append((time.perf_counter() - started) * 1000)
        p = search.percentiles(times)
        print(f"{'words':<11} {kind:<14} {p['p50']:>8.2f} {p['p95']:>8.2f} {p['max']:>8.2f}  (client-timed)",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7, help="bench/search.py's --seed")
    parser.add_argument("--keep", action="store_true", help=f"keep {SCRATCH}")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "words"]))
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
                if variant == "words":
                    time_words(conn, names, org)
                    continue
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
