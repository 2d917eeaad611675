"""The task queue behind jobs: Huey, with SQLite storage in the data dir by default, Redis
for workers on many machines (``TETHER_QUEUE_URL=redis://...``), or ``immediate`` (run at
enqueue, in the caller's thread: for tests and scripts).

The queue knows no service: it runs each job with the runner registered for its kind
(``runtime.py`` registers them), and a job of a kind nobody registered fails with a message.
Every worker process also keeps house on a timer (``Housekeeper``): it queues again the
running jobs whose lease ran out (their worker died), and runs the chores services register
(removing staged uploads no job owns).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta

from huey import MemoryHuey, RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer
from sqlalchemy import Engine

from tether.config import Settings
from tether.jobs import worker
from tether.jobs.worker import Runner

log = logging.getLogger(__name__)
RUN_JOB = "run_job"
Chore = Callable[[], object]


class _Consumer(Consumer):
    """Huey's consumer, telling running jobs when it stops: they stop after the piece of work
    they are writing instead of running to their end first."""

    def __init__(self, huey: Huey, stopping: threading.Event, **kwargs: object) -> None:
        super().__init__(huey, **kwargs)
        self.tether_stopping = stopping

    def stop(self, graceful: bool = False) -> None:
        self.tether_stopping.set()
        super().stop(graceful)


class _EmbeddedConsumer(_Consumer):
    """A consumer living inside ``tether serve``: the server owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        runners: Mapping[str, Runner] | None = None,
        chores: list[Chore] | None = None,
        after_job: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.runners: dict[str, Runner] = dict(runners or {})
        self.chores: list[Chore] = list(chores or [])
        self.after_job = after_job
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.huey = _make_huey(settings)
        self._task = self.huey.task(name=RUN_JOB)(self._run_job)
        self._consumer: Consumer | None = None
        self._stopping = threading.Event()
        self._housekeeper: Housekeeper | None = None

    def register(self, kind: str, runner: Runner) -> None:
        self.runners[kind] = runner

    def _run_job(self, job_id: str) -> None:
        worker.execute(
            self.engine, job_id, self.runners, self.worker_id, self.lease, self._stopping
        )
        if self.after_job is not None:
            self.after_job()

    def enqueue(self, job_id: str) -> None:
        self._task(job_id)

    def recover(self) -> list[str]:
        """Queue again the running jobs whose lease ran out (their worker died)."""
        with self.engine.connect() as conn:
            stale = worker.abandoned(conn)
        for job_id in stale:
            log.warning("job %s lost its worker; resuming it", job_id)
            self.enqueue(job_id)
        return stale

    def keep_house(self) -> None:
        """One round of housekeeping: recovery, then every registered chore."""
        for chore in (self.recover, *self.chores):
            try:
                chore()
            except Exception:
                log.exception("housekeeping: %s failed", getattr(chore, "__name__", chore))

    def consumer(self, workers: int, embedded: bool) -> Consumer:
        cls = _EmbeddedConsumer if embedded else _Consumer
        return cls(
            self.huey,
            self._stopping,
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=0.5,
        )

    def start_housekeeping(self) -> None:
        """Keep house now and then every half lease period, in a thread."""
        self.keep_house()
        self._housekeeper = Housekeeper(self.keep_house, self.lease.total_seconds() / 2)
        self._housekeeper.start()

    def run_worker(self, workers: int) -> None:
        """``tether worker``: consume until a signal stops the process."""
        consumer = self.consumer(workers, embedded=False)
        self.start_housekeeping()
        try:
            consumer.run()
        finally:
            self._stopping.set()
            if self._housekeeper is not None:
                self._housekeeper.stop()

    def start_embedded(self) -> None:
        if self.huey.immediate:
            return
        if self.settings.queue_url is None:
            # With the embedded SQLite queue this process is the only worker: a job still
            # marked running was cut off when the server last stopped, so it resumes at once.
            with self.engine.begin() as conn:
                worker.release_all(conn)
        self._consumer = self.consumer(self.settings.workers, embedded=True)
        self._consumer.start()
        self.start_housekeeping()

    def stop_embedded(self) -> None:
        """Stop the embedded workers: a running job stops after the chunk it is writing
        (seconds at most, not the rest of the job) and resumes when a worker is back."""
        self._stopping.set()
        if self._housekeeper is not None:
            self._housekeeper.stop()
            self._housekeeper = None
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None


class Housekeeper(threading.Thread):
    """Calls ``chore`` every ``period`` seconds until stopped."""

    def __init__(self, chore: Callable[[], None], period: float) -> None:
        super().__init__(name="tether-housekeeping", daemon=True)
        self.chore, self.period = chore, period
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            self.chore()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.period + 5)


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
