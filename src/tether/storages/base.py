"""The storage protocol: what tether needs of a bucket, a container, a folder or a Redis db.

Every backend is one module with one class that satisfies ``Storage`` and is named in
``registry.BACKENDS``. A backend turns its client's errors into this module's ``StorageError``
tree at its boundary (``raise ... from exc``) so nothing of the client leaks out:

    StorageError
    ├── ObjectNotFound   the key (or the bucket/container) is not there
    ├── AccessDenied     the credentials are refused, or lack a permission
    ├── Unreachable      the endpoint cannot be reached (DNS, connection, TLS, timeout)
    ├── InvalidConfig    the configuration cannot work (a bad name, no credentials, ...)
    └── UploadsNotSupported  files cannot be stored there (Redis holds task JSON)

``Storage.write_stream`` stores an object from an iterable of chunks, all or nothing (a local
file is written beside its place and renamed into it; S3 and Azure take a multipart upload
that an error aborts); Redis refuses it (``UploadsNotSupported``): its values are task JSON.

``Storage.list`` yields pages of ``ObjectInfo`` in key order (the order S3, GCS, Azure and a
sorted directory walk share: by the key's UTF-8 bytes), so a sync can compare a listing with
its link table as two sorted streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from tether.errors import TetherError

PAGE_SIZE = 1000  # objects a listing page holds at most


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str  # the full key in the store (the prefix included)
    size: int
    etag: str | None  # changes when the content does (for Redis: a hash of the value)
    modified: datetime | None  # timezone-aware UTC


_new = object.__new__
_slot = ObjectInfo.__dict__  # the slots' member descriptors
_set_key, _set_size = _slot["key"].__set__, _slot["size"].__set__
_set_etag, _set_modified = _slot["etag"].__set__, _slot["modified"].__set__


def make_info(key: str, size: int, etag: str | None, modified: datetime | None) -> ObjectInfo:
    """``ObjectInfo(key, size, etag, modified)``, built about twice as fast as the frozen
    dataclass's ``__init__`` does (which matters when a listing builds one per object)."""
    info: ObjectInfo = _new(ObjectInfo)
    _set_key(info, key)
    _set_size(info, size)
    _set_etag(info, etag)
    _set_modified(info, modified)
    return info


class StorageError(TetherError):
    """A storage could not do what was asked; ``code`` says which kind of failure."""

    status = 422
    code = "storage_error"


class ObjectNotFound(StorageError):
    status = 404
    code = "object_not_found"


class AccessDenied(StorageError):
    code = "access_denied"


class Unreachable(StorageError):
    code = "storage_unreachable"


class InvalidConfig(StorageError):
    code = "invalid_storage_config"


class UploadsNotSupported(StorageError):
    """The backend holds no files (Redis: task JSON values): nothing is uploaded to it."""

    code = "uploads_not_supported"


@runtime_checkable
class Storage(Protocol):
    """One connection to one bucket/container/folder/db, scoped to nothing narrower: the
    prefix of a storage connection is given to ``list`` by the caller."""

    scheme: ClassVar[str]  # what URIs of this backend start with: "s3", "gs", "azure-blob", ...

    def list(
        self, prefix: str = "", *, start_after: str | None = None, recursive: bool = True
    ) -> Iterator[Sequence[ObjectInfo]]:
        """Pages of the objects whose key starts with ``prefix`` (a plain string prefix, as S3
        defines it), in key order, after ``start_after`` when given. ``recursive=False``: only
        objects directly under the prefix (no further ``/`` after it)."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes from ``start`` up to ``end`` (exclusive; None: to the end), as
        ``data[start:end]`` would give them: a range past the end yields what there is (no
        bytes when ``start`` is at or past the end), not an error."""
        ...

    def write(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, content_type: str | None = None
    ) -> None:
        """``write`` for an object too large to hold in memory: its bytes come from
        ``chunks`` and are stored as they come (memory bounded by a few chunks, whatever the
        object's size). All or nothing: an exception from ``chunks`` (or the store) leaves
        no object, or the one that was there, under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a key that is not there is not an error."""
        ...

    def sign(self, key: str, expires_in: timedelta) -> str | None:
        """A URL a browser can GET the object from until it expires; None when this backend
        cannot sign (tether then streams the object itself)."""
        ...

    def uri(self, key: str) -> str:
        """What data rows store for the object: ``s3://bucket/key``, ``gs://...``, ..."""
        ...


@runtime_checkable
class ReadsMany(Protocol):
    """A backend that reads several whole objects in one round trip (Redis: ``MGET``).
    Optional: a sync reading many small objects uses it where a backend has it, and reads
    them one by one, several at once, where not."""

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Each key's whole value, in order; None for a key that holds none (gone since it
        was listed, or not an object)."""
        ...


def direct_child(prefix: str, key: str) -> bool:
    """Whether ``key`` lies directly under ``prefix`` (no ``/`` in the rest): what a
    non-recursive listing keeps."""
    return "/" not in key[len(prefix) :].strip("/") if key.startswith(prefix) else False


def config_error(message: str, **details: Any) -> InvalidConfig:
    return InvalidConfig(message, details=details or None)
