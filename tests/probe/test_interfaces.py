"""Starting a probe from the API (``POST /datasets/{id}/probe``), the SDK
(``Dataset.probe``), the CLI (``tether probe --dataset``), and after a sync, in-process
(the test queue runs a job when it is queued)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.conftest import Tenant
from tests.probe import media
from tests.test_sdk_transport import AppTransport
from tether import Client
from tether.cli import common
from tether.cli.probe import register
from tether.config import Settings
from tether.resolve.probe_job import start_probe
from tether.storages.memory import MemoryStorage
from tether.sync.connections import insert_storage


def _dataset(engine: Engine, settings: Settings, tenant: Tenant, files: dict[str, bytes]) -> int:
    """A dataset whose memory-store source holds ``files``, synced."""
    bucket = f"probe-{uuid.uuid4().hex[:10]}"
    store = MemoryStorage(bucket=bucket)
    for key, data in files.items():
        store.write(key, data)
    dataset = tenant.dataset()
    with engine.begin() as conn:
        storage_id = insert_storage(
            conn,
            settings,
            org_id=tenant.org_id,
            type_="memory",
            fields={"bucket": bucket},
            dataset_id=dataset["id"],
        )
    assert tenant.post(f"/storages/{storage_id}/sync").status_code == 202
    return int(dataset["id"])


def _probes(tenant: Tenant, dataset_id: int) -> list[dict[str, Any]]:
    params = {"kind": "probe", "dataset_id": dataset_id}
    return tenant.get("/jobs", params=params).json()["items"]  # type: ignore[no-any-return]


def _rows(tenant: Tenant, dataset_id: int) -> dict[str, dict[str, Any]]:
    items = tenant.get("/data-rows", params={"dataset_id": dataset_id}).json()["items"]
    return {r["row_data"].rsplit("/", 1)[-1]: r["media_attributes"] for r in items}


def test_a_sync_that_made_rows_is_followed_by_a_probe(
    engine: Engine, settings: Settings, tenant: Tenant
) -> None:
    photo, _ = media.assets()["photo.jpg"]
    dataset_id = _dataset(engine, settings, tenant, {"a.jpg": photo})
    [job] = _probes(tenant, dataset_id)
    assert job["status"] == "completed" and job["counts"]["probed"] == 1, job
    assert _rows(tenant, dataset_id)["a.jpg"] == {
        "width": 64,
        "height": 48,
        "size": len(photo),
        "mimeType": "image/jpeg",
    }


def test_the_api_starts_a_probe(
    engine: Engine, settings: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    doc, _ = media.assets()["doc.pdf"]
    dataset_id = _dataset(engine, settings, tenant, {"d.pdf": doc, "bad.png": b"not a png"})
    started = tenant.post(f"/datasets/{dataset_id}/probe", params={"force": "true"})
    assert started.status_code == 202, started.text
    job = tenant.get(f"/jobs/{started.json()['id']}").json()  # run at once by the test queue
    assert job["kind"] == "probe" and job["options"] == {"force": True}
    assert job["status"] == "completed_with_errors", job
    assert (job["counts"]["probed"], job["counts"]["failed"]) == (1, 1)
    [error] = tenant.errors(job["id"])
    assert error["item_key"].endswith("/bad.png") and error["code"] == "unknown_format"
    assert _rows(tenant, dataset_id)["d.pdf"]["pageCount"] == 3

    with engine.begin() as conn:  # a probe queued meanwhile (not run yet)
        queued, _created = start_probe(conn, tenant.org_id, dataset_id, None)
    again = tenant.post(f"/datasets/{dataset_id}/probe")
    assert again.status_code == 200 and again.json()["id"] == queued["id"]

    assert other_tenant.post(f"/datasets/{dataset_id}/probe").status_code == 404
    assert tenant.post("/datasets/99999999/probe").status_code == 404


@pytest.fixture
def sdk(tenant: Tenant, http: Any) -> Iterator[Client]:
    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as c:
        yield c


def test_the_sdk_and_the_cli_probe_a_dataset(
    engine: Engine,
    settings: Settings,
    tenant: Tenant,
    sdk: Client,
    http: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sound, _ = media.assets()["tone.wav"]
    dataset_id = _dataset(engine, settings, tenant, {"t.wav": sound})
    job = sdk.get_dataset(dataset_id).probe(force=True).wait_till_done(timeout=30, poll=0.05)
    assert job.kind == "probe" and job.status == "completed"
    assert job.counts.get("probed") == 1
    assert _rows(tenant, dataset_id)["t.wav"]["duration"] == 1.5

    monkeypatch.setenv("TETHER_API_KEY", tenant.key)
    monkeypatch.setattr(
        common,
        "Client",
        lambda: Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)),
    )
    app = typer.Typer()
    register(app)

    @app.command("other")
    def _other() -> None:  # a second command, so "probe" stays a sub-command
        pass

    result = CliRunner().invoke(app, ["probe", "--dataset", str(dataset_id)])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "unchanged 1" in result.output
    result = CliRunner().invoke(app, ["probe", "--dataset", "99999999"])
    assert result.exit_code == 1, result.output


def test_an_import_into_a_dataset_with_a_source_storage_is_followed_by_a_probe(
    engine: Engine, settings: Settings, tenant: Tenant
) -> None:
    shot, _ = media.assets()["shot.png"]
    bucket = f"probe-{uuid.uuid4().hex[:10]}"
    MemoryStorage(bucket=bucket).write("in/s.png", shot)
    dataset_id = _dataset(engine, settings, tenant, {})
    assert _probes(tenant, dataset_id) == []  # the sync made no rows: nothing to probe
    with engine.begin() as conn:  # the bucket the imported URIs name, as a source
        insert_storage(
            conn,
            settings,
            org_id=tenant.org_id,
            type_="memory",
            fields={"bucket": bucket},
            dataset_id=dataset_id,
        )
    body = f'{{"row_data": "memory://{bucket}/in/s.png"}}\n'
    imported = tenant.import_rows(dataset_id, body, format="ndjson")
    assert tenant.get(f"/jobs/{imported['id']}").json()["counts"]["created"] == 1
    [job] = _probes(tenant, dataset_id)
    assert job["status"] == "completed" and job["counts"]["probed"] == 1, job
    assert _rows(tenant, dataset_id)["s.png"] == {
        "width": 30,
        "height": 20,
        "size": len(shot),
        "mimeType": "image/png",
    }
