"""The task queue behind jobs: Huey, with SQLite storage in the data dir by default, Redis
for workers on many machines (``TETHER_QUEUE_URL=redis://...``), or ``immediate`` (run at
enqueue, in the caller's thread: for tests and scripts)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer
from sqlalchemy import Engine

from tether.config import Settings
from tether.db.engine import refresh_statistics
from tether.jobs import service as jobs

log = logging.getLogger(__name__)
RUN_JOB = "run_job"


class _EmbeddedConsumer(Consumer):
    """A consumer living inside ``tether serve``: the server owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.huey = _make_huey(settings)
        self._task = self.huey.task(name=RUN_JOB)(self._run_job)
        self._consumer: Consumer | None = None
        self._stopping = threading.Event()

    def _run_job(self, job_id: str) -> None:
        from tether.imports.runner import run_import  # services import lazily: no cycle

        with self.engine.connect() as conn:
            job = jobs.load(conn, job_id)
        if job is not None and job.kind == "import":
            run_import(self.engine, job_id, self.settings.import_chunk_rows, self._stopping)
            refresh_statistics(self.engine)

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)

    def recover(self, stale_after: timedelta = jobs.STALE_AFTER) -> list[str]:
        """Queue again the running jobs whose worker died."""
        with self.engine.connect() as conn:
            stale = jobs.abandoned(conn, stale_after)
        for job_id in stale:
            log.warning("job %s lost its worker; resuming it", job_id)
            self.enqueue(job_id)
        return stale

    def consumer(self, workers: int, embedded: bool) -> Consumer:
        cls = _EmbeddedConsumer if embedded else Consumer
        return cls(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=0.5,
        )

    def start_embedded(self) -> None:
        if self.huey.immediate:
            return
        self._consumer = self.consumer(self.settings.workers, embedded=True)
        self._consumer.start()
        # With the embedded queue this process is the only worker: a job still marked running
        # was cut off when the server last stopped, so it resumes at once.
        self.recover(timedelta(0) if self.settings.queue_url is None else jobs.STALE_AFTER)

    def stop_embedded(self) -> None:
        """Stop the embedded workers: a running import stops after the chunk it is writing
        (seconds at most, not the rest of the import) and resumes when the server is back."""
        self._stopping.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None


def _make_huey(settings: Settings) -> Huey:
    url = settings.queue_url
    if url == "immediate":
        return MemoryHuey("tether", immediate=True, results=False)
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("tether", url=url, results=False)
    if url:
        raise ValueError(f"TETHER_QUEUE_URL {url!r}: expected redis://..., or unset")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("tether", filename=str(settings.data_dir / "queue.db"), results=False)
