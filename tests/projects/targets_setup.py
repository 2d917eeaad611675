"""What the target storage tests share: an app of their own (local folders on, loopback
endpoints allowed), a project with annotated tasks on rows imported through the API, and
reading what an export wrote.

Annotations are made, changed and deleted with ``labels`` (the one write path), as the
annotations service does."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from tests.conftest import Tenant, make_tenant
from tests.projects.conftest import BOXES, new_project
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import export_links
from tether.projects import labels


@dataclass
class Api:
    app: Any
    client: Any
    engine: Engine
    document_root: Path

    def tenant(self, role: str = "admin", org: str | None = None) -> Tenant:
        return make_tenant(self.engine, self.client, org=org, role=role)

    def folder(self) -> Path:
        made = self.document_root / f"out-{uuid.uuid4().hex[:8]}"
        made.mkdir()
        return made


def make_api(
    settings: Any, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """For a module's ``api`` fixture: an app of its own on the session's database."""
    from tether.api.app import create_app

    root = tmp_path_factory.mktemp("targets")
    app = create_app(
        settings.model_copy(
            update={
                "outbound_allowlist": "127.0.0.1",
                "local_files_serving_enabled": True,
                "local_files_document_root": root,
            }
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(app) as client:
        yield Api(app, client, engine, root)


REGION = {
    "id": "x7xyRPHv7f",
    "from_name": "label",
    "to_name": "image",
    "type": "rectanglelabels",
    "origin": "manual",
    "original_width": 2242,
    "original_height": 2802,
    "image_rotation": 0,
    "value": {"x": 20, "y": 20, "width": 30, "height": 40, "rotation": 0,
              "rectanglelabels": ["Cat"]},
}  # fmt: skip


@dataclass
class Labeled:
    """A project with one task per row and one annotation per task (the ids in order)."""

    tenant: Tenant
    engine: Engine
    project: dict[str, Any]
    rows: list[int]
    annotations: list[int]

    @property
    def project_id(self) -> int:
        return int(self.project["id"])

    def annotate(self, row_id: int, **columns: Any) -> int:
        with self.engine.begin() as conn:
            [made] = labels.insert_annotations(conn, [self._annotation(row_id, **columns)])
        self.annotations.append(made)
        return made

    def _annotation(self, row_id: int, **columns: Any) -> dict[str, Any]:
        return {
            "org_id": self.tenant.org_id,
            "project_id": self.project_id,
            "data_row_id": row_id,
            "result": [REGION],
            "completed_by": self.tenant.user_id,
            "updated_by": self.tenant.user_id,
            "lead_time": 12.5,
            **columns,
        }

    def edit(self, *annotation_ids: int) -> None:
        """Change the annotations as a save does (``labels``): new result, version + 1."""
        result = [{**REGION, "id": "edited"}]
        with self.engine.begin() as conn:
            for annotation_id in annotation_ids:
                changed = labels.update_annotation(
                    conn, self.tenant.org_id, annotation_id, {"result": result}
                )
                assert changed is not None, annotation_id

    def remove(self, *annotation_ids: int) -> None:
        with self.engine.begin() as conn:
            for annotation_id in annotation_ids:
                assert labels.delete_annotation(conn, self.tenant.org_id, annotation_id)

    def versions(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(annotation_rows.c.id, annotation_rows.c.version).where(
                    annotation_rows.c.project_id == self.project_id
                )
            )
            return {int(i): int(v) for i, v in rows}

    def links(self, storage_id: int) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(export_links.c.annotation_id, export_links.c.version).where(
                    export_links.c.storage_id == storage_id
                )
            )
            return {int(i): int(v) for i, v in rows}


def imported_rows(tenant: Tenant, n: int) -> list[int]:
    """``n`` data rows imported through the API (``s3://bucket/img/<i>.jpg``), ids in order."""
    ds = tenant.dataset()
    body = "".join(f'{{"row_data": "s3://bucket/img/{i}.jpg"}}\n' for i in range(n))
    job = tenant.import_rows(ds["id"], body)
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    ids: list[int] = []
    after = None
    while len(ids) < n:
        params: dict[str, Any] = {"dataset_id": ds["id"], "limit": 1000}
        if after is not None:
            params["after"] = after
        page = tenant.get("/data-rows", params=params).json()
        ids += [r["id"] for r in page["items"]]
        after = page.get("next_cursor")
        if after is None:
            break
    return sorted(ids)


def labeled(tenant: Tenant, engine: Engine, n: int, label_config: str = BOXES) -> Labeled:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}", label_config)
    rows = imported_rows(tenant, n)
    found = Labeled(tenant, engine, project, rows, [])
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, found.project_id, rows)
        found.annotations = labels.insert_annotations(
            conn, [found._annotation(row_id) for row_id in rows]
        )
    return found


def target(tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = tenant.post("/storages", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def export(tenant: Tenant, storage_id: int) -> dict[str, Any]:
    """Start an export (the test queue runs it before the answer) and return the job."""
    r = tenant.post(f"/storages/{storage_id}/sync")
    assert r.status_code in (200, 202), r.text
    job = tenant.get(f"/jobs/{r.json()['id']}").json()
    assert job["kind"] == "export", job
    return job  # type: ignore[no-any-return]


def counts(job: dict[str, Any]) -> dict[str, int]:
    return {k: job["counts"].get(k, 0) for k in ("written", "unchanged", "deleted", "failed")}


def files(folder: Path) -> dict[str, Any]:
    """The objects of a local target: name -> parsed JSON."""
    return {p.name: orjson.loads(p.read_bytes()) for p in folder.iterdir() if p.is_file()}
