"""Tasks through the SDK (``project.add_data_rows``, ``tasks``, ``get_task``,
``next_task``) and the CLI (``tether projects add-rows``, ``tether projects tasks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Tenant
from tests.projects.conftest import BOXES
from tests.projects.test_tasks import _name, images, rows_of
from tether import Client, Job
from tether.schemas import Task
from tether.sdk import InvalidError, NotFoundError


def test_the_sdk_adds_rows_lists_tasks_and_hands_them_out(sdk: Client, tenant: Tenant) -> None:
    ds = tenant.dataset()
    rows = rows_of(tenant, images(4, metadata_fields=[{"name": "tag", "value": "cat"}]), ds)
    project = sdk.create_project(_name(), label_config=BOXES)
    job = project.add_data_rows(dataset=ds["name"], metadata={"tag": "cat"})
    assert isinstance(job, Job) and job.status == "completed" and job.kind == "add_tasks"
    assert job.counts["added"] == 4 and job.counts["existing"] == 0
    again = project.add_data_rows(
        data_row_ids=[rows[0]["id"]], global_keys=[rows[1]["global_key"], "nope"]
    )
    assert (again.counts["existing"], again.counts.failed) == (2, 1)
    assert [e.code for e in again.errors] == ["not_found"]
    queued = project.add_data_rows(dataset=sdk.get_dataset(ds["id"]), wait=False)
    assert queued.wait_till_done(timeout=30).counts["existing"] == 4
    listed = list(project.tasks(page_size=3))
    assert [t.data_row_id for t in listed] == [r["id"] for r in rows]
    assert all(isinstance(t, Task) and t.data_row.id == t.data_row_id for t in listed)
    assert [t.data_row_id for t in project.tasks(metadata=["tag:eq:cat"], dataset_id=ds["id"])]
    assert list(project.tasks(status="labeled")) == []
    assert [t.data_row_id for t in project.tasks(data_row_ids=[rows[2]["id"]])] == [rows[2]["id"]]
    one = project.get_task(rows[1]["id"], resolve=True)
    assert one.status == "unlabeled" and one.data_row.resolved is not None
    with pytest.raises(NotFoundError):
        project.get_task(10**12)
    handed = [project.next_task() for _ in range(2)]
    assert handed[0] is not None and handed[1] is not None
    assert handed[0].data_row_id == handed[1].data_row_id == rows[0]["id"]
    assert handed[0].lease_user_id == tenant.user_id
    assert project.refresh().task_count == 4
    with pytest.raises(InvalidError):
        project.add_data_rows()


def test_next_task_is_none_when_nothing_is_left(sdk: Client) -> None:
    project = sdk.create_project(_name(), label_config=BOXES)
    assert project.next_task() is None


def test_the_cli_adds_rows_with_a_progress_bar_and_lists_tasks(
    cli: Any, tenant: Tenant, tmp_path: Path
) -> None:
    ds = tenant.dataset()
    rows = rows_of(tenant, images(3), ds)
    name = _name()
    made = cli("projects", "create", name, "--template", _template(tenant))
    assert made.exit_code == 0, made.output
    result = cli("projects", "add-rows", name, "--dataset", ds["name"])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "added 3" in result.output
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{rows[0]['global_key']}\n\nno-such-key\n")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{rows[2]['id']}\n")
    result = cli(
        "projects", "add-rows", name, "--global-keys-file", str(keys),
        "--data-row-ids-file", str(ids),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "existing 2" in result.output and "failed 1" in result.output
    assert "no-such-key" in result.output and "not_found" in result.output
    listed = cli("projects", "tasks", name, "--limit", "2")
    assert listed.exit_code == 0, listed.output
    lines = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [t["data_row_id"] for t in lines] == [r["id"] for r in rows[:2]]
    queued = cli("projects", "add-rows", name, "--dataset", str(ds["id"]), "--no-wait")
    assert queued.exit_code == 0 and len(queued.stdout.strip()) == 32
    bad = tmp_path / "bad.txt"
    bad.write_text("12\nabc\n")
    refused = cli("projects", "add-rows", name, "--data-row-ids-file", str(bad))
    assert refused.exit_code == 1 and "line 2" in refused.output
    assert cli("projects", "add-rows", name).exit_code == 1
    unknown = cli("projects", "add-rows", name, "--metadata", "nofield:eq:1")
    assert unknown.exit_code == 1 and "nofield" in unknown.output


def _template(tenant: Tenant) -> str:
    """A shipped template that shows one image (``$image``)."""
    for item in tenant.get("/projects/templates").json()["items"]:
        xml = item["label_config"]
        if 'value="$image"' in xml and xml.count('value="$') == 1:
            return str(item["name"])
    raise AssertionError("no template of one image")
