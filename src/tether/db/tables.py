"""The schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create it.

Uniqueness lives here as constraints (global key per organization, dataset name per
organization, idempotency key per organization), so concurrent writers cannot break it.
Data rows carry their metadata twice on purpose: as JSON (``metadata``) for reading and
exporting whole rows, and as typed values in ``data_row_metadata`` so every metadata filter
is an index range scan on both SQLite and PostgreSQL.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

Ts = DateTime(timezone=True)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Ts, nullable=False),
    # What tether passes as sts:ExternalId when it assumes a customer's IAM role: generated,
    # stable, never chosen by users (0005_storages).
    Column("external_id", String(64)),
    Index("uq_organizations_external_id", "external_id", unique=True),
    sqlite_autoincrement=True,
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text),
    # admin: users, API keys, metadata schema, storages, deletes; member: everything else.
    Column("role", String(16), nullable=False, server_default="member"),
    Column("created_at", Ts, nullable=False),
    CheckConstraint("role IN ('admin', 'member')", name="ck_users_role"),
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("last_used_at", Ts),
    Column("revoked_at", Ts),
    sqlite_autoincrement=True,
)

# Web sign-ins. The cookie holds a random token; only its SHA-256 is stored (as for API
# keys). ``csrf_token`` must come back in the X-CSRF-Token header of every unsafe request.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Ts, nullable=False),
    Column("expires_at", Ts, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", Integer),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    # Set when its deletion starts: the dataset is gone for every lookup at once, and its
    # rows go in chunks (a "delete_dataset" job); its name is free again at once.
    Column("deleted_at", Ts),
    Index(
        "uq_datasets_org_name",
        "org_id",
        "name",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)

# Ids are handed out in blocks by ``id_blocks`` so a bulk insert knows every new row's id
# without a RETURNING round trip, on both databases.
id_blocks = Table(
    "id_blocks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_id", BigInteger, nullable=False),
)

data_rows = Table(
    "data_rows",
    metadata,
    # On SQLite the table's own row id (INTEGER PRIMARY KEY): no separate primary key index.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("org_id", Integer, nullable=False),
    Column("dataset_id", ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("global_key", Text),
    Column("external_id", Text),
    Column("media_type", String(32), nullable=False),
    Column("row_data", Text, nullable=False),  # JSON: a string or an object
    Column("media_attributes", Text),  # JSON object or NULL
    Column("metadata", Text),  # JSON list of {schema_id, name, value} or NULL
    Column("attachments", Text),  # JSON list or NULL
    Column("extra", Text),  # JSON object: annotations, predictions, source ids ... or NULL
    Column("created_by", Integer),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    UniqueConstraint("org_id", "global_key", name="uq_data_rows_org_global_key"),
    Index("ix_data_rows_dataset_id_id", "dataset_id", "id"),
    Index("ix_data_rows_org_external_id", "org_id", "external_id"),
    Index("ix_data_rows_dataset_media_type_id", "dataset_id", "media_type", "id"),
    # Whole-organization listings in id order, and created_at ranges (0004_queries).
    Index("ix_data_rows_org_id_id", "org_id", "id"),
    Index("ix_data_rows_org_media_type_id", "org_id", "media_type", "id"),
    Index("ix_data_rows_dataset_created_id", "dataset_id", "created_at", "id"),
    Index("ix_data_rows_org_created_id", "org_id", "created_at", "id"),
)

metadata_fields = Table(
    "metadata_fields",
    metadata,
    Column("id", String(40), primary_key=True),
    # What data_row_metadata and metadata_values store for the field: a small integer keeps
    # their indexes small (reserved fields have keys 1-4 and no row here; see RESERVED).
    Column("key", Integer, nullable=False, unique=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("options", Text),  # JSON list of {id, name} for enums
    Column("dimension", Integer),  # embeddings
    Column("created_at", Ts, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_metadata_fields_org_name"),
)

# One row per (data row, field), the field by its integer key. A value is in value_text
# (strings, enums) or value_num (numbers, datetimes as epoch seconds), never both. Partial
# indexes per scope and value column: text equality reads (scope, field, text) in data_row_id
# order, so a page stops after its rows; a number range is one seek.
_TEXT = text("value_text IS NOT NULL")
_NUM = text("value_num IS NOT NULL")
data_row_metadata = Table(
    "data_row_metadata",
    metadata,
    Column("data_row_id", ForeignKey("data_rows.id", ondelete="CASCADE"), primary_key=True),
    Column("field_key", Integer, primary_key=True, autoincrement=False),
    Column("org_id", Integer, nullable=False),
    Column("dataset_id", Integer, nullable=False),
    Column("value_text", Text),
    Column("value_num", Float),
    *(
        Index(
            f"ix_data_row_metadata_{scope}_{kind}",
            f"{scope}_id",
            "field_key",
            column,
            "data_row_id",
            sqlite_where=where,
            postgresql_where=where,
        )
        for scope in ("dataset", "org")
        for kind, column, where in (("text", "value_text", _TEXT), ("num", "value_num", _NUM))
    ),
    sqlite_with_rowid=False,  # stored in primary key order: one B-tree fewer per value
)

# The distinct text values of each field, so "contains" filters look through a field's few
# values instead of every row's (rows are then found by equality on those values).
metadata_values = Table(
    "metadata_values",
    metadata,
    Column("org_id", Integer, primary_key=True),
    Column("field_key", Integer, primary_key=True, autoincrement=False),
    Column("value_text", Text, primary_key=True),
)

# One row per job of any kind. ``done``/``total``/``failed`` are typed for every kind; the
# other tallies are in ``counts`` (JSON, keys documented by each kind: import has created and
# updated). A worker owns a running job while ``lease_until`` is ahead: claiming is a
# compare-and-set on (claimed_by, lease_until), renewed with the heartbeat.
# A connection to a bucket, container, folder or Redis db. A ``source`` storage belongs to a
# dataset (rows come in by sync); a ``target`` storage to a project (annotations go out).
# ``config`` holds the type's plain fields as JSON; ``secrets`` the write-only ones, as a
# Fernet token of a JSON object (``sync/connections.py``).
storages = Table(
    "storages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("dataset_id", ForeignKey("datasets.id", ondelete="CASCADE")),
    Column("project_id", Integer),
    Column("role", String(16), nullable=False),
    Column("type", String(32), nullable=False),
    Column("title", String(200), nullable=False),
    Column("config", Text, nullable=False),
    Column("secrets", Text),
    Column("regex_filter", Text),
    Column("recursive", Boolean, nullable=False),
    Column("treat_every_object_as_source_file", Boolean, nullable=False),
    Column("use_signed_urls", Boolean, nullable=False),
    Column("signed_url_ttl_minutes", Integer, nullable=False),
    Column("remove_missing", Boolean, nullable=False),
    Column("sync_every_minutes", Integer),
    Column("next_sync_at", Ts),  # when the schedule starts the next sync
    Column("last_sync_job_id", String(32)),
    # Target storages (0007_projects): delete the object of a deleted annotation; export
    # shortly after each annotation is saved.
    Column("can_delete_objects", Boolean, nullable=False, server_default=text("false")),
    Column("auto_export", Boolean, nullable=False, server_default=text("true")),
    # Target storages (0009_export_seq): it holds every annotation of its project saved at
    # or below this change number (``annotations.seq``); an export reads those above it.
    Column("export_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_by", Integer),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    CheckConstraint("role IN ('source', 'target')", name="ck_storages_role"),
    Index("ix_storages_org_id_id", "org_id", "id"),
    Index("ix_storages_dataset_id", "dataset_id"),
    Index("ix_storages_next_sync_at", "next_sync_at"),
    sqlite_autoincrement=True,
)

# What a sync made of each object: (storage, object key, item index) -> data row. Unique by
# its primary key, so repeated or concurrent syncs cannot create a row twice. Keys sort by
# their bytes on both databases (SQLite's BINARY collation, PostgreSQL's "C"), the order
# every backend lists in, so a sync reads links and listing as two sorted streams.
# ``item_index`` is 0 for an object that is one row, the task's position for a manifest.
storage_links = Table(
    "storage_links",
    metadata,
    Column(
        "storage_id",
        ForeignKey("storages.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("key", Text().with_variant(Text(collation="C"), "postgresql"), primary_key=True),
    Column("item_index", Integer, primary_key=True, autoincrement=False),
    Column("data_row_id", ForeignKey("data_rows.id", ondelete="CASCADE"), nullable=False),
    Column("version", Text),  # etag; size:mtime for local files; a value hash for Redis
    Index("ix_storage_links_data_row_id", "data_row_id"),
    sqlite_with_rowid=False,
)

ACTIVE_SYNC = "kind = 'sync' AND status IN ('queued', 'running')"
QUEUED_EXPORT = "kind = 'export' AND status = 'queued'"
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("dataset_id", Integer),
    Column("storage_id", Integer),
    Column("project_id", Integer),
    Column("params", Text),  # JSON: the kind's options (import: upsert, format, upload path ...)
    Column("fingerprint", String(64)),  # sha256 of what was asked: an idempotency key's request
    Column("details", Text),  # JSON object: facts the kind records (import: format)
    Column("total", BigInteger),
    Column("done", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("counts", Text),  # JSON object of the kind's other tallies
    Column("message", Text),
    Column("idempotency_key", String(200)),
    Column("created_by", Integer),
    Column("created_at", Ts, nullable=False),
    Column("started_at", Ts),
    Column("finished_at", Ts),
    Column("heartbeat_at", Ts),
    Column("claimed_by", String(64)),
    Column("lease_until", Ts),
    Column("cancel_requested_at", Ts),
    UniqueConstraint("org_id", "idempotency_key", name="uq_jobs_org_idempotency_key"),
    Index("ix_jobs_org_created_id", "org_id", "created_at", "id"),
    Index("ix_jobs_status", "status"),
    # One queued or running sync per storage (0006_sync): a second start finds the first.
    Index(
        "uq_jobs_active_sync",
        "storage_id",
        unique=True,
        sqlite_where=text(ACTIVE_SYNC),
        postgresql_where=text(ACTIVE_SYNC),
    ),
    # At most one queued export per target storage (0007_projects): saves that come while
    # one waits add nothing; one that comes while an export runs queues the next.
    Index(
        "uq_jobs_queued_export",
        "storage_id",
        unique=True,
        sqlite_where=text(QUEUED_EXPORT),
        postgresql_where=text(QUEUED_EXPORT),
    ),
)

job_errors = Table(
    "job_errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("item_index", BigInteger),  # the item's position in the job's input, if it has one
    Column("item_key", Text),  # what names the item: an object key, a row index
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", Text),  # JSON object (import: global_key, external_id)
    Index("ix_job_errors_job_id_id", "job_id", "id"),
    sqlite_autoincrement=True,
)

# A request that carried an ``Idempotency-Key``: a repeat of the same request returns the
# stored answer instead of acting again (``tether/idempotency.py``).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column(
        "org_id",
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("key", String(200), primary_key=True),
    Column("scope", Text, nullable=False),  # "POST /api/v1/datasets"
    Column("fingerprint", String(64), nullable=False),  # sha256 of query and body
    Column("response", Text),  # the answer's JSON
    Column("created_at", Ts, nullable=False),
    Index("ix_idempotency_keys_org_created", "org_id", "created_at"),
)

# A labeling effort over data rows (0007_projects). ``label_config`` is Label Studio's XML,
# checked on save (``projects/label_config.py``).
projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("label_config", Text, nullable=False),
    Column("created_by", Integer),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    # The last change number handed to its annotations (``annotations.seq``; 0009_export_seq).
    Column("annotation_seq", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
    sqlite_autoincrement=True,
)

TASK_STATUSES = ("unlabeled", "labeled", "skipped")
# A data row in a project, addressed by (project, data row): adding a row twice finds the
# same task. The counts are kept by the annotation and prediction writes. A lease
# (``lease_user_id`` until ``lease_until``) is what ``next-task`` hands out, so two
# annotators are never given the same task. ``imported_at``: when the Label Studio
# annotations and predictions the row was imported with were brought in (once).
tasks = Table(
    "tasks",
    metadata,
    Column(
        "project_id",
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column(
        "data_row_id",
        ForeignKey("data_rows.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("org_id", Integer, nullable=False),
    Column("status", String(16), nullable=False, server_default="unlabeled"),
    Column("total_annotations", Integer, nullable=False, server_default="0"),
    Column("cancelled_annotations", Integer, nullable=False, server_default="0"),
    Column("total_predictions", Integer, nullable=False, server_default="0"),
    Column("lease_user_id", Integer),
    Column("lease_until", Ts),
    Column("imported_at", Ts),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    CheckConstraint("status IN ('unlabeled', 'labeled', 'skipped')", name="ck_tasks_status"),
    Index("ix_tasks_project_status_row", "project_id", "status", "data_row_id"),
    Index("ix_tasks_data_row_id", "data_row_id"),
    # The tasks a user holds a lease on (0008_tasks): few rows, so "the task I hold" is one
    # small index search however many tasks the project has. It covers that query (status
    # and org_id too): SQLite preferred walking the primary key to a lookup from a narrower one.
    Index(
        "ix_tasks_project_lease_user",
        "project_id",
        "lease_user_id",
        "status",
        "org_id",
        sqlite_where=text("lease_user_id IS NOT NULL"),
        postgresql_where=text("lease_user_id IS NOT NULL"),
    ),
    sqlite_with_rowid=False,
)

# What people made: a task's annotations. Ids are never reused (they name the objects an
# export writes to target storages); ``version`` grows by one on every edit. ``seq``: the
# project's change number of the annotation's last save (``labels`` takes it from
# ``projects.annotation_seq``), so an export reads only what was saved since its last one.
annotations = Table(
    "annotations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("data_row_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("result", Text, nullable=False),  # JSON list of Label Studio regions
    Column("lead_time", Float),
    Column("was_cancelled", Boolean, nullable=False, server_default=text("false")),
    Column("ground_truth", Boolean, nullable=False, server_default=text("false")),
    Column("completed_by", Integer),
    Column("updated_by", Integer),
    Column("parent_prediction", Integer),
    Column("parent_annotation", Integer),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(
        ["project_id", "data_row_id"],
        ["tasks.project_id", "tasks.data_row_id"],
        ondelete="CASCADE",
        name="fk_annotations_task",
    ),
    Index("ix_annotations_project_row", "project_id", "data_row_id", "id"),
    Index("ix_annotations_project_id", "project_id", "id"),
    Index("ix_annotations_project_seq", "project_id", "seq", unique=True),
    sqlite_autoincrement=True,
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("data_row_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("result", Text, nullable=False),  # JSON list of Label Studio regions
    Column("model_version", String(200), nullable=False, server_default=""),
    Column("score", Float),
    Column("created_at", Ts, nullable=False),
    Column("updated_at", Ts, nullable=False),
    ForeignKeyConstraint(
        ["project_id", "data_row_id"],
        ["tasks.project_id", "tasks.data_row_id"],
        ondelete="CASCADE",
        name="fk_predictions_task",
    ),
    Index("ix_predictions_project_row", "project_id", "data_row_id", "id"),
    sqlite_autoincrement=True,
)

# What an export wrote to a target storage: (storage, annotation) -> the annotation's version
# in the object. No foreign key to annotations on purpose: the link of a deleted annotation
# is how an export knows to delete its object (``can_delete_objects``).
export_links = Table(
    "export_links",
    metadata,
    Column(
        "storage_id",
        ForeignKey("storages.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("annotation_id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("written_at", Ts, nullable=False),
    sqlite_with_rowid=False,
)
