"""Starting a sync from the API (``POST /storages/{id}/sync``), the SDK
(``Client.sync_storage``) and the CLI (``tether storage sync ID``), in-process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.conftest import Tenant
from tests.test_sdk_transport import AppTransport
from tether import Client
from tether.cli import common
from tether.cli.sync import register
from tether.config import Settings
from tether.storages.memory import MemoryStorage
from tether.sync.connections import insert_storage
from tether.sync.start import start_sync


def _storage(engine: Engine, settings: Settings, tenant: Tenant, keys: list[str]) -> int:
    bucket = f"api-{uuid.uuid4().hex[:10]}"
    store = MemoryStorage(bucket=bucket)
    for key in keys:
        store.write(key, b"x")
    dataset = tenant.dataset()
    with engine.begin() as conn:
        return insert_storage(
            conn,
            settings,
            org_id=tenant.org_id,
            type_="memory",
            fields={"bucket": bucket},
            dataset_id=dataset["id"],
        )


def test_the_api_starts_a_sync_and_answers_200_with_a_running_one(
    engine: Engine, settings: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    storage_id = _storage(engine, settings, tenant, ["a.jpg", "b.png", "c.bin"])
    started = tenant.post(f"/storages/{storage_id}/sync")
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["kind"] == "sync" and job["storage_id"] == storage_id
    done = tenant.get(f"/jobs/{job['id']}").json()  # the test queue ran it at once
    assert done["status"] == "completed_with_errors"
    assert done["counts"] == {
        "listed": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "missing": 0,
        "removed": 0,
        "failed": 1,
    }
    [error] = tenant.errors(job["id"])
    assert error["item_key"] == "c.bin"

    with engine.begin() as conn:  # a sync queued meanwhile (not run yet)
        queued, _created = start_sync(conn, tenant.org_id, storage_id)
    again = tenant.post(f"/storages/{storage_id}/sync")
    assert again.status_code == 200 and again.json()["id"] == queued["id"]

    assert other_tenant.post(f"/storages/{storage_id}/sync").status_code == 404
    assert tenant.post("/storages/99999999/sync").status_code == 404
    assert tenant.post("/storages/0/sync").status_code == 422


@pytest.fixture
def sdk(tenant: Tenant, http: Any) -> Iterator[Client]:
    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as c:
        yield c


def test_the_sdk_starts_a_sync_and_waits_for_it(
    engine: Engine, settings: Settings, tenant: Tenant, sdk: Client
) -> None:
    storage_id = _storage(engine, settings, tenant, ["x/1.jpg", "x/2.jpg"])
    job = sdk.sync_storage(storage_id).wait_till_done(timeout=30, poll=0.05)
    assert job.kind == "sync" and job.status == "completed"
    assert job.counts.get("created") == 2 and job.counts.get("failed") == 0
    job = sdk.sync_storage(storage_id).wait_till_done(timeout=30, poll=0.05)
    assert job.counts.get("unchanged") == 2 and job.counts.get("created") == 0


def _cli(tenant: Tenant, http: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("TETHER_API_KEY", tenant.key)
    monkeypatch.setattr(
        common,
        "Client",
        lambda: Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)),
    )
    app = typer.Typer()
    storage_app = typer.Typer()
    register(storage_app)

    @storage_app.command("list")
    def _other() -> None:  # a second command, so "sync" stays a sub-command
        pass

    app.add_typer(storage_app, name="storage")
    return CliRunner().invoke(app, ["storage", *args])


def test_the_cli_syncs_with_the_exit_codes_of_import(
    engine: Engine, settings: Settings, tenant: Tenant, http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _storage(engine, settings, tenant, ["a.jpg", "b.jpg"])
    result = _cli(tenant, http, monkeypatch, "sync", str(good))
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "created 2" in result.output

    some_bad = _storage(engine, settings, tenant, ["a.jpg", "notes.bin"])
    result = _cli(tenant, http, monkeypatch, "sync", str(some_bad))
    assert result.exit_code == 2, result.output
    assert "notes.bin" in result.output and "unknown_media_type" in result.output

    result = _cli(tenant, http, monkeypatch, "sync", "99999999")
    assert result.exit_code == 1, result.output
    assert "no storage" in result.output

    result = _cli(tenant, http, monkeypatch, "sync", str(good), "--no-wait")
    assert result.exit_code == 0, result.output
    job_id = result.output.strip().splitlines()[-1]
    assert tenant.get(f"/jobs/{job_id}").json()["storage_id"] == good
