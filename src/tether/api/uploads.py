"""Receiving a bulk import body: streamed to a file under the data dir (never held in
memory, hashed on the way for the idempotency check), then handed to the imports service."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tether.accounts import Caller
from tether.config import Settings
from tether.errors import Invalid, TooLarge
from tether.imports import submit
from tether.jobs.queue import JobQueue

COPY_BYTES = 1 << 20


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
    dataset_id = await run_in_threadpool(submit.dataset_id, engine, caller.org_id, dataset)
    path, filename, digest = await stage_body(request, settings)
    params["filename"] = params.get("filename") or filename
    return await run_in_threadpool(
        submit.submit,
        engine,
        queue.enqueue,
        caller.org_id,
        caller.user_id,
        dataset_id,
        path,
        digest,
        params,
        idempotency_key,
    )


async def stage_body(request: Request, settings: Settings) -> tuple[Path, str | None, str]:
    """The body (or the multipart body's one file) staged under the uploads folder: its
    path, its file name if it has one, and the sha256 of its bytes. The caller hands the
    file to a job (``imports.submit.submit_upload``), which removes it when done."""
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    path = settings.uploads_dir / f"{uuid.uuid4().hex}{submit.UPLOAD_SUFFIX}"
    try:
        filename, digest = await _save_body(request, path, settings.max_upload_bytes)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, filename, digest


async def _save_body(request: Request, path: Path, limit: int) -> tuple[str | None, str]:
    """Write the body (or the multipart body's one file) to ``path``: its file name, if it
    has one, and the sha256 of its bytes."""
    digest = hashlib.sha256()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise Invalid("the multipart body holds no file")
        if upload.size is not None and upload.size > limit:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
        with path.open("wb") as out:
            while chunk := await upload.read(COPY_BYTES):
                digest.update(chunk)
                await run_in_threadpool(out.write, chunk)
        await form.close()
        return upload.filename, digest.hexdigest()
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
            digest.update(chunk)
            out.write(chunk)
    return None, digest.hexdigest()
