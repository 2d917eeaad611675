"""Settings: one class, read from ``TETHER_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tether.security.secrets import redact_url
from tether.security.urls import Allowlist

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "placeholder"}
URL_SETTINGS = {"database_url", "queue_url", "public_url"}
QUEUE_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    """Every setting tether reads. The README's settings table mirrors this class."""

    # hide_input_in_errors: a refused value (a secret, a URL with a password) is never echoed.
    model_config = SettingsConfigDict(
        env_prefix="TETHER_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(
        Path("tether-data"),
        description="TETHER_DATA_DIR: where the embedded "
        "database, job queue, uploads and generated secret key live.",
    )
    database_url: str | None = Field(
        None,
        description="TETHER_DATABASE_URL: `sqlite:///path` or "
        "`postgresql://user@host/db`; default SQLite in the data dir.",
    )
    queue_url: str | None = Field(
        None,
        description="TETHER_QUEUE_URL: `redis://host:6379/0` for "
        "workers on many machines; default an SQLite queue in the data dir.",
    )
    host: str = Field("127.0.0.1", description="TETHER_HOST: address `tether serve` binds.")
    port: int = Field(8080, description="TETHER_PORT: port `tether serve` binds.")
    public_url: str | None = Field(
        None, description="TETHER_PUBLIC_URL: URL users reach the server at (printed on start)."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="TETHER_SECRET_KEY: Fernet key that encrypts "
        "stored secrets; generated into the data dir when unset.",
    )
    embedded_worker: bool = Field(
        True,
        description="TETHER_EMBEDDED_WORKER: run job workers "
        "inside `tether serve` (turn off when running `tether worker`).",
    )
    workers: int = Field(1, ge=1, le=64, description="TETHER_WORKERS: job worker threads.")
    max_upload_bytes: int = Field(
        2 * 1024**3, description="TETHER_MAX_UPLOAD_BYTES: largest bulk import body or file."
    )
    max_json_bytes: int = Field(
        16 * 1024**2, description="TETHER_MAX_JSON_BYTES: largest body of any other request."
    )
    import_chunk_rows: int = Field(
        10_000, ge=1, description="TETHER_IMPORT_CHUNK_ROWS: rows per import transaction."
    )
    delete_chunk_rows: int = Field(
        10_000,
        ge=1,
        description="TETHER_DELETE_CHUNK_ROWS: rows per transaction of a dataset deletion.",
    )
    sync_chunk_objects: int = Field(
        2000,
        ge=1,
        description="TETHER_SYNC_CHUNK_OBJECTS: objects a sync writes per transaction (ten "
        "times as many when they are unchanged).",
    )
    sync_parts: int = Field(
        1,
        ge=1,
        le=256,
        description="TETHER_SYNC_PARTS: split each sync into this many parts by first-level "
        "folder, run by several workers side by side (PostgreSQL with a Redis queue; 1: no "
        "split).",
    )
    job_lease_seconds: float = Field(
        60,
        gt=0,
        description="TETHER_JOB_LEASE_SECONDS: how long a worker owns a job without renewing "
        "its lease; a dead worker's job resumes on another worker about this long after.",
    )
    task_lease_seconds: float = Field(
        900,
        gt=0,
        description="TETHER_TASK_LEASE_SECONDS: how long `next-task` keeps a task for the "
        "annotator it gave it to; past it, another annotator may be given the task.",
    )
    add_tasks_chunk_rows: int = Field(
        2000,
        ge=1,
        description="TETHER_ADD_TASKS_CHUNK_ROWS: rows an `add_tasks` job adds to a project "
        "per transaction.",
    )
    upload_max_age_seconds: float = Field(
        3600,
        gt=0,
        description="TETHER_UPLOAD_MAX_AGE_SECONDS: staged upload files older than this that "
        "no queued or running job owns are removed.",
    )
    session_hours: float = Field(
        24,
        gt=0,
        le=24 * 90,
        description="TETHER_SESSION_HOURS: how long a web sign-in (session cookie) lasts.",
    )
    outbound_allowlist: str = Field(
        "",
        description="TETHER_OUTBOUND_ALLOWLIST: comma-separated hosts, `host:port`s or CIDR "
        "ranges the server may reach although they are not public (e.g. an in-house "
        "S3 endpoint); everything else private, loopback or link-local is refused.",
    )

    allow_ambient_credentials: bool = Field(
        False,
        description="TETHER_ALLOW_AMBIENT_CREDENTIALS: let storages without credentials use "
        "this server's own cloud identity (instance roles, environment variables, metadata "
        "servers). Off: such a storage is refused, so one tenant never borrows it.",
    )
    local_files_serving_enabled: bool = Field(
        False,
        description="TETHER_LOCAL_FILES_SERVING_ENABLED: allow `local` storages (folders on "
        "this server) and serve their files.",
    )
    local_files_document_root: Path | None = Field(
        None,
        description="TETHER_LOCAL_FILES_DOCUMENT_ROOT: the folder every `local` storage must "
        "lie in; nothing outside it is listed or served.",
    )
    editor_dir: Path = Field(
        Path(sys.prefix) / "share" / "tether" / "label-studio-editor",
        description="TETHER_EDITOR_DIR: Label Studio's editor build (main.js, main.css and its "
        "files), which scripts/bootstrap.sh unpacks from the label-studio 1.13.1 wheel; the "
        "labeling page needs it.",
    )
    sts_access_key_id: str | None = Field(
        None,
        description="TETHER_STS_ACCESS_KEY_ID: tether's own AWS identity for IAM-role storages "
        "(S3 with `role_arn`): the key that calls STS AssumeRole, and nothing else. Give it "
        "only `sts:AssumeRole`.",
    )
    sts_secret_access_key: SecretStr | None = Field(
        None, description="TETHER_STS_SECRET_ACCESS_KEY: the secret of TETHER_STS_ACCESS_KEY_ID."
    )
    sts_use_ambient_credentials: bool = Field(
        False,
        description="TETHER_STS_USE_AMBIENT_CREDENTIALS: call STS AssumeRole with this server's "
        "own AWS identity (instance role, environment) when no TETHER_STS_ACCESS_KEY_ID is "
        "set. Only AssumeRole uses it; a storage never reads a bucket with it.",
    )
    sts_region: str = Field("us-east-1", description="TETHER_STS_REGION: the STS region.")
    sts_endpoint_url: str | None = Field(
        None,
        description="TETHER_STS_ENDPOINT_URL: another STS endpoint (a regional or a test one).",
    )
    sts_session_minutes: int = Field(
        60,
        ge=15,
        le=720,
        description="TETHER_STS_SESSION_MINUTES: how long assumed-role credentials last; "
        "tether renews them 10 minutes before they expire.",
    )
    max_asset_bytes: int = Field(
        500 * 1024**2,
        gt=0,
        description="TETHER_MAX_ASSET_BYTES: largest file `tether upload` (and the upload "
        "API) puts into a storage; a larger one is a per-file error.",
    )
    probe_http_urls: bool = Field(
        False,
        description="TETHER_PROBE_HTTP_URLS: let media probing (the `probe` job) fetch the "
        "headers of rows whose data is a plain http(s) URL, through the outbound-URL guard. "
        "Off: such rows are skipped (data on a private network may be reachable from a "
        "user's browser and not from the server).",
    )
    probe_max_bytes: int = Field(
        16 * 1024**2,
        gt=0,
        description="TETHER_PROBE_MAX_BYTES: most bytes of one asset media probing reads; an "
        "asset whose headers need more is a per-item error.",
    )
    probe_after_writes: bool = Field(
        True,
        description="TETHER_PROBE_AFTER_WRITES: start a `probe` job (media attributes) after a "
        "sync or an import that created or changed rows of a dataset with source storages.",
    )
    managed_uploads: bool = Field(
        True,
        description="TETHER_MANAGED_UPLOADS: files uploaded without a storage of their "
        "dataset go into a folder tether keeps for each organization under the data dir "
        "(`assets/`). Turn off when several servers share a database but not a data dir.",
    )

    @field_validator("secret_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "TETHER_SECRET_KEY is a placeholder; set a real Fernet key or unset it"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        """Refuse an unparsable URL here, in words that cannot include its password."""
        if value is not None:
            try:
                make_url(value)
            except (ArgumentError, ValueError):
                raise ValueError(
                    f"TETHER_DATABASE_URL does not parse as a database URL: {redact_url(value)}"
                ) from None
        return value

    @field_validator("queue_url")
    @classmethod
    def _known_queue(cls, value: str | None) -> str | None:
        if value is not None and value != "immediate" and not value.startswith(QUEUE_SCHEMES):
            raise ValueError(
                f"TETHER_QUEUE_URL {redact_url(value)}: expected redis://..., or unset"
            )
        return value

    @field_validator("outbound_allowlist")
    @classmethod
    def _parse_allowlist(cls, value: str) -> str:
        Allowlist.parse(value)  # a bad entry fails at start-up, not at the first fetch
        return value

    def __repr_args__(self) -> Any:
        """The repr (and str) never shows a password inside a URL; SecretStr hides the key."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in URL_SETTINGS else value

    @property
    def allowlist(self) -> Allowlist:
        return Allowlist.parse(self.outbound_allowlist)

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{(self.data_dir / 'tether.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def fernet_key(self) -> str:
        """The configured key, or one generated once and kept (mode 0600) in the data dir."""
        if self.secret_key:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret.key"
        if not path.exists():
            from cryptography.fernet import Fernet

            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(Fernet.generate_key().decode())
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
