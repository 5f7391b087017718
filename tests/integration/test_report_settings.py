"""Admin report settings: accreditation line, ULR pattern, logo and pathologists' signatures,
with refusals for bad input and scoping to the admin's own laboratory."""
from __future__ import annotations

import io

import segno

from app import security
from app.models import AuditEvent, Organization, User
from tests.factories import PASSWORD


def _png() -> bytes:
    buffer = io.BytesIO()
    segno.make("signature").save(buffer, kind="png")
    return buffer.getvalue()


def test_admin_sets_accreditation_ulr_and_logo(client, auth, factory, session):  # type: ignore[no-untyped-def]
    org = factory.org()
    admin = factory.user(org, "admin")
    auth.login(admin.username, PASSWORD)
    page = client.get("/admin/report-settings")
    assert page.status_code == 200 and "Accreditation line" in page.get_data(as_text=True)
    response = client.post_form("/admin/report-settings", {
        "accreditation": "NABL accredited, certificate MC-1234", "ulr_pattern": "tc1234261########f",
        "logo": (io.BytesIO(_png()), "logo.png")}, content_type="multipart/form-data")
    assert response.status_code == 303
    session.expire_all()
    saved = session.get(Organization, org.id)
    assert saved.report_accreditation == "NABL accredited, certificate MC-1234"
    assert saved.ulr_pattern == "TC1234261########F"
    assert saved.report_logo_type == "image/png"
    assert client.get("/admin/report-settings/logo").mimetype == "image/png"
    security.use_tenant(session, org.id)
    assert session.query(AuditEvent).filter(AuditEvent.action == "organization.report_logo_set").count() == 1


def test_bad_ulr_pattern_and_logo_are_refused_and_change_nothing(client, auth, factory, session):  # type: ignore[no-untyped-def]
    org = factory.org()
    auth.login(factory.user(org, "admin").username, PASSWORD)
    bad = client.post_form("/admin/report-settings", {"accreditation": "x", "ulr_pattern": "TC-12 34"})
    assert bad.status_code == 422 and "Letters, digits and # only." in bad.get_data(as_text=True)
    not_image = client.post_form("/admin/report-settings", {"accreditation": "x", "ulr_pattern": "",
                                                           "logo": (io.BytesIO(b"%PDF-1.4 not an image"), "x.png")},
                                 content_type="multipart/form-data")
    assert not_image.status_code == 422 and "PNG or JPEG" in not_image.get_data(as_text=True)
    session.expire_all()
    assert session.get(Organization, org.id).report_accreditation == ""


def test_signature_upload_and_removal_for_a_pathologist_only(client, auth, factory, session):  # type: ignore[no-untyped-def]
    org = factory.org()
    auth.login(factory.user(org, "admin").username, PASSWORD)
    doctor = factory.user(org, "pathologist")
    clerk = factory.user(org, "billing")
    ok = client.post_form(f"/admin/report-settings/signatures/{doctor.id}",
                          {"signature": (io.BytesIO(_png()), "sig.png")}, content_type="multipart/form-data")
    assert ok.status_code == 303
    assert client.get(f"/admin/report-settings/signatures/{doctor.id}.png").status_code == 200
    assert client.post_form(f"/admin/report-settings/signatures/{clerk.id}",
                            {"signature": (io.BytesIO(_png()), "sig.png")},
                            content_type="multipart/form-data").status_code == 404
    removed = client.post_form(f"/admin/report-settings/signatures/{doctor.id}", {"remove": "1"})
    assert removed.status_code == 303
    session.expire_all()
    assert session.get(User, doctor.id).signature_png is None


def test_another_labs_pathologist_is_404(client, auth, factory):  # type: ignore[no-untyped-def]
    mine, theirs = factory.org(), factory.org()
    their_doctor = factory.user(theirs, "pathologist")
    auth.login(factory.user(mine, "admin").username, PASSWORD)
    assert client.get(f"/admin/report-settings/signatures/{their_doctor.id}.png").status_code == 404
    assert client.post_form(f"/admin/report-settings/signatures/{their_doctor.id}",
                            {"signature": (io.BytesIO(_png()), "sig.png")},
                            content_type="multipart/form-data").status_code == 404
