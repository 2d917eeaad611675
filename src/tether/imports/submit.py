"""Submitting an import: a staged upload becomes a queued ``import`` job (or, for a repeated
``Idempotency-Key``, the first request's job). Also the chore that removes staged uploads no
job owns (a server killed mid-upload leaves its partial file behind)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from tether.catalog import datasets
from tether.db.tables import jobs as jobs_table
from tether.errors import Invalid
from tether.imports import formats
from tether.jobs import service as jobs

log = logging.getLogger(__name__)
KIND = "import"
UPLOAD_SUFFIX = ".upload"


def dataset_id(engine: Engine, org_id: int, dataset: int | str) -> int:
    """The id of the dataset an import goes to (``NotFound`` before any byte is read)."""
    with engine.connect() as conn:
        return int(datasets.get(conn, org_id, dataset)["id"])


def submit(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    user_id: int | None,
    target_dataset: int,
    upload: Path,
    body_sha256: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Queue an import of the staged ``upload`` into ``target_dataset``, and hand the file to
    the job. The same ``Idempotency-Key`` with the same body, dataset and options returns the
    first job (and drops this upload); with anything else it is ``IdempotencyKeyReused``.
    An empty body with a used key asks for the key's job (the SDK's retry of a one-shot
    iterator, which it cannot send again): no import has an empty body."""
    return submit_upload(
        engine,
        enqueue,
        org_id,
        user_id,
        upload,
        body_sha256,
        params,
        idempotency_key,
        kind=KIND,
        target=target_dataset,
        dataset_id=target_dataset,
        counts={"created": 0, "updated": 0},
        precheck=_precheck,
    )


def submit_upload(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    user_id: int | None,
    upload: Path,
    body_sha256: str,
    params: dict[str, Any],
    idempotency_key: str | None,
    *,
    kind: str,
    target: Any,
    counts: dict[str, int],
    precheck: Callable[[Path, dict[str, Any]], str | None],
    dataset_id: int | None = None,
    project_id: int | None = None,
) -> dict[str, Any]:
    """``submit`` for any kind of job that reads a staged upload (``params["_upload"]``):
    ``target`` is what the job writes to (for the idempotency check), ``precheck`` refuses a
    file no item could come out of and gives the container (``format``) when not given."""
    asked = jobs.fingerprint(kind, body_sha256, target, params)
    try:
        if idempotency_key and upload.stat().st_size == 0:
            with engine.connect() as conn:
                first = jobs.find_by_idempotency_key(conn, org_id, idempotency_key)
            if first is not None:
                upload.unlink(missing_ok=True)
                return first
        params = {**params, "format": params.get("format") or precheck(upload, params)}
        with engine.begin() as conn:
            job, created = jobs.create(
                conn,
                org_id,
                kind,
                {**params, "_upload": str(upload)},
                dataset_id,
                idempotency_key,
                user_id,
                request_fingerprint=asked,
                project_id=project_id,
                counts=counts,
            )
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    if not created:
        upload.unlink(missing_ok=True)
        return job
    enqueue(job["id"])
    with engine.connect() as conn:
        return jobs.get(conn, org_id, job["id"])


def _precheck(path: Path, params: dict[str, Any]) -> str | None:
    """Refuse at once what no row could come out of (empty, UTF-16 or non-UTF-8 files); the
    container the job will read."""
    if path.stat().st_size == 0:
        raise Invalid("the upload is empty")
    try:
        return formats.detect(path, params.get("filename"))
    except formats.FileError as exc:
        raise Invalid(str(exc)) from None


def remove_stale_uploads(engine: Engine, uploads_dir: Path, max_age_seconds: float) -> list[Path]:
    """Remove staged uploads older than ``max_age_seconds`` that no queued or running job
    (of any kind: imports, predictions) owns; returns what went. (An upload being received
    is younger: it is written to.)"""
    if not uploads_dir.is_dir():
        return []
    cutoff = time.time() - max_age_seconds
    old = [p for p in uploads_dir.iterdir() if p.name.endswith(UPLOAD_SUFFIX) and _older(p, cutoff)]
    if not old:
        return []
    with engine.connect() as conn:
        owned = {
            Path(str(orjson.loads(params or "{}").get("_upload"))).name
            for params in conn.execute(
                select(jobs_table.c.params).where(
                    jobs_table.c.status.in_((jobs.QUEUED, jobs.RUNNING))
                )
            ).scalars()
        }
    gone = [p for p in old if p.name not in owned]
    for path in gone:
        log.info("removing the staged upload %s: no job owns it", path.name)
        path.unlink(missing_ok=True)
    return gone


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False
