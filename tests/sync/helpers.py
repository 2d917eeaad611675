"""What the sync tests share: an organization with a dataset, a storage connection stored
without checks (``insert_storage``), running a sync job here and reading what it made."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from tether.accounts.orgs import get_or_create_org
from tether.catalog import datasets
from tether.config import Settings
from tether.db.tables import data_rows, storage_links
from tether.jobs import service
from tether.sync.connections import insert_storage
from tether.sync.runner import run_sync
from tether.sync.start import start_sync


@dataclass
class Place:
    """An organization and a dataset of it, where a test's storages sync to."""

    engine: Engine
    settings: Settings
    org_id: int
    dataset_id: int

    def storage(self, type_: str, fields: dict[str, Any], **options: Any) -> int:
        with self.engine.begin() as conn:
            return insert_storage(
                conn,
                self.settings,
                org_id=self.org_id,
                type_=type_,
                fields=fields,
                dataset_id=self.dataset_id,
                **options,
            )

    def sync(self, storage_id: int, chunk_objects: int | None = None) -> dict[str, Any]:
        """Start a sync and run it to its end here; the finished job."""
        with self.engine.begin() as conn:
            job, created = start_sync(conn, self.org_id, storage_id)
        assert created, job
        run_sync(self.engine, self.settings, job["id"], chunk_objects)
        return self.job(job["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return service.get(conn, self.org_id, job_id)

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return service.errors(conn, self.org_id, job_id, limit=1000)[0]

    def rows(self) -> list[Any]:
        """The dataset's rows, in id order."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(data_rows)
                .where(data_rows.c.dataset_id == self.dataset_id)
                .order_by(data_rows.c.id)
            ).all()

    def links(self, storage_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(
                select(storage_links)
                .where(storage_links.c.storage_id == storage_id)
                .order_by(storage_links.c.key, storage_links.c.item_index)
            ).all()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(data_rows.c.dataset_id == self.dataset_id)
                ).scalar_one()
            )


def new_place(engine: Engine, settings: Settings) -> Place:
    tag = uuid.uuid4().hex[:10]
    with engine.begin() as conn:
        org_id = get_or_create_org(conn, f"org-{tag}")
        dataset_id = int(datasets.create(conn, org_id, f"ds-{tag}")["id"])
    return Place(engine, settings, org_id, dataset_id)


def counts(job: dict[str, Any]) -> dict[str, int]:
    """A finished sync's counts, every one of them."""
    return dict(job["counts"])


def expect(**given: int) -> dict[str, int]:
    """Counts with the ones not given at 0."""
    names = ("listed", "created", "updated", "unchanged", "missing", "removed", "failed")
    return {name: given.get(name, 0) for name in names}
