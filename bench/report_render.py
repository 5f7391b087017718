"""Report PDFs (issue 5): render time against bare WeasyPrint on the same HTML, reports per
minute with 2 real workers, stored-PDF download throughput, and the work-horse's peak RSS for
a 5-page report.

    .venv/bin/python -m bench.report_render [--renders 15] [--reports 40] [--downloads 300] [--sample DIR]

Creates `lis_bench_reports` on the server named by DATABASE_URL (else the local one), seeds
the demo lab through the app, and drops it at the end. Baselines come from the same run:
  * render: the LIS job body (load the version's rows, build the HTML, QR, render with the
    bundled fonts, hash, store, audit, commit) against WeasyPrint alone on the same HTML,
    (a) with the same @font-face stylesheet and (b) bare, with the system's fonts;
  * download: GET /reports/<id>.pdf through the whole app (login session, tenant scoping,
    role guard) against a plain SELECT of the same bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

PASSWORD = "bench passphrase 2026"
# The CBC panel (20 results, 7 of them calculated) and five chemistry tests: 25 results.
TWENTY_FIVE = ["CBC", "GLUF", "UREA", "CREA", "K", "ALT"]
LOW = {"HB", "PLT"}  # printed with an L flag
HIGH = {"GLUF", "ALT"}  # printed with an H flag
ROOT = Path(__file__).resolve().parent.parent


def _value(test, sex: str) -> str:  # type: ignore[no-untyped-def]
    """A value inside the adult interval (or just outside it for the flagged ones)."""
    if test.result_type == "choice" and test.choices:
        return test.choices.split("|")[0]
    if test.result_type != "numeric":
        return "No abnormality detected"
    adult = [iv for iv in test.intervals if iv.age_min_days <= 40 * 365 < iv.age_max_days and iv.sex in (sex, "any")]
    iv = next((iv for iv in adult if iv.high is not None), None)
    if iv is None:
        number = Decimal(1)
    elif iv.low is None:
        number = iv.high / 2
    elif test.code in LOW:
        number = iv.low * Decimal("0.9")
    elif test.code in HIGH:
        number = iv.high * Decimal("1.1")
    else:
        number = (iv.low + iv.high) / 2
    return f"{number:.{test.decimals}f}"


def make_orders(app, count: int, codes: list[str] | None, *, comments: bool = False) -> list[int]:  # type: ignore[no-untyped-def]
    """`count` orders with these tests (None: every orderable, non-calculated test), entered,
    verified and released by the demo pathologist: each release queues its report's job."""
    from sqlalchemy import select

    from app import audit, security
    from app.extensions import db
    from app.models import Branch, Organization, Panel, User
    from app.services import calculations, orders, patients, results, samples, verification

    ids = []
    with app.app_context():
        org_id = db.session.query(Organization.id).filter_by(code="demo").scalar()
        security.use_tenant(db.session, org_id)
        doc = db.session.execute(select(User).where(User.username == "demo.pathologist")).scalar_one()
        if codes is None:  # every panel that is not a package: 82 results, a 5-page report
            codes = [p.code for p in db.session.execute(select(Panel).where(Panel.active, ~Panel.is_package)
                                                        .order_by(Panel.id)).scalars()]
        branch = db.session.query(Branch).filter_by(code="MAIN").one()
        with audit.acting_as(audit.AuditContext(actor_label="system:bench", actor_user_id=doc.id, org_id=org_id)):
            for n in range(count):
                patient = patients.register({"name": f"Report Bench {n}", "sex": "female", "dob": "1985-03-02",
                                             "mobile": f"98765{n:05d}"}, branch_id=None, created_by_id=None,
                                            confirm_new=True)
                order, _ = orders.create_order(patient, branch, orders.OrderRequest(codes=codes), created_by_id=None,
                                               discount_limit_percent=100)
                for sample in order.samples:
                    samples.receive(sample, user_id=None)
                for i, ot in enumerate(order.tests):
                    if ot.test.code in calculations.FORMULAS or results.current_result(ot.id) is not None:
                        continue
                    note = "Repeated and confirmed on a fresh aliquot." if comments and i % 3 == 0 else ""
                    results.save(ot, results.Entry(raw=_value(ot.test, "female"), comment=note), user_id=None)
                current = results.currents_for([ot.id for ot in order.tests])
                verification.verify(order, {r.id: r.version for r in current.values() if r.status == "entered"},
                                    user=doc)
                if comments:
                    for r in list(current.values())[::4]:
                        verification.set_interpretation(
                            r, "Interpret with the clinical picture; a repeat in four weeks is suggested.", user=doc)
                verification.release(order, user=doc)
                db.session.commit()
                from app.services import reports

                ids.append(reports.latest(order).id)
        db.session.remove()
    return ids


def _signature(app) -> None:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image, ImageDraw
    from sqlalchemy import select

    from app import audit, security
    from app.extensions import db
    from app.models import Organization, User
    from app.services import reports

    with app.app_context():
        org = db.session.query(Organization).filter_by(code="demo").one()
        security.use_tenant(db.session, org.id)
        image = Image.new("RGBA", (360, 110), (255, 255, 255, 0))
        ImageDraw.Draw(image).line([(10, 80), (90, 20), (160, 90), (250, 30), (340, 70)], fill=(20, 30, 120), width=5)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        with audit.acting_as(audit.AuditContext(actor_label="system:bench", org_id=org.id)):
            doc = db.session.execute(select(User).where(User.username == "demo.pathologist")).scalar_one()
            reports.set_signature(doc, buffer.getvalue())
            reports.update_settings(org, accreditation="Accredited by NABL as per ISO 15189:2022, certificate MC-0000",
                                    ulr_pattern="TC0000261########F")
        db.session.commit()
        db.session.remove()


def measure_render(app, report_id: int, rounds: int) -> dict:  # type: ignore[no-untyped-def]
    """Median of the LIS job body against WeasyPrint on the same HTML, interleaved."""
    from sqlalchemy import select, update

    from app import security
    from app.extensions import db
    from app.models import Report
    from app.services import documents, reports

    with app.app_context():
        security.use_tenant(db.session, None)
        org_id = db.session.execute(select(Report.org_id).where(Report.id == report_id)
                                    .execution_options(all_tenants=True)).scalar_one()
        security.use_tenant(db.session, org_id)
        html = reports.build_html(db.session.get(Report, report_id))
        db.session.rollback()
        from weasyprint import HTML

        config, css = documents._font_stylesheet(documents.scripts_in(html))
        documents.warm_up()
        HTML(string=html).write_pdf(stylesheets=[css], font_config=config)  # warm both paths once
        HTML(string=html).write_pdf()
        lis, same_fonts, bare = [], [], []
        pages = size = 0
        for _ in range(rounds):
            security.use_tenant(db.session, org_id)
            db.session.execute(update(Report).where(Report.id == report_id).values(status="rendering"))
            db.session.commit()
            started = time.perf_counter()
            outcome = reports.render_report(report_id)
            lis.append(time.perf_counter() - started)
            assert outcome in ("final", "partial"), outcome
            started = time.perf_counter()
            pdf = HTML(string=html).write_pdf(stylesheets=[css], font_config=config)
            same_fonts.append(time.perf_counter() - started)
            started = time.perf_counter()
            HTML(string=html).write_pdf()
            bare.append(time.perf_counter() - started)
            size = len(pdf)
        security.use_tenant(db.session, org_id)
        report = db.session.get(Report, report_id)
        pages = report.pages
        db.session.remove()
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    return {"results": 25, "pages": pages, "pdf_bytes": size, "rounds": rounds,
            "lis_job_median_ms": ms(lis), "weasyprint_same_html_same_fonts_median_ms": ms(same_fonts),
            "weasyprint_same_html_bare_median_ms": ms(bare),
            "ratio_lis_over_same_fonts": round(statistics.median(lis) / statistics.median(same_fonts), 2),
            "ratio_lis_over_bare": round(statistics.median(lis) / statistics.median(bare), 2),
            "target_ratio": 1.3}


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.NoSuchProcess:
        return 0.0


def start_workers(env: dict[str, str], n: int) -> list[subprocess.Popen]:
    """`flask lis worker`, the production command (RQ's forking Worker, a work-horse per job)."""
    worker_env = dict(os.environ, **env, LIS_LOG_LEVEL="WARNING", MALLOC_ARENA_MAX="2")
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "lis", "worker"], cwd=ROOT,
                              env=worker_env, start_new_session=True) for _ in range(n)]
    time.sleep(6)  # import, warm-up, register
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def measure_throughput(app, env: dict[str, str], count: int) -> dict:  # type: ignore[no-untyped-def]
    """Reports per minute with 2 workers: `count` orders are released first (each release
    queues its report's job), then two `flask lis worker` processes drain the queue. The
    time is RQ's own: from the first job's start to the last job's end (worker start-up
    excluded)."""
    from rq.job import Job
    from sqlalchemy import func, select

    from app import security
    from app.extensions import db, redis_client
    from app.models import Report
    from app.services import reports

    ids = make_orders(app, count, TWENTY_FIVE)
    procs = start_workers(env, 2)
    rss_before = [_rss_mb(p.pid) for p in procs]
    try:
        with app.app_context():
            deadline = time.time() + 600
            while True:
                security.use_tenant(db.session, None)
                left = db.session.execute(select(func.count(Report.id)).where(
                    Report.id.in_(ids), Report.status == "rendering").execution_options(all_tenants=True)).scalar()
                db.session.rollback()
                if left == 0:
                    break
                if time.time() > deadline:
                    raise SystemExit("reports did not finish in 10 minutes")
                time.sleep(0.2)
            statuses = dict(db.session.execute(select(Report.status, func.count(Report.id)).where(Report.id.in_(ids))
                                               .group_by(Report.status).execution_options(all_tenants=True)).all())
            render_ms = list(db.session.execute(select(Report.render_ms).where(Report.id.in_(ids))
                                                .execution_options(all_tenants=True)).scalars())
            jobs = Job.fetch_many([reports.job_id(i) for i in ids], connection=redis_client())
            started = min(j.started_at for j in jobs)
            ended = max(j.ended_at for j in jobs)
            per_job = [(j.ended_at - j.started_at).total_seconds() for j in jobs]
            db.session.remove()
        rss_after = [_rss_mb(p.pid) for p in procs]
    finally:
        stop_workers(procs)
    elapsed = (ended - started).total_seconds()
    return {"workers": 2, "reports": len(ids), "statuses": statuses, "seconds_first_start_to_last_end":
            round(elapsed, 2), "reports_per_minute": round(len(ids) / elapsed * 60, 1),
            "job_median_seconds": round(statistics.median(per_job), 3),
            "render_inside_job_median_ms": statistics.median(render_ms),
            "worker_parent_rss_mb_before": rss_before, "worker_parent_rss_mb_after": rss_after}


def measure_peak_rss(app, env: dict[str, str]) -> dict:  # type: ignore[no-untyped-def]
    """A 5-page report rendered by `flask lis worker`: the work-horse reports its own peak RSS
    (VmHWM) when its job ends, and the worker's RSS is read before and after."""
    from rq import Queue
    from rq.job import Job

    from app.extensions import redis_client

    procs = start_workers(env, 1)
    parent_before = _rss_mb(procs[0].pid)
    try:
        with app.app_context():
            queue = Queue("reports", connection=redis_client())
            report_id = make_orders(app, 1, None, comments=False)[0]
            time.sleep(0.5)
            job = queue.enqueue("bench.report_render.peak_rss_job", report_id, job_timeout=300)
            deadline = time.time() + 300
            while job.get_status(refresh=True) not in ("finished", "failed") and time.time() < deadline:
                time.sleep(0.2)
            outcome = Job.fetch(job.id, connection=redis_client()).return_value()
        parent_after = _rss_mb(procs[0].pid)
    finally:
        stop_workers(procs)
    return {**(outcome or {"error": "job did not finish"}), "worker_parent_rss_mb_before": parent_before,
            "worker_parent_rss_mb_after": parent_after, "target_mb": 300}


def peak_rss_job(report_id: int) -> dict:
    """Runs in the work-horse: render this version (again) and report VmHWM / VmRSS."""
    from sqlalchemy import select, update

    from app import security
    from app.extensions import db
    from app.models import Report
    from app.services import reports

    # Wait for the release's own render job (the queue is FIFO, it ran first) and render again.
    security.use_tenant(db.session, None)
    org_id = db.session.execute(select(Report.org_id).where(Report.id == report_id)
                                .execution_options(all_tenants=True)).scalar_one()
    security.use_tenant(db.session, org_id)
    db.session.execute(update(Report).where(Report.id == report_id).values(status="rendering"))
    db.session.commit()
    started = time.perf_counter()
    outcome = reports.render_report(report_id)
    seconds = time.perf_counter() - started
    report = db.session.get(Report, report_id)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = lambda key: int(status[key].split()[0])  # noqa: E731
    return {"outcome": outcome, "pages": report.pages, "results": len(report.result_ids), "pdf_bytes": report.size,
            "render_seconds": round(seconds, 2), "work_horse_peak_rss_mb": round(kb("VmHWM") / 1024, 1),
            "work_horse_rss_at_end_mb": round(kb("VmRSS") / 1024, 1)}


def measure_downloads(app, report_id: int, count: int) -> dict:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app import security
    from app.extensions import db
    from app.models import Report
    from tests.helpers import LisClient

    app.test_client_class = LisClient
    client = app.test_client()
    token = client.csrf_token("/login")
    client.post("/login", data={"username": "demo.reception", "password": PASSWORD, "csrf_token": token})
    url = f"/reports/{report_id}.pdf"
    assert client.get(url).status_code == 200
    started = time.perf_counter()
    size = 0
    for _ in range(count):
        response = client.get(url)
        assert response.status_code == 200
        size = len(response.data)
    lis = time.perf_counter() - started
    with app.app_context():
        security.use_tenant(db.session, None)
        started = time.perf_counter()
        for _ in range(count):
            data = db.session.execute(select(Report.pdf).where(Report.id == report_id)
                                      .execution_options(all_tenants=True)).scalar_one()
            db.session.rollback()
        floor = time.perf_counter() - started
        assert len(data) == size
        db.session.remove()
    return {"downloads": count, "pdf_bytes": size, "lis_per_second": round(count / lis, 1),
            "lis_mb_per_second": round(count * size / lis / 2**20, 1), "lis_mean_ms": round(lis / count * 1000, 2),
            "baseline_select_only_per_second": round(count / floor, 1),
            "baseline_select_only_mean_ms": round(floor / count * 1000, 2)}


def fork_probe(mode: str, html_path: str, forks: int = 5) -> None:
    """Internal (a fresh process): render the same HTML in `forks` children forked from a
    parent that did (`warm`) or did not (`cold`) warm WeasyPrint first, as RQ's work-horses are."""
    from app.services import documents

    html = Path(html_path).read_text()
    if mode == "warm":
        documents.warm_up()
    times = []
    for _ in range(forks):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            started = time.perf_counter()
            documents.pdf_and_pages(html)
            os.write(write, str(time.perf_counter() - started).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        times.append(float(os.read(read, 64)))
        os.close(read)
    print(json.dumps({"mode": mode, "median_ms": round(statistics.median(times) * 1000, 1)}))


def measure_fork_warmup(app, report_id: int) -> dict:  # type: ignore[no-untyped-def]
    """The render of one report in a forked child, with and without the warm-up the worker
    does before forking (workers/runner.py)."""
    import tempfile

    from sqlalchemy import select

    from app import security
    from app.extensions import db
    from app.models import Report
    from app.services import reports

    with app.app_context():
        security.use_tenant(db.session, None)
        org_id = db.session.execute(select(Report.org_id).where(Report.id == report_id)
                                    .execution_options(all_tenants=True)).scalar_one()
        security.use_tenant(db.session, org_id)
        html = reports.build_html(db.session.get(Report, report_id))
        db.session.remove()
    out = {}
    with tempfile.NamedTemporaryFile("w", suffix=".html") as handle:
        handle.write(html)
        handle.flush()
        for mode in ("cold", "warm"):
            line = subprocess.run([sys.executable, "-m", "bench.report_render", "--fork-probe", mode, handle.name],
                                  cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            out[f"child_render_median_ms_{mode}_parent"] = json.loads(line)["median_ms"]
    return out


def write_samples(app, directory: Path, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app import security
    from app.extensions import db
    from app.models import Report

    directory.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        security.use_tenant(db.session, None)
        for report_id in ids:
            pdf = db.session.execute(select(Report.pdf).where(Report.id == report_id)
                                     .execution_options(all_tenants=True)).scalar_one()
            (directory / f"report-{report_id}.pdf").write_bytes(pdf)
        db.session.remove()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--renders", type=int, default=15)
    parser.add_argument("--reports", type=int, default=40)
    parser.add_argument("--downloads", type=int, default=300)
    parser.add_argument("--sample", type=Path, help="write the sample PDFs here")
    parser.add_argument("--fork-probe", nargs=2, metavar=("MODE", "HTML"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fork_probe:
        fork_probe(*args.fork_probe)
        return

    from bench.database import fresh_database, migrate_and_seed, server_urls

    pg, redis_url = server_urls()
    redis_url = redis_url.rsplit("/", 1)[0] + "/13" if redis_url.startswith("redis://") else redis_url
    with fresh_database(pg, name="lis_bench_reports") as url:
        env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-" + "k" * 40,
               "LIS_PUBLIC_URL": "https://reports.demo-diagnostics.example"}
        migrate_and_seed(env, PASSWORD)
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        os.environ.update(env)
        from app import create_app
        from config import Config

        app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
        _signature(app)
        out: dict = {}
        [report_id] = make_orders(app, 1, TWENTY_FIVE)
        out["render_25_results"] = measure_render(app, report_id, args.renders)
        out["fork_warm_up"] = measure_fork_warmup(app, report_id)
        out["download"] = measure_downloads(app, report_id, args.downloads)
        redis.Redis.from_url(redis_url).flushdb()
        out["throughput"] = measure_throughput(app, env, args.reports)
        out["peak_rss_5_pages"] = measure_peak_rss(app, env)
        if args.sample:
            from sqlalchemy import func, select

            from app.extensions import db
            from app.models import Report

            with app.app_context():
                big = db.session.execute(select(func.max(Report.id)).execution_options(all_tenants=True)).scalar()
                db.session.remove()
            write_samples(app, args.sample, [report_id, big])
        print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
