"""API bearer tokens: shown once at creation, stored as SHA-256, scoped to org and role."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from app import audit
from app.extensions import db
from app.models import ApiToken, Role
from app.services import ServiceError

TOKEN_PREFIX = "lis_"


def _digest(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough (no slow KDF needed).
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(org_id: int, role: str, name: str, *, created_by_id: int | None = None) -> tuple[ApiToken, str]:
    if role not in {r.value for r in Role}:
        raise ServiceError(f"Unknown role {role!r}.", field="role")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(org_id=org_id, role=role, name=name.strip() or "integration", prefix=raw[:12],
                     token_hash=_digest(raw), created_by_id=created_by_id)
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.created", entity_type="api_token", entity_id=token.id, org_id=org_id,
                 after={"name": token.name, "role": role, "prefix": token.prefix})
    return token, raw


def authenticate(raw: str) -> ApiToken | None:
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    token = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == _digest(raw), ApiToken.revoked_at.is_(None))
        .execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if token is None:
        return None
    now = datetime.now(timezone.utc)
    # Touch last_used_at at most once a minute: not a write per request.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        db.session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            .execution_options(all_tenants=True, synchronize_session=False)
        )
        db.session.commit()
    return token


def revoke(token: ApiToken) -> None:
    token.revoked_at = datetime.now(timezone.utc)
    audit.record("api_token.revoked", entity_type="api_token", entity_id=token.id, after={"prefix": token.prefix})


def list_tokens() -> list[ApiToken]:
    return list(db.session.execute(select(ApiToken).order_by(ApiToken.created_at.desc())).scalars())
