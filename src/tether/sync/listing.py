"""A storage's listing, read by a thread of its own a few pages ahead of the sync's writer.

The thread puts pages, filtered, into a bounded queue, so listing (network or disk) and
writing (the database) overlap and memory holds a few pages, whatever the store's size.
Filters: the key prefix (the backend's), ``recursive`` (the backend's), ``regex_filter``
matched with ``re.match`` against the whole key as the backend lists it (the prefix
included, as Label Studio matches S3, GCS, Azure and Redis keys), folder markers (keys
ending in ``/``) left out, and an upper bound ``before`` for a part of a split sync.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tether.storages.base import ObjectInfo, Storage

_END = object()
_DEPTH = 8  # pages the thread may be ahead


@dataclass(frozen=True)
class Scope:
    """Which objects a sync (or a part of one) takes."""

    prefix: str = ""
    recursive: bool = True
    regex: re.Pattern[str] | None = None
    after: str | None = None  # keys after this one (a resumed sync's last committed key)
    before: str | None = None  # keys before this one (a part of a split sync)

    def keep(self, page: Sequence[ObjectInfo]) -> tuple[list[ObjectInfo], bool]:
        """The page's objects in scope, and whether the listing is past the scope's end."""
        match = self.regex.match if self.regex is not None else None
        kept = [
            info
            for info in page
            if not info.key.endswith("/") and (match is None or match(info.key) is not None)
        ]
        before = self.before
        if before is None or not page or page[-1].key < before:
            return kept, False
        return [info for info in kept if info.key < before], True


class Listing:
    """``objects()`` yields what the scope takes in key order; ``close()`` stops the
    thread (call it however the sync ends)."""

    def __init__(self, storage: Storage, scope: Scope) -> None:
        self.storage, self.scope = storage, scope
        self._pages: queue.Queue[object] = queue.Queue(maxsize=_DEPTH)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync-listing", daemon=True)
        self.listed = 0

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        scope = self.scope
        pages = self.storage.list(scope.prefix, start_after=scope.after, recursive=scope.recursive)
        try:
            for page in pages:
                kept, ended = scope.keep(page)
                if (kept and not self._put(kept)) or ended:
                    break
            self._put(_END)
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def objects(self) -> Iterator[ObjectInfo]:
        self._thread.start()
        while True:
            item = self._pages.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            page: list[ObjectInfo] = item  # type: ignore[assignment]
            self.listed += len(page)
            yield from page

    def close(self) -> None:
        self._closed.set()
        while True:  # unblock a thread waiting to put
            try:
                self._pages.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(timeout=30)
