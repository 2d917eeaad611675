"""Checkpointing SQLite's write-ahead log beside a bulk writer instead of inside it.

By default the connection whose COMMIT pushes the log past 1,000 pages copies the log into the
database file there and then, fsyncs included: for an import that is every chunk, and about a
fifth of its time. During an import the writing connection leaves that to a thread of its own
(SQLite releases the GIL while it copies), so chunk N is checkpointed while chunk N+1 is
written. The log is only rewound when a checkpoint has caught up before a write begins, so
once it holds more than ``wal_limit`` bytes, or the checkpoints fall behind, the writer waits
for the one in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)
SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default, in pages
WAL_LIMIT = 256 * 1024 * 1024
MAX_BEHIND = 2


class Checkpointer:
    def __init__(self, engine: Engine, wal_limit: int = WAL_LIMIT) -> None:
        self.engine = engine
        self.wal_limit = wal_limit
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._wal_bytes = 0  # in the log at the last checkpoint
        self._behind = 0  # commits since a checkpoint pass began
        self._thread: threading.Thread | None = None

    @contextmanager
    def writer(self, conn: Connection) -> Iterator[None]:
        """While inside, ``conn`` (SQLite, outside a transaction) never checkpoints on commit;
        a thread does it after each ``committed()``. On other databases nothing changes."""
        if conn.dialect.name != "sqlite":
            yield
            return
        dbapi: Any = conn.connection.dbapi_connection
        self._thread = threading.Thread(target=self._run, name="tether-wal-checkpoint")
        self._thread.start()
        dbapi.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            dbapi.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")
            self._stop = True
            self._wanted.set()
            self._thread.join()
            self._thread = None

    def committed(self) -> None:
        """A chunk is committed: checkpoint it in the background."""
        if self._thread is not None:
            self._behind += 1
            self._idle.clear()
            self._wanted.set()

    def keep_up(self) -> None:
        """Before a chunk: if the log has grown past the limit, or the checkpoints have fallen
        behind by more than ``MAX_BEHIND`` commits, let them catch up, so the write that
        follows starts the log over."""
        if self._thread is None:
            return
        if self._wal_bytes > self.wal_limit or self._behind > MAX_BEHIND:
            self._idle.wait()
            self._wal_bytes = 0

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
            while True:
                self._wanted.wait()
                self._wanted.clear()
                self._behind = 0  # this pass covers every commit so far
                if self._stop:
                    break
                try:
                    _busy, frames, _copied = cursor.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    self._wal_bytes = max(frames, 0) * page_size
                except Exception:  # the writer's auto-checkpoint is off only while it writes
                    log.exception("WAL checkpoint failed")
                if not self._wanted.is_set():
                    self._idle.set()
        finally:
            self._idle.set()
            raw.close()
