"""Uploading files into storage: where they go, and one object at a time (streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from starlette.requests import ClientDisconnect

from tether.api.deps import CallerAloneDep, CallerDep, ConnDep, EngineDep, SettingsDep
from tether.api.errors import documented
from tether.api.models import MAX_INT, StoredObject, UploadDestination, UploadDestinationIn
from tether.errors import Invalid
from tether.storages.base import ObjectNotFound
from tether.uploads import destination, objects

router = APIRouter(tags=["uploads"], responses=documented(401, 422))
StorageId = Annotated[int, Path(ge=1, le=MAX_INT)]
KeyQuery = Annotated[
    str, Query(min_length=1, max_length=1024, description="the object's key in the storage")
]
BLOCK = 1 << 20  # bytes handed to the storage at a time
NOT_SOURCE = "No source storage of this id in the caller's organization."


@router.post(
    "/uploads/destination", response_model=UploadDestination, responses=documented(404, 413)
)
def upload_destination(
    body: UploadDestinationIn, caller: CallerDep, conn: ConnDep, settings: SettingsDep
) -> dict[str, Any]:
    """Where files uploaded for a dataset go: the storage named, else the dataset's one source
    storage that takes files, else tether's own folder of uploads for the organization (made
    on first use). The key prefix says where in it."""
    chosen = destination.choose(
        conn, settings, caller.org_id, caller.user_id, body.dataset, body.storage_id
    )
    return chosen.public(settings)


@router.get(
    "/storages/{storage_id}/objects",
    response_model=StoredObject,
    responses=documented(404, e404=NOT_SOURCE + " Or no object of this key."),
)
def get_object(
    storage_id: StorageId,
    key: KeyQuery,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    sha256: Annotated[
        bool,
        Query(description="local storages: also the SHA-256 of the stored bytes (read now)"),
    ] = False,
) -> dict[str, Any]:
    """The object stored under ``key`` (its size and etag -- or, asked, its SHA-256 -- tell
    an upload whether a file is already there)."""
    record = destination.upload_target(conn, settings, caller.org_id, storage_id)
    found = objects.find(settings, record, key, with_sha256=sha256)
    if found is None:
        raise ObjectNotFound(f"no object {key!r} in storage {storage_id}", {"key": key})
    return found.public()


@router.put(
    "/storages/{storage_id}/objects",
    response_model=StoredObject,
    status_code=201,
    responses={
        200: {"model": StoredObject, "description": "An object of this size was already there."},
        **documented(404, 409, 413, e404=NOT_SOURCE, e409="Another object has this key."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_object(
    storage_id: StorageId,
    key: KeyQuery,
    request: Request,
    response: Response,
    caller: CallerAloneDep,
    engine: EngineDep,
    settings: SettingsDep,
    overwrite: Annotated[
        bool, Query(description="replace an object of another size stored under the key")
    ] = False,
) -> dict[str, Any]:
    """Store the body (the file's bytes, with its ``Content-Length``) as ``key``.

    Streamed into the storage as it arrives, never held whole; checked against
    ``TETHER_MAX_ASSET_BYTES`` before a byte is read (413). All or nothing: a body that ends
    early leaves no object. An object of the same size already under the key is kept (200,
    ``created`` false): a re-run skips what is there."""
    size = _content_length(request)
    content_type = request.headers.get("content-type")

    def work() -> dict[str, Any]:
        with engine.connect() as conn:  # no transaction held while the bytes stream
            record = destination.upload_target(conn, settings, caller.org_id, storage_id)
        stored = objects.put(
            settings, record, key, _body(request), size, content_type, overwrite=overwrite
        )
        return stored.public()

    answer = await anyio.to_thread.run_sync(work)
    if not answer["created"]:
        response.status_code = 200
    return answer


def _content_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not (declared.isascii() and declared.isdigit()):
        raise Invalid("Content-Length must be a number of bytes")
    return int(declared)


def _body(request: Request) -> Iterator[bytes]:
    """The request body for a worker thread, in blocks of about ``BLOCK`` bytes: each block
    is gathered on the event loop when the storage asks for it (one hop between thread and
    loop a block, not one a network read), so no more than a block waits in memory."""
    stream = request.stream().__aiter__()
    done = False

    async def next_block() -> bytes:
        nonlocal done
        parts: list[bytes] = []
        size = 0
        while size < BLOCK:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                done = True
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    while not done:
        try:
            block = anyio.from_thread.run(next_block)
        except ClientDisconnect:
            raise Invalid("the client went away before the whole body arrived") from None
        if block:
            yield block
