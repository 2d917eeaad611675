"""One object into a destination storage: streamed, checked against the size limit before a
byte is read, all or nothing, and never twice.

``put`` writes the chunks it is given as they come (``Storage.write_stream``: memory bounded
by a few chunks, whatever the file's size) and counts them against the size announced: a
body that ends early or runs past it leaves no object. An object already there under the
key with the announced size is "already there" (``created`` false, nothing written: what
makes a re-run skip it); one of another size is a Conflict unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tether.config import Settings
from tether.errors import Conflict, Invalid, TooLarge
from tether.storages.base import ObjectInfo, ObjectNotFound, Storage
from tether.storages.local import LocalStorage
from tether.sync.connections import StorageRecord, open_backend
from tether.uploads.destination import check_key


@dataclass(frozen=True, slots=True)
class Stored:
    storage_id: int
    key: str
    uri: str
    size: int
    etag: str | None
    created: bool | None = None  # put: whether this request wrote it
    sha256: str | None = None  # put: of the bytes this request wrote

    def public(self) -> dict[str, Any]:
        return {
            "storage_id": self.storage_id,
            "key": self.key,
            "uri": self.uri,
            "size": self.size,
            "etag": self.etag,
            "created": self.created,
            "sha256": self.sha256,
        }


def check_size(settings: Settings, size: int | None) -> int:
    """The announced size, if the limit allows it (TooLarge: a per-file error)."""
    if size is None:
        raise Invalid("an upload must announce its size (Content-Length)", code="length_required")
    if size < 0:
        raise Invalid("the size must not be negative")
    if size > settings.max_asset_bytes:
        raise TooLarge(
            f"the file is {size} bytes, more than the limit of {settings.max_asset_bytes} "
            "bytes a file (TETHER_MAX_ASSET_BYTES)",
            {"size": size, "limit": settings.max_asset_bytes},
        )
    return size


def find(
    settings: Settings, record: StorageRecord, key: str, with_sha256: bool = False
) -> Stored | None:
    """The object under ``key``, or None when there is none. ``with_sha256``: for a file of a
    local (or managed) storage, the SHA-256 of its bytes too -- cheap there (a local read),
    and what lets a re-run tell a file already uploaded from another of the same size (an
    object store's ETag is already a hash, or the client compares what it can)."""
    check_key(record, key)
    backend = open_backend(settings, record)
    info = _stat(backend, key)
    if info is None:
        return None
    digest = None
    if with_sha256 and isinstance(backend, LocalStorage):
        hasher = hashlib.sha256()
        for chunk in backend.read(key):
            hasher.update(chunk)
        digest = hasher.hexdigest()
    return _stored(record, backend, info, sha256=digest)


def put(
    settings: Settings,
    record: StorageRecord,
    key: str,
    chunks: Iterable[bytes],
    size: int | None,
    content_type: str | None = None,
    overwrite: bool = False,
) -> Stored:
    """Store ``chunks`` (``size`` bytes in all) as ``key``; see the module docstring."""
    check_key(record, key)
    size = check_size(settings, size)
    backend = open_backend(settings, record)
    there = _stat(backend, key)
    if there is not None and not overwrite:
        if there.size != size:
            raise Conflict(
                f"an object of {there.size} bytes is already stored as {key!r} (this file has "
                f"{size}); choose another key, or overwrite it",
                {"key": key, "size": there.size},
                code="object_exists",
            )
        for _chunk in chunks:  # read and dropped: the connection stays usable
            pass
        return _stored(record, backend, there, created=False)
    counted = _Counted(chunks, size)
    backend.write_stream(key, counted, content_type=content_type or None)
    info = backend.stat(key)
    return _stored(record, backend, info, created=True, sha256=counted.digest.hexdigest())


class _Counted:
    """The chunks, hashed, and refused once they pass ``size`` or end short of it."""

    def __init__(self, chunks: Iterable[bytes], size: int) -> None:
        self._chunks = chunks
        self.size = size
        self.seen = 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.seen += len(chunk)
            if self.seen > self.size:
                raise Invalid(
                    f"the body is longer than the {self.size} bytes announced",
                    code="length_mismatch",
                )
            self.digest.update(chunk)
            yield chunk
        if self.seen != self.size:
            raise Invalid(
                f"the body ended after {self.seen} of the {self.size} bytes announced; "
                "nothing was stored",
                code="length_mismatch",
            )


def _stat(backend: Storage, key: str) -> ObjectInfo | None:
    try:
        return backend.stat(key)
    except ObjectNotFound as exc:
        if not (isinstance(exc.details, dict) and "key" in exc.details):
            raise  # the bucket, container or folder itself is missing
        return None


def _stored(
    record: StorageRecord,
    backend: Storage,
    info: ObjectInfo,
    created: bool | None = None,
    sha256: str | None = None,
) -> Stored:
    return Stored(record.id, info.key, backend.uri(info.key), info.size, info.etag, created, sha256)
