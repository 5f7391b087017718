"""API for report versions: list an order's versions, fetch the stored PDF of one. Same
service as the staff pages; the PDF is the stored bytes (never rendered again)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from app.api import bp
from app.api.problems import ApiError
from app.api.registry import Endpoint, api_route
from app.extensions import db
from app.models import Order
from app.services import reports

READERS = ("admin", "pathologist", "reception", "technician")


class ReportVersion(BaseModel):
    id: int
    number: str
    version: int
    status: str  # rendering | final | partial | amended | failed
    sha256: str | None
    released_at: datetime
    supersedes_id: int | None
    ulr: str | None
    pdf_url: str | None


class ReportVersions(BaseModel):
    accession: str
    versions: list[ReportVersion]


@api_route(bp, Endpoint("GET", "/orders/{accession}/reports", "Versions of an order's report, newest first", READERS,
                        response_model=ReportVersions, tags=("reports",)))
def order_reports(accession: str):  # type: ignore[no-untyped-def]
    order = db.session.execute(select(Order).where(Order.accession == accession)).scalar_one_or_none()
    if order is None:
        raise ApiError(404, "Not found", f"No order {accession} in this organization.", type_="not-found")
    versions = [ReportVersion(id=r.id, number=r.number, version=r.version, status=r.status, sha256=r.sha256,
                              released_at=r.released_at, supersedes_id=r.supersedes_id, ulr=r.ulr,
                              pdf_url=f"/api/v1/reports/{r.id}.pdf" if r.issued else None)
                for r in reports.for_order(order)]
    return ReportVersions(accession=order.accession, versions=versions).model_dump(mode="json")


@api_route(bp, Endpoint("GET", "/reports/{id}.pdf", "The stored PDF of one report version", READERS,
                        tags=("reports",)))
def report_pdf(id: str):  # type: ignore[no-untyped-def]  # noqa: A002 - the path parameter's name
    report = reports.with_pdf(int(id)) if id.isdigit() and len(id) < 19 else None
    if report is None:
        raise ApiError(404, "Not found", "No such report in this organization.", type_="not-found")
    if not report.issued:
        raise ApiError(409, "Not issued", "This version is still rendering." if report.status == "rendering"
                       else "This version could not be rendered.", type_="report-not-issued")
    from app.portals.reports.routes import pdf_response

    return pdf_response(report)
