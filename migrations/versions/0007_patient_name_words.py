"""patient name search by word: name_word dictionary and patient_word

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:40:00.000000

Name search matches typed words against the words of names (docs/PERFORMANCE.md, "Patient
search with 1,000,000 patients"): name_word holds every distinct folded word of an
organization's patients with how many patients have it (trigram-indexed for the nearest
words of a typed word), patient_word which patients have which word. Both are filled here
from the patients already registered, set-based: name_search is already the app's folded
name (services/names.py fold()), so a patient's words are string_to_array(name_search, ' ');
patient_word also carries the whole folded name, in its primary key's index, so that search
ranks names without reading the patient table.
The tables are filled before their keys and indexes are built (one sort instead of millions
of index insertions), then analysed so the planner knows word frequencies at once.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('name_word',
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('word', sa.String(length=200), nullable=False),
    sa.Column('patients', sa.BigInteger(), nullable=False),
    )
    op.create_table('patient_word',
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('word', sa.String(length=200), nullable=False),
    sa.Column('patient_id', sa.BigInteger(), nullable=False),
    sa.Column('name_search', sa.String(length=200), nullable=False),
    )

    # One row per distinct word of each patient's folded name.
    op.execute("""
        INSERT INTO patient_word (org_id, word, patient_id, name_search)
        SELECT DISTINCT p.org_id, w.word, p.id, p.name_search
        FROM patient p CROSS JOIN LATERAL unnest(string_to_array(p.name_search, ' ')) AS w(word)
        WHERE w.word <> ''
    """)
    op.execute("""
        INSERT INTO name_word (org_id, word, patients)
        SELECT org_id, word, count(*) FROM patient_word GROUP BY org_id, word
    """)

    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.create_primary_key(op.f('pk_name_word'), 'name_word', ['org_id', 'word'])
    op.create_foreign_key(op.f('fk_name_word_org_id_organization'), 'name_word', 'organization',
                          ['org_id'], ['id'], ondelete='RESTRICT')
    with op.batch_alter_table('name_word', schema=None) as batch_op:
        batch_op.create_index('ix_name_word_knn', ['org_id', 'word'], unique=False, postgresql_using='gist',
                              postgresql_ops={'word': 'gist_trgm_ops'})

    # The whole folded name rides along in the key's index (INCLUDE): search ranks from it.
    op.execute("ALTER TABLE patient_word ADD CONSTRAINT pk_patient_word "
               "PRIMARY KEY (org_id, word, patient_id) INCLUDE (name_search)")
    op.create_foreign_key(op.f('fk_patient_word_org_id_organization'), 'patient_word', 'organization',
                          ['org_id'], ['id'], ondelete='RESTRICT')
    op.create_foreign_key(op.f('fk_patient_word_patient_id_patient'), 'patient_word', 'patient',
                          ['patient_id'], ['id'], ondelete='CASCADE')

    op.execute("ANALYZE name_word")
    op.execute("ANALYZE patient_word")


def downgrade():
    op.drop_table('patient_word')
    op.drop_table('name_word')
