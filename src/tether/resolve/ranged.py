"""A seekable, read-only file over ranged reads: what the header parsers of ``probe`` read.

Header parsers (imagesize, PyAV, pypdf) want a file they can ``seek`` and ``read``. An asset
in a bucket is not one, and fetching it whole to make one defeats the point (a video can be
gigabytes). ``RangedFile`` fetches aligned blocks on demand (``fetch(start, end)``, one ranged
read each; a few at once when the parser reads on sequentially) and keeps the last few in a
small cache, so a parser that reads the header, jumps to the end (an MP4 whose ``moov`` box
comes last) and back costs a few requests. It counts the bytes it fetched, and refuses to
fetch more than ``budget`` bytes in all: a parser that would walk a whole large asset fails
instead (``BudgetExceeded``).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

Fetch = Callable[[int, int], bytes]  # (start, end exclusive) -> those bytes (fewer at the end)
BLOCK = 64 * 1024
CACHED_BLOCKS = 16
READ_AHEAD = 4  # blocks fetched at once by a sequential reader
BUDGET = 16 * 1024 * 1024


class BudgetExceeded(OSError):
    """Reading on would fetch more of the asset than a probe may."""


class RangedFile(io.RawIOBase):
    def __init__(
        self,
        fetch: Fetch,
        size: int,
        *,
        block: int = BLOCK,
        cached_blocks: int = CACHED_BLOCKS,
        budget: int = BUDGET,
    ) -> None:
        super().__init__()
        self._fetch, self.size, self._block = fetch, size, block
        self._cached, self._budget = cached_blocks, budget
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.fetched = 0  # bytes fetched so far
        self.requests = 0  # ranged reads made so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self._pos))
        filled = 0
        while filled < wanted:
            index, skip = divmod(self._pos, self._block)
            data = self._get(index)[skip:]
            if not data:
                break  # the asset is shorter than its size said
            take = min(len(data), wanted - filled)
            view[filled : filled + take] = data[:take]
            filled += take
            self._pos += take
        return filled

    def prime(self, start: int, data: bytes) -> None:
        """Keep the block at ``start`` that the caller fetched already (counted as fetched)."""
        self.fetched += len(data)
        self.requests += 1
        self._cache[start // self._block] = data

    def _get(self, index: int) -> bytes:
        found = self._cache.get(index)
        if found is not None:
            self._cache.move_to_end(index)
            return found
        # Reading on from the block before: fetch a few blocks in one request (a parser
        # scanning a header sequentially then costs one round trip per few blocks).
        count = READ_AHEAD if index - 1 in self._cache else 1
        start = index * self._block
        end = min(start + count * self._block, self.size)
        if self.fetched + (end - start) > self._budget:
            end = min(start + self._block, self.size)
            if self.fetched + (end - start) > self._budget:
                raise BudgetExceeded(
                    f"reading its headers would take more than {self._budget} bytes of the asset"
                )
        data = self._fetch(start, end)
        self.fetched += len(data)
        self.requests += 1
        for offset in range(0, max(len(data), 1), self._block):
            self._cache[index + offset // self._block] = data[offset : offset + self._block]
        while len(self._cache) > self._cached:
            self._cache.popitem(last=False)
        return self._cache.get(index, b"")
