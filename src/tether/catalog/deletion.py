"""Deleting a dataset: a ``delete_dataset`` job.

The request marks the dataset deleted (it leaves every listing and lookup at once, and its
name is free again) and queues the job, which deletes its rows a chunk per transaction, so
no transaction holds the database for long at any size, then the dataset itself. The job's
``counts`` has ``deleted``: rows deleted so far (``progress.total``: the rows it held).
A dataset deletion cannot be canceled (it would leave a dataset half deleted).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from tether.accounts.roles import require_admin
from tether.catalog import datasets
from tether.db.tables import data_row_metadata, data_rows
from tether.db.tables import datasets as datasets_table
from tether.jobs import service as jobs
from tether.jobs.worker import JobRun, Runner

KIND = "delete_dataset"


def start(
    conn: Connection, org_id: int, dataset: int | str, user_id: int | None = None, *, role: str
) -> dict[str, Any]:
    """Mark the dataset deleted (admins only) and create, in the caller's transaction, the
    queued job that deletes its rows; the caller queues it once that commits. The job, with
    ``deleted_rows`` (the rows the dataset held, which the job deletes)."""
    require_admin(role, "delete datasets")
    dataset_id, rows = datasets.mark_deleted(conn, org_id, dataset)
    job, _new = jobs.create(
        conn,
        org_id,
        KIND,
        {"_cancelable": False},
        dataset_id,
        created_by=user_id,
        total=rows,
        counts={"deleted": 0},
    )
    return {**job, "deleted_rows": rows}


def submit(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    dataset: int | str,
    user_id: int | None = None,
    *,
    role: str,
) -> dict[str, Any]:
    """``start`` in a transaction of its own, then queue the job."""
    with engine.begin() as conn:
        job = start(conn, org_id, dataset, user_id, role=role)
    enqueue(job["id"])
    with engine.connect() as conn:
        return {**jobs.get(conn, org_id, job["id"]), "deleted_rows": job["deleted_rows"]}


def delete_runner(chunk_rows: int = 10_000) -> Runner:
    """The runner of ``delete_dataset`` jobs, for ``runtime.py`` to register."""
    return partial(run, chunk_rows=chunk_rows)


def run(job: JobRun, chunk_rows: int = 10_000) -> None:
    dataset_id = job.row.dataset_id
    engine = job.engine
    while True:
        job.check_stop()
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(data_rows.c.id)
                    .where(data_rows.c.dataset_id == dataset_id)
                    .order_by(data_rows.c.id)
                    .limit(chunk_rows)
                ).scalars()
            )
            if not ids:
                break
            low, high = ids[0], ids[-1]
            conn.execute(
                delete(data_row_metadata).where(
                    data_row_metadata.c.dataset_id == dataset_id,
                    data_row_metadata.c.data_row_id.between(low, high),
                )
            )
            gone = conn.execute(
                delete(data_rows).where(
                    data_rows.c.dataset_id == dataset_id, data_rows.c.id.between(low, high)
                )
            ).rowcount
            job.record(conn, job.done + int(gone), {"deleted": int(gone)})
    # Rows a racing import chunk committed after the last look go by cascade.
    with engine.begin() as conn:
        conn.execute(delete(datasets_table).where(datasets_table.c.id == dataset_id))
