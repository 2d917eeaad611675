"""The demo set-up of ``tether serve --demo``: a user, an API key and a small dataset."""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from tether import accounts
from tether.catalog import datasets
from tether.catalog.metadata_schema import load_schema
from tether.catalog.rows import normalize
from tether.catalog.store import Target, write_rows
from tether.errors import Conflict, Unauthorized

DEMO_EMAIL = "admin@example.com"


def ensure_demo(engine: Engine, data_dir: Path) -> str:
    """Create what is missing and return the demo API key (kept in the data dir, 0600). A
    saved key that no longer works (revoked, or made for another database) is replaced."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "demo-api-key"
    with engine.begin() as conn:
        with contextlib.suppress(Conflict):
            accounts.create_user(conn, DEMO_EMAIL, "demo", None, is_admin=True)
        caller = _saved_key(conn, key_file)
        if caller is None:
            _save(key_file, accounts.create_api_key(conn, DEMO_EMAIL, "demo"))
            caller = accounts.authenticate(conn, key_file.read_text().strip())
        try:
            dataset = datasets.create(conn, caller.org_id, "demo", "rows to try tether with")
        except Conflict:
            return key_file.read_text().strip()
    _fill(engine, caller.org_id, int(dataset["id"]), caller.user_id)
    return key_file.read_text().strip()


def ensure_demo_password(engine: Engine, data_dir: Path, key: str) -> str:
    """The demo user's password for the web UI (kept in the data dir, 0600): made, and set,
    when the user has none or the saved one is gone."""
    password_file = data_dir / "demo-password"
    with engine.begin() as conn:
        caller = accounts.authenticate(conn, key)
        user = accounts.get_user(conn, caller.org_id, caller.user_id)
        if user["can_sign_in"] and password_file.exists():
            return password_file.read_text().strip()
        password = secrets.token_urlsafe(12)
        accounts.update_user(conn, caller, caller.user_id, password=password)
    _save(password_file, password)
    return password


def _saved_key(conn: Connection, key_file: Path) -> accounts.Caller | None:
    """The demo user behind the saved key, or None when there is none or it does not work."""
    if not key_file.exists():
        return None
    try:
        caller = accounts.authenticate(conn, key_file.read_text().strip())
    except Unauthorized:
        return None
    return caller if caller.email == DEMO_EMAIL else None


def _save(key_file: Path, key: str) -> None:
    key_file.unlink(missing_ok=True)
    key_file.touch(mode=0o600)
    os.chmod(key_file, 0o600)
    key_file.write_text(key)


def _fill(engine: Engine, org_id: int, dataset_id: int, user_id: int) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rows = []
    for i in range(12):
        split = ("train", "valid", "test")[i % 3]
        rows.append(
            {
                "row_data": f"https://example.com/street/{i:04d}.jpg",
                "global_key": f"demo-{i:04d}",
                "external_id": f"street-{i}",
                "media_attributes": {"width": 1920, "height": 1080},
                "metadata_fields": [
                    {"name": "split", "value": split},
                    {"name": "tag", "value": "street"},
                    {"name": "captureDateTime", "value": (start + timedelta(days=i)).isoformat()},
                ],
                "attachments": [{"type": "RAW_TEXT", "value": f"camera {i % 4}"}],
            }
        )
    rows.append({"row_data": "A plain sentence to label.", "global_key": "demo-text"})
    rows.append({"row_data": {"pdf_url": "https://example.com/doc.pdf"}, "global_key": "demo-pdf"})
    with engine.connect() as conn:
        schema = load_schema(conn, org_id)
    normal = [(i, normalize(r, schema)) for i, r in enumerate(rows)]
    with engine.begin() as conn:
        write_rows(conn, Target(org_id, dataset_id, user_id), normal)
