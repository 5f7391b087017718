"""Schema changes happen only through migrations: the migrated database and the models agree."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from app.extensions import db


def test_models_and_migrations_do_not_drift(app, db_conn):
    context = MigrationContext.configure(db_conn, opts={"compare_type": True, "compare_server_default": False})
    diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"


def test_database_is_at_the_head_revision(app, db_conn):
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_heads()
    current = db_conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert current == heads and len(heads) == 1
