"""The SDK answers with the API's own response models (``tether.schemas``), and each still
reads like the dict it used to be (``row["id"]``, ``.get``, ``in``, ``==``, ``dict(row)``)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from tests.conftest import Tenant
from tether import schemas
from tether.sdk import Client, ConflictError, Dataset, Job

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(app: Any, tenant: Tenant) -> Any:
    """The SDK talking to the in-process app (its HTTP client swapped for a test client)."""
    sdk = Client("http://testserver", api_key=tenant.key, retries=0)
    sdk._http.close()
    sdk._http = TestClient(app, base_url="http://testserver/api/v1", headers=tenant.headers)
    yield sdk
    sdk._http.close()


ROW = {
    "id": 1,
    "dataset_id": 2,
    "global_key": None,
    "external_id": "e",
    "media_type": "IMAGE",
    "row_data": "s3://b/1.jpg",
    "media_attributes": {"width": 3},
    "metadata_fields": [{"schema_id": "s", "name": "tag", "value": "a"}],
    "attachments": [{"type": "TEXT", "value": "note"}],
    "created_by": None,
    "created_at": "2026-01-01T00:00:00+00:00",
    "updated_at": "2026-01-01T00:00:00+00:00",
    "camera": "left",  # a source file's own field
}


def test_a_model_reads_like_the_dict_it_was_parsed_from() -> None:
    row = schemas.DataRow.model_validate(ROW)
    assert row == ROW and row.to_dict() == ROW and dict(row) == ROW
    assert list(row.keys()) == list(ROW)
    assert row["id"] == row.id == 1 and row["camera"] == "left"
    assert row.get("nope") is None and row.get("nope", 5) == 5 and "camera" in row
    assert row["metadata_fields"][0]["value"] == "a"
    attachment = row.attachments[0]
    assert attachment.name is None and "name" not in attachment
    with pytest.raises(KeyError):
        attachment["name"]
    assert attachment == {"type": "TEXT", "value": "note"}
    assert row != {**ROW, "id": 2}
    with pytest.raises(KeyError):
        row["nope"]


def test_sdk_results_are_typed_models(client: Any, tenant: Tenant) -> None:
    dataset = client.create_dataset("typed")
    assert isinstance(dataset, Dataset) and isinstance(dataset, schemas.Dataset)
    assert dataset["id"] == dataset.id and dataset["name"] == "typed"
    rows = [{"row_data": f"s3://b/{i}.jpg", "global_key": f"t-{i}"} for i in range(3)]
    job = dataset.create_data_rows([*rows, {"global_key": "broken"}]).wait_till_done(timeout=30)
    assert isinstance(job, Job) and isinstance(job.counts, schemas.Counts)
    assert job.counts == {"created": 3, "updated": 0, "failed": 1}
    assert job["counts"]["created"] == job.counts.created == 3
    assert job._data["dataset_id"] == dataset.id
    [error] = job.errors
    assert isinstance(error, schemas.JobError)
    assert (error.index, error.ok, error["code"]) == (3, False, "missing_row_data")

    listed = list(dataset.data_rows())
    assert all(isinstance(r, schemas.DataRow) for r in listed)
    assert [r["global_key"] for r in listed] == ["t-0", "t-1", "t-2"]
    raw = tenant.get(f"/data-rows/{listed[0].id}").json()
    assert client.get_data_row(listed[0].id) == raw == listed[0].to_dict()

    with pytest.raises(ConflictError) as caught:
        client.update_data_row(listed[0].id, global_key="t-1")
    assert caught.value.code == "global_key_exists" and caught.value.status == 409
    updated = client.update_data_row(listed[0].id, external_id="x")
    assert isinstance(updated, schemas.DataRow) and updated.external_id == "x"

    [assigned] = client.assign_global_keys([{"data_row_id": listed[0].id, "global_key": "t-2"}])
    assert isinstance(assigned, schemas.ItemResult)
    assert (assigned.ok, assigned.code, assigned["error"]) == (
        False,
        "global_key_exists",
        "global key 't-2' belongs to another data row",
    )
    found = client.get_data_row_ids_for_global_keys(["t-1", "nope"])
    assert [f["data_row_id"] for f in found] == [listed[1].id, None]
    deleted = client.delete_data_rows(ids=[listed[1].id], global_keys=["nope"])
    assert [(d.index, d.ok, d.code) for d in deleted] == [(0, True, None), (1, False, "not_found")]
    assert deleted[1].get("data_row_id", deleted[1].get("global_key")) == "nope"
    [cleared] = client.clear_global_keys(["t-2"])
    assert cleared.ok and cleared["global_key"] == "t-2"

    field = client.create_metadata_field("weather", "enum", options=["sun"])
    assert isinstance(field, schemas.MetadataField)
    assert field.options is not None and field.options[0]["name"] == "sun"
    assert [f.name for f in client.metadata_schema()][-1] == "weather"
    assert client.get_job(job.id) == job.to_dict()
    assert [j.id for j in client.jobs()] == [job.id]
    again = Dataset(client, dataset.to_dict())  # as earlier versions built it
    assert again == dataset and again.client is client
    assert again.update(description="d").description == "d"
