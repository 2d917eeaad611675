"""What one object of a storage becomes: the rows a sync writes for it.

- ``treat_every_object_as_source_file`` on (``source_file``): one row, ``row_data`` the
  object's URI (``storage.uri``), the media type from the key's extension, and the size and
  MIME type in ``media_attributes``.
- off (``manifest``): the object is read (``storage.read``) as an import file is, by the
  import readers (``imports.sniff``, ``imports.readers``): one task, a JSON list of tasks,
  NDJSON, Labelbox rows, CSV ... one row per item, its index the item's position. An object
  that cannot be read at all is one error for the object; a bad item is an error for that
  item, and the good ones around it are kept.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tether.catalog.media import media_type_of_uri
from tether.catalog.metadata_schema import Schema
from tether.catalog.rows import NormalRow, RowError, normalize
from tether.imports import readers, sniff
from tether.storages.base import ObjectInfo, Storage, StorageError

IN_MEMORY = 1 << 20  # objects up to this size are read into memory


@dataclass(slots=True)
class ObjectRows:
    """The checked rows of one object by item index, and its errors: (item index or None
    for the whole object, code, message)."""

    info: ObjectInfo
    rows: dict[int, NormalRow] = field(default_factory=dict)
    errors: list[tuple[int | None, str, str]] = field(default_factory=list)

    @property
    def unreadable(self) -> bool:
        """Not every item could be told apart: the object failed as a whole, or its
        structure broke somewhere (what follows is unknown), or nothing in it was good.
        Its rows then stay as they are."""
        if self.errors and not self.rows:
            return True
        return any(i is None or code == "malformed_file" for i, code, _m in self.errors)


@lru_cache(maxsize=1024)
def _kind(extension: str) -> tuple[str | None, str | None]:
    """(media type, MIME type) of a file extension."""
    media_type = media_type_of_uri(f"x.{extension}") if extension else None
    mime = mimetypes.types_map.get(f".{extension}") if extension else None
    if mime is None and extension:
        mime = mimetypes.guess_type(f"x.{extension}")[0]
    return media_type, mime


def source_file(storage: Storage, info: ObjectInfo, schema: Schema) -> ObjectRows:
    """The one row of an object that is itself the asset."""
    found = ObjectRows(info)
    name = info.key.rsplit("/", 1)[-1]  # a key, not a URL: "?" and "#" are its own
    media_type, mime = _kind(name.rsplit(".", 1)[-1].lower() if "." in name else "")
    if media_type is None:
        found.errors.append(
            (
                None,
                "unknown_media_type",
                f"cannot tell the media type of {info.key!r} from its extension; filter such "
                "objects out with regex_filter",
            )
        )
        return found
    attributes: dict[str, object] = {"size": info.size}
    if mime is not None:
        attributes["mimeType"] = mime
    item = {"row_data": storage.uri(info.key), "media_attributes": attributes}
    try:
        found.rows[0] = normalize(item, schema, media_type)
    except RowError as exc:
        found.errors.append((None, exc.code, exc.message))
    return found


def manifest(
    storage: Storage,
    info: ObjectInfo,
    schema: Schema,
    field_names: frozenset[str],
    data: bytes | None = None,
) -> ObjectRows:
    """The rows of an object that holds tasks or rows, read by the readers imports use: a
    small object in memory (one JSON object is then read at once), any other through a
    temporary file. ``data``: the object's bytes, when the caller has read them already."""
    found = ObjectRows(info)
    try:
        if data is not None or info.size <= IN_MEMORY:
            if data is None:
                data = b"".join(storage.read(info.key))
            item = readers.one_object(data, info.key)
            if item is not None:
                _add(found, item, schema)
                return found
            with _spilled([data]) as path:
                _read_file(found, path, schema, field_names)
        else:
            with _spilled(storage.read(info.key)) as path:
                _read_file(found, path, schema, field_names)
    except StorageError as exc:
        found.errors.append((None, exc.code, f"could not read the object: {exc}"))
    return found


@contextmanager
def _spilled(blocks: Iterable[bytes]) -> Iterator[Path]:
    """A temporary file of ``blocks``, removed afterwards."""
    handle, name = tempfile.mkstemp(prefix="tether-sync-", suffix=".object")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for block in blocks:
                out.write(block)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _read_file(found: ObjectRows, path: Path, schema: Schema, field_names: frozenset[str]) -> None:
    if path.stat().st_size == 0:
        found.errors.append((None, "empty_object", "the object is empty"))
        return
    try:
        container = sniff.detect(path, found.info.key)
        for item in readers.read(path, container, field_names):
            _add(found, item, schema)
    except sniff.FileError as exc:
        found.errors.append((None, "unreadable_object", str(exc)))


def _add(found: ObjectRows, item: readers.Item, schema: Schema) -> None:
    if item.error is not None or item.value is None:
        error = item.error or RowError("malformed_item", "unreadable item")
        found.errors.append((item.index, error.code, error.message))
        return
    try:
        found.rows[item.index] = normalize(item.value, schema)
    except RowError as exc:
        found.errors.append((item.index, exc.code, exc.message))
