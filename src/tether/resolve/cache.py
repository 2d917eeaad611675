"""The in-process caches resolving keeps: opened backends and the URLs made for objects.

Both are bounded LRU maps behind a lock (the API answers from a thread pool). Keys carry the
storage's ``updated_at``: a storage edited (new credentials, signing turned off, another TTL)
is a new key, so nothing made from its old form is used again; old entries age out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_BACKENDS = 256  # opened backends kept (each may hold a client and its connections)
MAX_URLS = 100_000  # URLs kept (about 0.5 KB each)


class LRU(Generic[V]):
    """A thread-safe map of at most ``limit`` entries; the least recently used goes first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or ``make()``'s, cached (made outside the lock: opening a backend
        can take a network round trip; two threads may both make it, one is kept)."""
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ExpiringURLs:
    """URLs with their expiry (epoch seconds), handed out again until ``margin`` before they
    expire, so a URL handed out always has at least ``margin`` of life left."""

    def __init__(self, limit: int = MAX_URLS) -> None:
        self._lru: LRU[tuple[str, float]] = LRU(limit)

    def get(self, key: Hashable, margin: float) -> tuple[str, float] | None:
        found = self._lru.get(key)
        if found is not None and found[1] - margin > time.time():
            return found
        return None

    def put(self, key: Hashable, url: str, expires: float) -> None:
        self._lru.put(key, (url, expires))

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


def margin(ttl_seconds: int) -> float:
    """How long before its expiry a cached URL is replaced: a fifth of its life, at most a
    minute (a 15-minute URL is handed out for 14 minutes, each at least a minute left)."""
    return min(60.0, ttl_seconds / 5)
