"""Uploading local files: one file into a storage (``Client.upload_file``), and the files of
``Dataset.create_data_rows`` / ``tether upload`` with the rows that name them.

A file goes up in three steps: where to (``POST /uploads/destination``: a storage and a key
prefix), whether it is there already (``GET /storages/{id}/objects``: same size, and the same
hash where that is cheap -- a plain-MD5 ETag, or the SHA-256 a local storage computes), and
if not, its bytes (``PUT``, streamed from the file with its ``Content-Length``; a retry
sends the file again, which the server stores all or nothing).

Rows of uploaded files: ``row_data`` the object's URI, ``global_key`` the same URI (unique in
the organization, and the same on every run, so a re-run never makes a second row),
``external_id`` the name the file was given (its path as passed, or under the folder
uploaded), ``media_type`` from the file's extension.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from tether import schemas
from tether.sdk._errors import ConflictError, NotFoundError, TetherAPIError, TooLargeError

if TYPE_CHECKING:
    from tether.sdk._client import Client

READ_CHUNK = 1 << 20
_MD5 = re.compile(r"^[0-9a-f]{32}$")
# Media types by the file's MIME family (the server's own inference cannot see the extension
# inside a local-files URI's query).
_BY_MIME = {"image": "IMAGE", "video": "VIDEO", "audio": "AUDIO", "text": "TEXT"}
_BY_MIME_TYPE = {
    "application/pdf": "PDF",
    "text/html": "HTML",
    "application/json": "JSON",
    "application/dicom": "DICOM",
}


class FileChangedError(OSError):
    """The file changed size (or vanished) while it was being sent."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One file to upload: where it is, and its name under the destination's key prefix."""

    path: Path
    name: str  # a relative POSIX path: "a.jpg", "sub/b.png"


@dataclass(frozen=True, slots=True)
class FileUpload:
    """What became of one file of ``Dataset.upload_files``: stored (``created`` true: sent
    now; false: it was there already) or not (``code`` and ``message`` say why)."""

    index: int
    path: Path
    name: str
    key: str | None = None
    uri: str | None = None
    size: int | None = None
    created: bool | None = None
    code: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    def row(self, external_id: str | None = None) -> dict[str, Any]:
        """The data row of the stored file (as ``create_data_rows`` makes it): ``row_data``
        and ``global_key`` its URI, ``external_id`` its name (or the one given),
        ``media_type`` from its extension."""
        if self.uri is None:
            raise ValueError(f"{self.path} was not uploaded: {self.message}")
        row: dict[str, Any] = {
            "row_data": self.uri,
            "global_key": self.uri,
            "external_id": self.name if external_id is None else external_id,
        }
        kind = media_type_of(self.name)
        if kind:
            row["media_type"] = kind
        return row


def destination(
    client: Client, dataset_id: int | None, storage: int | None
) -> schemas.UploadDestination:
    body: dict[str, Any] = {"dataset": dataset_id, "storage_id": storage}
    return client._model(
        schemas.UploadDestination, "POST", "/uploads/destination", json=body, safe=True
    )


def upload(
    client: Client,
    dest: schemas.UploadDestination,
    file: LocalFile,
    overwrite: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> schemas.StoredObject:
    """Put one file into the destination (or find it there already: ``created`` false).
    Raises OSError for a file it cannot read, ``TooLargeError`` above the server's limit,
    ``ConflictError`` (code ``object_exists``) for another object under its key."""
    size = _regular_size(file.path)
    if size > dest.max_asset_bytes:
        raise TooLargeError(
            413,
            "too_large",
            f"{file.path} is {size} bytes, more than the server's limit of "
            f"{dest.max_asset_bytes} bytes a file",
            {"size": size, "limit": dest.max_asset_bytes},
        )
    key = dest.key_prefix + file.name
    path = f"/storages/{dest.storage_id}/objects"
    there = _find(client, path, key, local=dest.type == "local")
    if there is not None and not overwrite:
        if there.size == size and _same_content(file.path, there):
            if on_bytes:
                on_bytes(size)
            return there.model_copy(update={"created": False})
        raise ConflictError(
            409,
            "object_exists",
            f"another file ({there.size} bytes) is already stored as {key!r}; rename this "
            "one, or overwrite it",
            {"key": key, "size": there.size},
        )
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    response = client.request(
        "PUT",
        path,
        body_factory=lambda: _chunks(file.path, size, on_bytes),
        params={"key": key, "overwrite": overwrite},
        headers={"Content-Length": str(size), "Content-Type": kind},
    )
    return schemas.StoredObject.model_validate_json(response.content)


def media_type_of(name: str) -> str | None:
    kind = mimetypes.guess_type(name)[0]
    if kind is None:
        return None
    return _BY_MIME_TYPE.get(kind) or _BY_MIME.get(kind.split("/", 1)[0])


def safe_name(name: str) -> str:
    """A file's name as a key: POSIX separators, no empty, ``.`` or ``..`` part."""
    parts = [p for p in PurePosixPath(name.replace(os.sep, "/")).parts if p not in ("", ".")]
    if not parts or ".." in parts or parts[0] == "/":
        raise ValueError(f"{name!r} cannot name an object (no '..', not absolute)")
    return "/".join(parts)


def error_item(index: int, code: str, message: str, **fields: Any) -> schemas.JobError:
    return schemas.JobError(index=index, code=code, message=message, **fields)


def describe(exc: BaseException) -> tuple[str, str]:
    """(code, message) of a per-file failure."""
    if isinstance(exc, TetherAPIError):
        return exc.code, exc.message
    if isinstance(exc, FileNotFoundError):
        return "file_not_found", f"no file {exc.filename or exc}"
    if isinstance(exc, FileChangedError):
        return "file_changed", str(exc)
    if isinstance(exc, IsADirectoryError):
        return "not_a_file", f"{exc.filename or exc} is a folder"
    if isinstance(exc, OSError):
        return "unreadable", f"cannot read {exc.filename or ''}: {exc.strerror or exc}".strip()
    return "invalid", str(exc)


# --- helpers --------------------------------------------------------------------------------


def _regular_size(path: Path) -> int:
    info = path.stat()  # FileNotFoundError, PermissionError, ...
    if not path.is_file():
        raise IsADirectoryError(21, "not a regular file", str(path))
    with path.open("rb"):  # readable at all? (PermissionError now, not mid-upload)
        pass
    return info.st_size


def _find(client: Client, path: str, key: str, local: bool) -> schemas.StoredObject | None:
    params: dict[str, Any] = {"key": key}
    if local:
        params["sha256"] = True
    try:
        return client._model(schemas.StoredObject, "GET", path, params=params)
    except NotFoundError as exc:
        if exc.code in ("object_not_found",):
            return None
        raise


def _same_content(path: Path, there: schemas.StoredObject) -> bool:
    """Whether the stored object holds this file, as far as can be told cheaply: the
    SHA-256 a local storage computed, else a plain-MD5 ETag (S3 single-part uploads), else
    its size alone (already equal)."""
    if there.sha256:
        return _digest(path, hashlib.sha256()) == there.sha256
    etag = (there.etag or "").strip('"').lower()
    if _MD5.match(etag):
        return _digest(path, hashlib.md5(usedforsecurity=False)) == etag
    return True


def _digest(path: Path, hasher: Any) -> str:
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            hasher.update(chunk)
    return str(hasher.hexdigest())


def _chunks(path: Path, size: int, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    """The file's bytes, exactly ``size`` of them: a file that shrank, grew or vanished
    meanwhile raises ``FileChangedError`` (the request breaks off; nothing is stored)."""
    sent = 0
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise FileChangedError(f"{path} vanished before it was sent") from exc
    with handle:
        while chunk := handle.read(min(READ_CHUNK, size - sent + 1)):
            sent += len(chunk)
            if sent > size:
                raise FileChangedError(f"{path} grew while it was sent ({size} bytes at first)")
            if on_bytes:
                on_bytes(len(chunk))
            yield chunk
    if sent != size:
        raise FileChangedError(f"{path} shrank while it was sent ({sent} of {size} bytes)")
