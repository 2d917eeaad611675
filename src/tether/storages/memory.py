"""An in-process store for tests: a sorted list of keys beside a dict of values.

``MemoryStorage(bucket="name")`` shares one process-wide bucket between every instance
opened with that name (so a test can seed the objects a job later opens by config);
without a name each instance has a private bucket. ``sign`` returns None.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import quote

from tether.storages.base import (
    PAGE_SIZE,
    ObjectInfo,
    ObjectNotFound,
    config_error,
    direct_child,
)


@dataclass
class _Bucket:
    keys: list[str] = field(default_factory=list)  # sorted (code points = UTF-8 byte order)
    objects: dict[str, tuple[bytes, ObjectInfo]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_LOCK = threading.Lock()


class MemoryStorage:
    scheme: ClassVar[str] = "memory"

    def __init__(
        self, bucket: str | None = None, prefix: str = "", *, page_size: int = PAGE_SIZE
    ) -> None:
        if page_size < 1:
            raise config_error("page_size must be at least 1", page_size=page_size)
        self.page_size = page_size
        self.prefix = prefix  # what a sync lists (as for S3); keys stay whole
        self.bucket = bucket or f"private-{id(self):x}"
        if bucket is None:
            self._bucket = _Bucket()
        else:
            with _BUCKETS_LOCK:
                self._bucket = _BUCKETS.setdefault(bucket, _Bucket())

    def list(
        self, prefix: str = "", *, start_after: str | None = None, recursive: bool = True
    ) -> Iterator[Sequence[ObjectInfo]]:
        cursor, inclusive = prefix, True
        if start_after is not None and start_after >= prefix:
            cursor, inclusive = start_after, False
        page: list[ObjectInfo] = []
        while True:
            with self._bucket.lock:  # a batch at a time: writes between batches are seen
                keys = self._bucket.keys
                at = bisect.bisect_left if inclusive else bisect.bisect_right
                index = at(keys, cursor)
                batch = [self._bucket.objects[k][1] for k in keys[index : index + self.page_size]]
            done = len(batch) < self.page_size
            for info in batch:
                if not info.key.startswith(prefix):
                    done = True
                    break
                if recursive or direct_child(prefix, info.key):
                    page.append(info)
            while len(page) >= self.page_size:
                yield page[: self.page_size]
                page = page[self.page_size :]
            if done:
                break
            cursor, inclusive = batch[-1].key, False
        if page:
            yield page

    def stat(self, key: str) -> ObjectInfo:
        return self._get(key)[1]

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        _check_range(start, end)
        data = self._get(key)[0]
        return iter([data[start:end]])

    def write(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        _check_key(key)
        data = bytes(data)
        info = ObjectInfo(
            key=key,
            size=len(data),
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            modified=datetime.now(UTC),
        )
        with self._bucket.lock:
            if key not in self._bucket.objects:
                bisect.insort(self._bucket.keys, key)
            self._bucket.objects[key] = (data, info)

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, content_type: str | None = None
    ) -> None:
        """Joined in memory (this store holds everything in memory anyway)."""
        _check_key(key)
        self.write(key, b"".join(chunks), content_type=content_type)

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._bucket.lock:
            if self._bucket.objects.pop(key, None) is not None:
                keys = self._bucket.keys
                del keys[bisect.bisect_left(keys, key)]

    def sign(self, key: str, expires_in: timedelta) -> str | None:
        return None

    def uri(self, key: str) -> str:
        """``memory://<bucket>/<key, percent-encoded>``."""
        return f"memory://{quote(self.bucket, safe='')}/{quote(key, safe='/')}"

    def _get(self, key: str) -> tuple[bytes, ObjectInfo]:
        _check_key(key)
        with self._bucket.lock:
            found = self._bucket.objects.get(key)
        if found is None:
            raise ObjectNotFound(f"no object {key!r}", details={"key": key})
        return found


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise config_error("an object key must be a non-empty string", key=key)


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise config_error("a read range needs 0 <= start <= end", start=start, end=end)
