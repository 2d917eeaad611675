"""Receiving a bulk import body: streamed to a file under the data dir (never held in
memory), checked enough to fail fast on an unreadable file, then handed to a job."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tether.accounts import Caller
from tether.catalog import datasets
from tether.config import Settings
from tether.errors import Invalid, TooLarge
from tether.imports import formats
from tether.jobs import service as jobs
from tether.jobs.queue import JobQueue


async def receive_upload(
    request: Request,
    engine: Any,
    settings: Settings,
    queue: JobQueue,
    caller: Caller,
    dataset: str,
    idempotency_key: str | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    def lookup() -> tuple[int, dict[str, Any] | None]:
        with engine.begin() as conn:
            found = datasets.get(conn, caller.org_id, dataset)
            first = (
                jobs.find_by_idempotency_key(conn, caller.org_id, idempotency_key)
                if idempotency_key
                else None
            )
            return int(found["id"]), first

    dataset_id, first = await run_in_threadpool(lookup)
    if first is not None:
        return first
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    path = settings.uploads_dir / f"{uuid.uuid4().hex}.upload"
    try:
        filename = await _save_body(request, path, settings.max_upload_bytes)
        params["filename"] = params.get("filename") or filename
        await run_in_threadpool(_precheck, path, params)
        job = await run_in_threadpool(
            _create_job, engine, caller, dataset_id, idempotency_key, params, path
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if job["status"] == jobs.QUEUED and job.get("_new"):
        await run_in_threadpool(queue.enqueue, job["id"])
        with engine.connect() as conn:
            return jobs.get(conn, caller.org_id, job["id"])
    path.unlink(missing_ok=True)
    return job


async def _save_body(request: Request, path: Path, limit: int) -> str | None:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise Invalid("the multipart body holds no file")
        if upload.size is not None and upload.size > limit:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
        with path.open("wb") as out:
            await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)
        await form.close()
        return upload.filename
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
            out.write(chunk)
    return None


def _precheck(path: Path, params: dict[str, Any]) -> None:
    """Refuse at once what no row could come out of: empty, UTF-16 or non-UTF-8 files."""
    if path.stat().st_size == 0:
        raise Invalid("the upload is empty")
    try:
        detected = formats.detect(path, params.get("filename"))
    except formats.FileError as exc:
        raise Invalid(str(exc)) from None
    params["format"] = params.get("format") or detected


def _create_job(
    engine: Any,
    caller: Caller,
    dataset_id: int,
    idempotency_key: str | None,
    params: dict[str, Any],
    path: Path,
) -> dict[str, Any]:
    with engine.begin() as conn:
        job, created = jobs.create(
            conn,
            caller.org_id,
            "import",
            {**params, "_upload": str(path)},
            dataset_id,
            idempotency_key,
            caller.user_id,
        )
    return {**job, "_new": created}
