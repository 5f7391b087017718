"""Staff authentication: password hashing, lockout after repeated failures, password change."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import BigInteger, bindparam, select

from app import audit
from app.extensions import db
from app.models import Role, User
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


# ------------------------------------------------------------------ the user behind a request

@dataclass(frozen=True, slots=True)
class OrganizationHeader:
    """What pages show of the user's organization (the header, the dashboards)."""
    id: int
    legal_name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class BranchHeader:
    id: int
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class StaffUser:
    """The logged-in staff member as every request sees it (Flask-Login's current_user).

    Read by one precompiled query per request (`load_staff_user`), not as an ORM object:
    it is the most frequent statement of the whole portal. It is a snapshot for reading
    (ids, role, names); a service that changes the user's own row takes `record()`.
    """
    id: int
    org_id: int
    username: str
    full_name: str
    role: str
    branch_id: int | None
    session_version: int
    organization: OrganizationHeader
    branch: BranchHeader | None

    # Flask-Login's protocol. Inactive users never get this far (load_staff_user).
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def record(self) -> User:
        """The user's ORM row, for a service that writes to it or needs more columns."""
        user = db.session.get(User, self.id)
        if user is None:  # deleted while the request ran
            raise ServiceError("This account no longer exists.")
        return user


def _staff_user_query():  # type: ignore[no-untyped-def]
    from app import queries
    from app.models import Branch, Organization

    user, org, branch = User.__table__, Organization.__table__, Branch.__table__
    return queries.Query("staff_user", select(
        user.c.id, user.c.org_id, user.c.username, user.c.full_name, user.c.role, user.c.branch_id,
        user.c.session_version, user.c.active, org.c.legal_name, org.c.display_name,
        branch.c.code.label("branch_code"), branch.c.name.label("branch_name"),
    ).select_from(user.join(org, org.c.id == user.c.org_id).outerjoin(branch, branch.c.id == user.c.branch_id))
        .where(user.c.id == bindparam("user_id", type_=BigInteger)), all_tenants=True)


_STAFF_USER = _staff_user_query()


def load_staff_user(session_id: str) -> StaffUser | None:
    """Flask-Login's user loader. The session id is "<user id>:<session_version>": a password
    change or deactivation bumps the version, which ends every older session here. Across
    organizations by design: the user's own row says which organization the request is for."""
    try:
        user_id, version = (int(part) for part in session_id.split(":", 1))
    except ValueError:
        return None
    row = _STAFF_USER.one_or_none(user_id=user_id)
    if row is None or not row.active or row.session_version != version:
        return None
    branch = BranchHeader(row.branch_id, row.branch_code, row.branch_name) if row.branch_id else None
    return StaffUser(row.id, row.org_id, row.username, row.full_name, row.role, row.branch_id, row.session_version,
                     OrganizationHeader(row.org_id, row.legal_name, row.display_name), branch)
