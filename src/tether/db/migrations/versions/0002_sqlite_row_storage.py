"""SQLite row storage: data_rows.id is the table's own row id, data_row_metadata is clustered
on its primary key (WITHOUT ROWID). Each saves a B-tree that every imported row was written to.
PostgreSQL is unchanged.

SQLite cannot alter either in place, so both tables are rebuilt by its documented procedure
(foreign keys are off while migrations run: dropping the old data_rows cascades nowhere).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = {
    "data_rows": (
        "id, org_id, dataset_id, global_key, external_id, media_type, row_data, "
        "media_attributes, metadata, attachments, extra, created_by, created_at, updated_at"
    ),
    "data_row_metadata": "data_row_id, field_id, org_id, dataset_id, value_text, value_num",
}


def _data_rows(id_type: str) -> str:
    return f"""CREATE TABLE data_rows_new (
    id {id_type} NOT NULL,
    org_id INTEGER NOT NULL,
    dataset_id INTEGER NOT NULL,
    global_key TEXT,
    external_id TEXT,
    media_type VARCHAR(32) NOT NULL,
    row_data TEXT NOT NULL,
    media_attributes TEXT,
    metadata TEXT,
    attachments TEXT,
    extra TEXT,
    created_by INTEGER,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT pk_data_rows PRIMARY KEY (id),
    CONSTRAINT fk_data_rows_dataset_id_datasets FOREIGN KEY(dataset_id)
        REFERENCES datasets (id) ON DELETE CASCADE,
    CONSTRAINT uq_data_rows_org_global_key UNIQUE (org_id, global_key)
)"""


def _data_row_metadata(id_type: str, options: str) -> str:
    return f"""CREATE TABLE data_row_metadata_new (
    data_row_id {id_type} NOT NULL,
    field_id VARCHAR(40) NOT NULL,
    org_id INTEGER NOT NULL,
    dataset_id INTEGER NOT NULL,
    value_text TEXT,
    value_num FLOAT,
    CONSTRAINT pk_data_row_metadata PRIMARY KEY (data_row_id, field_id),
    CONSTRAINT fk_data_row_metadata_data_row_id_data_rows FOREIGN KEY(data_row_id)
        REFERENCES data_rows (id) ON DELETE CASCADE
){options}"""


INDEXES = (
    "CREATE INDEX ix_data_rows_dataset_id_id ON data_rows (dataset_id, id)",
    "CREATE INDEX ix_data_rows_dataset_media_type_id ON data_rows (dataset_id, media_type, id)",
    "CREATE INDEX ix_data_rows_org_external_id ON data_rows (org_id, external_id)",
    *(
        f"CREATE INDEX ix_data_row_metadata_{scope}_{kind} ON data_row_metadata "
        f"({scope}_id, field_id, value_{kind}, data_row_id) WHERE value_{kind} IS NOT NULL"
        for scope in ("dataset", "org")
        for kind in ("text", "num")
    ),
)


def _rebuild(id_type: str, metadata_options: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "this migration rebuilds data_rows, and with foreign keys on, dropping the old table "
            "would delete every row's metadata; run it with foreign keys off (tether migrate does)"
        )
    op.execute(_data_rows(id_type))
    op.execute(_data_row_metadata(id_type, metadata_options))
    for table, columns in COLUMNS.items():
        op.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")
    op.execute("DROP TABLE data_row_metadata")
    op.execute("DROP TABLE data_rows")
    op.execute("ALTER TABLE data_rows_new RENAME TO data_rows")
    op.execute("ALTER TABLE data_row_metadata_new RENAME TO data_row_metadata")
    for statement in INDEXES:
        op.execute(statement)


def upgrade() -> None:
    _rebuild("INTEGER", " WITHOUT ROWID")


def downgrade() -> None:
    _rebuild("BIGINT", "")
