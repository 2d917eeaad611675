"""Python's cyclic garbage collector, paused while an import handles a chunk.

A chunk makes hundreds of thousands of objects (parsed items, rows, tuples), none in a
reference cycle, and every pass of the collector walks the ones still alive: with it on,
reading and checking rows takes about three times as long, and writing them a quarter longer.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Whoever turned the collector off turns it on again, so overlapping chunks (two imports
    at once) leave it as it was; garbage made meanwhile elsewhere is collected afterwards."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
