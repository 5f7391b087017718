"""All models, imported here so Alembic and the app see the whole schema."""
from app.models.audit import AuditEvent
from app.models.base import Base, TenantScoped
from app.models.catalogue import Department, LabTest
from app.models.org import Branch, Organization
from app.models.user import ApiToken, Role, User

__all__ = [
    "ApiToken", "AuditEvent", "Base", "Branch", "Department", "Organization", "Role",
    "LabTest", "TenantScoped", "User",
]
