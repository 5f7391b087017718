"""Staff authentication: password hashing, lockout after repeated failures, password change."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import User
from app.services import ServiceError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the username is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginPolicy:
    lockout_threshold: int = 10
    lockout_minutes: int = 15
    min_password_length: int = 10


class LoginFailed(ServiceError):
    pass


class AccountLocked(LoginFailed):
    def __init__(self, until: datetime):
        minutes = max(1, int((until - datetime.now(timezone.utc)).total_seconds() // 60) + 1)
        super().__init__(f"This account is locked after repeated failed logins. Try again in {minutes} "
                         "minutes, or ask your administrator to unlock it.")
        self.until = until


GENERIC_FAILURE = "Username or password is incorrect."


def authenticate(username: str, password: str, policy: LoginPolicy) -> User:
    """Check a staff login. Raises LoginFailed (generic message) or AccountLocked.

    Failures are counted per account; at `lockout_threshold` consecutive failures the
    account locks for `lockout_minutes`. Every outcome is audited.
    """
    username = username.strip().lower()
    user = db.session.execute(
        select(User).where(User.username == username).execution_options(all_tenants=True).with_for_update()
    ).scalar_one_or_none()
    now = datetime.now(timezone.utc)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        audit.record("auth.login_failed", entity_type="user", after={"reason": "unknown_user"})
        db.session.commit()
        raise LoginFailed(GENERIC_FAILURE)
    if user.locked_until and user.locked_until > now:
        audit.record("auth.login_refused_locked", entity_type="user", entity_id=user.id, org_id=user.org_id)
        db.session.commit()
        raise AccountLocked(user.locked_until)
    if not verify_password(user.password_hash, password) or not user.active:
        user.failed_logins += 1
        after = {"failed_logins": user.failed_logins, "reason": "inactive" if user.active is False else "password"}
        if user.failed_logins >= policy.lockout_threshold:
            user.locked_until = now + timedelta(minutes=policy.lockout_minutes)
            user.failed_logins = 0
            after["locked_until"] = user.locked_until
            audit.record("auth.account_locked", entity_type="user", entity_id=user.id, org_id=user.org_id, after=after)
        else:
            audit.record("auth.login_failed", entity_type="user", entity_id=user.id, org_id=user.org_id, after=after)
        db.session.commit()
        if user.locked_until and user.locked_until > now:
            raise AccountLocked(user.locked_until)
        raise LoginFailed(GENERIC_FAILURE)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record("auth.login", entity_type="user", entity_id=user.id, org_id=user.org_id)
    db.session.commit()
    return user


def check_password_rules(password: str, policy: LoginPolicy, *, username: str = "") -> None:
    if len(password) < policy.min_password_length:
        raise ServiceError(f"Use at least {policy.min_password_length} characters.", field="new_password")
    if len(password) > 256:
        raise ServiceError("Use at most 256 characters.", field="new_password")
    if username and username.lower() in password.lower():
        raise ServiceError("The password must not contain the username.", field="new_password")


def change_password(user: User, current: str, new: str, policy: LoginPolicy) -> None:
    """Change one's own password. Ends every other session of the user (session_version)."""
    if not verify_password(user.password_hash, current):
        raise ServiceError("The current password is incorrect.", field="current_password")
    check_password_rules(new, policy, username=user.username)
    if verify_password(user.password_hash, new):
        raise ServiceError("Choose a password different from the current one.", field="new_password")
    user.password_hash = hash_password(new)
    user.password_changed_at = datetime.now(timezone.utc)
    user.session_version += 1
    audit.record("auth.password_changed", entity_type="user", entity_id=user.id, org_id=user.org_id)
    db.session.commit()
