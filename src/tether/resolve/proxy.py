"""Streaming an object of a storage through tether, on the authority of an asset token alone
(``resolve.tokens``): what a storage that does not sign URLs (``use_signed_urls`` off, local
folders, Redis) answers a browser's ``<img>`` or ``<video>`` with.

The token names the organization, the storage and the key; the storage must still exist and
belong to that organization. The answer carries what a browser needs to cache and seek:
Content-Type (from the key's extension), Content-Length, an ETag (the store's own, from
``Storage.stat``) with ``If-None-Match`` -> 304, Cache-Control bounded by the token's life,
and HTTP ``Range`` (one range; several ranges get the whole object, as RFC 9110 allows),
read with the backend's ranged read so seeking in a video never reads the whole object.

Objects are served with ``nosniff`` and a ``sandbox`` content security policy: a bucket's
HTML or SVG opened from tether's origin runs no script there.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import cast

from sqlalchemy import Connection, select

from tether.config import Settings
from tether.db.tables import storages
from tether.errors import Forbidden, NotFound, TetherError
from tether.resolve import tokens, urls
from tether.resolve.cache import LRU
from tether.storages.base import ObjectInfo, Storage
from tether.sync.connections import StorageRecord, get_record, open_backend

CACHED_BACKENDS = 64  # opened backends kept per server (their connection pools with them)
READ_AHEAD = 4  # blocks (of ~1 MiB) a stream reads ahead of what the client has taken
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SAFETY_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": "sandbox"}


class RangeNotSatisfiable(TetherError):
    status = 416
    code = "range_not_satisfiable"


class BackendCache:
    """Backends opened from storage records, by (storage id, updated_at): an edit of the
    storage changes ``updated_at``, so a changed connection is opened afresh. Reusing one
    keeps its connections alive (S3 keep-alive, a Redis pool) and skips the endpoint guard's
    DNS look-up on every request: opening one costs ~7.5 ms for S3 (obstore builds an HTTP
    client), ~1.5 ms for Redis, ~0.15 ms for a folder, measured on the development machine.
    Thread-safe; least recently used out first (``resolve.cache.LRU``)."""

    def __init__(self, size: int = CACHED_BACKENDS) -> None:
        self._opened: LRU[Storage] = LRU(size)

    def get(self, settings: Settings, record: StorageRecord) -> Storage:
        # A backend dropped from the cache closes its pool when no stream holds it.
        return self._opened.get_or_make(
            (record.id, record.updated_at), lambda: open_backend(settings, record)
        )


@dataclass(frozen=True, slots=True)
class Asset:
    """An object a valid token grants, found in its storage."""

    backend: Storage
    info: ObjectInfo
    expires: int  # the token's expiry, Unix seconds


@dataclass(frozen=True, slots=True)
class Served:
    status: int  # 200, 206 or 304
    headers: dict[str, str]
    body: ReadAhead | None  # None for 304 and HEAD


def find(
    conn: Connection,
    settings: Settings,
    cache: BackendCache,
    storage_id: int,
    key: str,
    token: str | None,
) -> Asset:
    """The object ``token`` grants: ``Forbidden`` for a missing or invalid token or a
    storage of another organization, ``NotFound`` for a storage or object not there."""
    if not token:
        raise Forbidden("a token is needed: resolve the row for a URL that carries one")
    org_id, expires = tokens.verify_until(settings, token, urls.object_grant(storage_id, key))
    backend = cache.get(settings, _record(conn, settings, org_id, storage_id))
    return Asset(backend, backend.stat(key), expires)


def _record(conn: Connection, settings: Settings, org_id: int, storage_id: int) -> StorageRecord:
    try:
        return get_record(conn, settings, org_id, storage_id)
    except NotFound:
        owner = conn.execute(
            select(storages.c.org_id).where(storages.c.id == storage_id)
        ).scalar_one_or_none()
        if owner is not None:  # a token signed for one organization, naming another's
            raise Forbidden("the token's organization does not own this storage") from None
        raise


def serve(
    asset: Asset,
    request_headers: Mapping[str, str],
    now: float | None = None,
    *,
    head: bool = False,
) -> Served:
    """The answer to a GET of ``asset`` with these request headers (lower-case names); to a
    HEAD with ``head``: the same status and headers, no body and no read of the store."""
    info = asset.info
    etag = entity_tag(info)
    left = max(0, asset.expires - int(time.time() if now is None else now))
    headers = {"cache-control": f"private, max-age={left}", "accept-ranges": "bytes"}
    if etag is not None:
        headers["etag"] = etag
    if etag is not None and matches(request_headers.get("if-none-match"), etag):
        return Served(304, headers, None)
    headers["content-type"] = content_type(info.key)
    headers.update(SAFETY_HEADERS)
    wanted = request_headers.get("range")
    if_range = request_headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the object changed since the client's first part: all of it again
    span = byte_range(wanted, info.size)
    if span is None:
        start, end, status = 0, info.size, 200
    else:
        (start, end), status = span, 206
        headers["content-range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["content-length"] = str(end - start)
    if head:
        return Served(status, headers, None)
    return Served(status, headers, _body(asset.backend, info.key, start, end))


def entity_tag(info: ObjectInfo) -> str | None:
    """The HTTP ETag of the store's own tag (S3's MD5, a file's size and mtime, ...)."""
    if not info.etag:
        return None
    return '"' + info.etag.replace('"', "").replace("\\", "") + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` names ``etag`` (weakly compared, as RFC 9110 says for it) or ``*``."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def content_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``Range: bytes=...``; None for the whole object
    (no header, several ranges, or one malformed: RFC 9110 lets a server ignore those);
    ``RangeNotSatisfiable`` when the range holds none of the object's bytes."""
    if not header:
        return None
    found = _RANGE.match(header.strip().replace(" ", ""))
    if found is None:
        return None
    first, last = found.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise _unsatisfiable(header, size)
    end = size if not last else min(size, int(last) + 1)
    return start, end


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the range {header!r} holds none of the object's {size} bytes", details={"size": size}
    )


def _body(backend: Storage, key: str, start: int, end: int) -> ReadAhead:
    """The object's bytes ``[start, end)`` in the backend's blocks, never more than the
    Content-Length said. The first block is read now, so a store that fails (the object gone
    since ``stat``) fails before the answer starts rather than in the middle of it."""
    if end <= start:
        return ReadAhead(iter(()))
    blocks = backend.read(key, start=start, end=end)
    first = next(blocks, None)
    if first is None:
        _close(blocks)
        return ReadAhead(iter(()))
    return ReadAhead(_bounded(chain((first,), blocks), end - start), closing=blocks)


def _bounded(blocks: Iterator[bytes], length: int) -> Iterator[bytes]:
    for block in blocks:
        if len(block) >= length:
            yield block[:length]
            return
        length -= len(block)
        yield block


_END = object()


class ReadAhead:
    """The blocks of ``source`` as an async iterator, read by a thread of its own up to
    ``depth`` blocks ahead of the consumer: the store's next block arrives while the last one
    goes to the client, so a stream costs about the slower of the two rather than their sum;
    memory stays bounded by ``depth`` blocks. The thread hands each block to the event loop
    (``call_soon_threadsafe``), so the loop never waits on the store and no block costs a
    thread-pool hop. The thread starts at the first ``__anext__`` (it needs the running
    loop). ``close`` stops it (the client went away); the source is closed in the thread that
    reads it (a generator cannot be closed from another thread mid-read)."""

    def __init__(
        self, source: Iterator[bytes], depth: int = READ_AHEAD, *, closing: object = None
    ) -> None:
        self._source = source
        self._closing = (source,) if closing is None else (source, closing)  # closed at the end
        self._ready: asyncio.Queue[object] | None = None
        self._credits = threading.Semaphore(depth)  # blocks the thread may read ahead
        self._stop = threading.Event()
        self._done = False

    def _start(self) -> asyncio.Queue[object]:
        ready: asyncio.Queue[object] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._ready = ready

        def hand(item: object) -> bool:
            try:
                loop.call_soon_threadsafe(ready.put_nowait, item)
                return True
            except RuntimeError:  # the loop has closed: nobody is reading
                return False

        threading.Thread(
            target=self._run, args=(hand,), name="tether-read-ahead", daemon=True
        ).start()
        return ready

    def _run(self, hand: Callable[[object], bool]) -> None:
        try:
            blocks = iter(self._source)
            while True:
                self._credits.acquire()
                if self._stop.is_set():
                    return
                block = next(blocks, _END)
                if not hand(block) or block is _END:
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            hand(exc)
        finally:
            for each in self._closing:
                _close(each)

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> bytes:
        if self._done or self._stop.is_set():
            raise StopAsyncIteration
        ready = self._ready if self._ready is not None else self._start()
        item = await ready.get()
        self._credits.release()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return cast(bytes, item)

    def close(self) -> None:
        """Stop reading (never blocks: callable on the event loop)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._ready is None:  # never started: no thread reads the source
            for each in self._closing:
                _close(each)
        else:
            self._credits.release()  # wake a thread waiting for a credit, to see the stop


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()  # a local file's handle, an obstore stream
