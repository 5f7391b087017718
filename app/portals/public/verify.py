"""GET /verify/<token>: lab, report number, patient initials and date of issue for the QR
token; POST: does the presented PDF (upload) or SHA-256 (typed) match the issued report?
An unknown token is a plain 404, the same page as any missing address."""
from __future__ import annotations

from flask import abort, current_app, render_template, request

from app.extensions import limiter
from app.portals.public import bp
from app.services import ServiceError, reports


def _rate() -> str:
    return current_app.config["LIS_VERIFY_RATE_LIMIT"]


@bp.route("/verify/<token>", methods=["GET", "POST"])
@limiter.limit(_rate)  # per client IP, GET and POST alike: unknown tokens count too
def verify(token: str):  # type: ignore[no-untyped-def]
    facts = reports.public_facts(token)
    if facts is None:
        abort(404)
    outcome, error, status = None, None, 200
    if request.method == "POST":
        upload = request.files.get("pdf")
        try:
            if upload is not None and upload.filename:
                limit = current_app.config["LIS_VERIFY_MAX_UPLOAD"]
                data = upload.stream.read(limit + 1)
                if len(data) > limit:
                    raise ServiceError(f"The file is larger than {limit // (1024 * 1024)} MB: it is not this report.",
                                       field="pdf")
                outcome = reports.hash_matches(facts, pdf_bytes=data)
            else:
                outcome = reports.hash_matches(facts, sha256_hex=request.form.get("sha256", ""))
        except ServiceError as err:
            error, status = err.message, 422
    response = current_app.make_response((render_template("public/verify.html", facts=facts, outcome=outcome,
                                                          error=error, token=token), status))
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response
