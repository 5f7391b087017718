"""RQ jobs for report PDFs (queue 'reports').

The worker (`lis worker`, RQ's forking Worker) runs each job in a work-horse process forked
for it, which exits when the job ends: WeasyPrint's memory for one report (layout boxes,
images, fonts of the scripts it met) goes back to the OS with it, and the worker itself
never grows. The worker warms WeasyPrint and the Latin fonts once before forking
(workers/runner.py), so each work-horse starts with them loaded."""
from __future__ import annotations


def render(report_id: int) -> str:
    """Render and store one report version (idempotent: see reports.render_report)."""
    from app.services import reports

    return reports.render_report(report_id)


def sweep() -> dict[str, int]:
    """Queue again the versions whose job was lost; give up on those that keep failing."""
    from app.services import reports

    return reports.sweep()
