"""Staff user management within one organization (admin portal, CLI)."""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.models import Branch, Role, User
from app.services import ServiceError
from app.services.auth import LoginPolicy, check_password_rules, hash_password

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
AUDITED_FIELDS = ("username", "full_name", "role", "branch_id", "active", "qualification", "registration_number")


def generate_password() -> str:
    """A random password that is easy to read aloud once (no look-alike characters)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def _validate(data: Mapping[str, Any], *, org_id: int) -> None:
    if data.get("role") not in {r.value for r in Role}:
        raise ServiceError("Choose a role.", field="role")
    branch_id = data.get("branch_id")
    if branch_id is not None:
        branch = db.session.execute(select(Branch).where(Branch.id == branch_id)).scalar_one_or_none()
        if branch is None:
            raise ServiceError("Choose a branch of this organization.", field="branch_id")


def create_user(org_id: int, data: Mapping[str, Any], *, password: str | None = None,
                policy: LoginPolicy = LoginPolicy()) -> tuple[User, str]:
    """Create a staff user; returns the user and the initial password (shown once)."""
    username = str(data.get("username", "")).strip().lower()
    if not USERNAME_RE.match(username):
        raise ServiceError("3–64 characters: lower-case letters, digits, dot, dash, underscore.", field="username")
    taken = db.session.execute(
        select(func.count()).select_from(User).where(User.username == username).execution_options(all_tenants=True)
    ).scalar_one()
    if taken:
        raise ServiceError("This username is already taken.", field="username")
    _validate(data, org_id=org_id)
    password = password or generate_password()
    check_password_rules(password, policy)
    user = User(
        org_id=org_id, username=username, full_name=str(data.get("full_name", "")).strip(),
        role=data["role"], branch_id=data.get("branch_id"), password_hash=hash_password(password),
        qualification=str(data.get("qualification") or ""), registration_number=str(data.get("registration_number") or ""),
        active=True,
    )
    if not user.full_name:
        raise ServiceError("Enter the person's full name.", field="full_name")
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", entity_type="user", entity_id=user.id, after=audit.snapshot(user, AUDITED_FIELDS))
    return user, password


def update_user(user: User, data: Mapping[str, Any], *, acting_user_id: int | None = None) -> User:
    before = audit.snapshot(user, AUDITED_FIELDS)
    _validate(data, org_id=user.org_id)
    full_name = str(data.get("full_name", "")).strip()
    if not full_name:
        raise ServiceError("Enter the person's full name.", field="full_name")
    if acting_user_id == user.id and (data["role"] != user.role or not data.get("active", True)):
        raise ServiceError("You cannot change your own role or deactivate yourself.", field="role")
    user.full_name = full_name
    user.role = data["role"]
    user.branch_id = data.get("branch_id")
    user.qualification = str(data.get("qualification") or "")
    user.registration_number = str(data.get("registration_number") or "")
    deactivated = user.active and not data.get("active", True)
    user.active = bool(data.get("active", True))
    if deactivated or before["role"] != user.role:
        user.session_version += 1  # end the person's open sessions now
    old, new = audit.changes(before, audit.snapshot(user, AUDITED_FIELDS))
    if new:
        audit.record("user.updated", entity_type="user", entity_id=user.id, before=old, after=new)
    return user


def reset_password(user: User) -> str:
    """Admin reset: a new random password, shown once; unlocks and ends open sessions."""
    password = generate_password()
    user.password_hash = hash_password(password)
    user.session_version += 1
    user.failed_logins = 0
    user.locked_until = None
    audit.record("user.password_reset", entity_type="user", entity_id=user.id)
    return password


def unlock(user: User) -> None:
    user.failed_logins = 0
    user.locked_until = None
    audit.record("user.unlocked", entity_type="user", entity_id=user.id)


def list_users() -> list[User]:
    return list(db.session.execute(select(User).order_by(User.role, User.username)).scalars())
