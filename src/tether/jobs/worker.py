"""Running one job under a lease.

A worker claims a job with a compare-and-set on (``claimed_by``, ``lease_until``): only a
queued job, or a running one whose lease ran out (its worker died), can be claimed. While the
runner works, a heartbeat thread renews the lease; every progress record checks, in the
transaction that writes the work, that this worker still holds it. So a slow worker's job
never gets a second runner, and a runner that lost its lease stops with its last chunk rolled
back (the new owner does that chunk again).

A runner is a callable taking a ``JobRun``. It reports progress with ``JobRun.record`` in the
transaction of each piece of work, and returns when done; it raises ``JobFailed`` for an
outcome the user must read, ``Stopping`` (via ``check_stop``) when the worker shuts down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from tether.db.tables import job_errors, jobs
from tether.jobs.service import (
    CANCELED,
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    QUEUED,
    RUNNING,
    ItemError,
)

log = logging.getLogger(__name__)
Runner = Callable[["JobRun"], None]


class JobFailed(Exception):
    """The job cannot go on; the message tells the user why."""


class Stopping(Exception):
    """The worker is stopping: the job keeps its progress and resumes on a worker."""


class LeaseLost(Exception):
    """Another worker owns the job now (this one was presumed dead): stop, write nothing."""


def _now() -> datetime:
    return datetime.now(UTC)


class JobRun:
    """One claimed job as its runner sees it: the job's row, its tallies, and the lease."""

    def __init__(
        self, engine: Engine, row: Any, worker_id: str, lease: timedelta, stop: threading.Event
    ) -> None:
        self.engine, self.row, self.worker_id = engine, row, worker_id
        self.lease, self.stop = lease, stop
        self.id: str = row.id
        self.kind: str = row.kind
        self.params: dict[str, Any] = orjson.loads(row.params or "{}")
        self.counts: dict[str, int] = orjson.loads(row.counts) if row.counts else {}
        self.details: dict[str, Any] = orjson.loads(row.details) if row.details else {}
        self.done: int = row.done
        self.failed: int = row.failed
        self.lost = threading.Event()
        # What a cancelled job tells the user; a runner sets its own.
        self.cancel_message: Callable[[JobRun], str] = lambda run: (
            f"canceled: the {run.done} items done before the cancel stay"
        )

    def _mine(self) -> Any:
        return (jobs.c.id == self.id, jobs.c.claimed_by == self.worker_id, jobs.c.status == RUNNING)

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopping
        if self.lost.is_set():
            raise LeaseLost

    def describe(self, total: int | None = None, **details: Any) -> None:
        """Record the job's total and facts about its run (in a transaction of its own)."""
        self.details.update(details)
        values: dict[str, Any] = {"details": orjson.dumps(self.details).decode()}
        if total is not None:
            values["total"] = total
        with self.engine.begin() as conn:
            if not conn.execute(update(jobs).where(*self._mine()).values(**values)).rowcount:
                raise LeaseLost

    def keep_cursor(self, conn: Connection, cursor: object) -> None:
        """Store where the job goes on from (``details.cursor``) in the caller's transaction,
        the one that writes what came before it: a resumed job starts there."""
        details = {**self.details, "cursor": cursor}
        conn.execute(
            update(jobs)
            .where(jobs.c.id == self.id, jobs.c.claimed_by == self.worker_id)
            .values(details=orjson.dumps(details).decode())
        )
        self.details = details

    def record(
        self,
        conn: Connection,
        done: int,
        counts: Mapping[str, int] | None = None,
        errors: Sequence[ItemError] = (),
    ) -> bool:
        """Add one piece of work's outcome in ``conn``'s transaction (the one that wrote the
        work). False when a cancel was asked for: the job is then canceled in the same
        transaction, with exactly this work counted. ``LeaseLost`` (raise it on, so the
        transaction rolls back) when another worker owns the job."""
        if errors:
            conn.execute(insert(job_errors), [e.to_row(self.id) for e in errors])
        for key, value in (counts or {}).items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.done, self.failed = done, self.failed + len(errors)
        now = _now()
        found = conn.execute(
            update(jobs)
            .where(*self._mine())
            .values(
                done=done,
                failed=self.failed,
                counts=orjson.dumps(self.counts).decode(),
                heartbeat_at=now,
                lease_until=now + self.lease,
            )
            .returning(jobs.c.cancel_requested_at)
        ).first()
        if found is None:
            raise LeaseLost
        if found.cancel_requested_at is None:
            return True
        self._end(conn, CANCELED, self.cancel_message(self))
        return False

    def cancel_if_asked(self) -> bool:
        """Cancel the job now if a cancel was asked for (before any work): True if so."""
        with self.engine.begin() as conn:
            asked = conn.execute(
                select(jobs.c.cancel_requested_at).where(*self._mine())
            ).scalar_one_or_none()
            if asked is None:
                return False
            self._end(conn, CANCELED, self.cancel_message(self))
        return True

    def finish(self, message: str | None = None, failed: bool = False) -> None:
        status = FAILED if failed else COMPLETED_WITH_ERRORS if self.failed else COMPLETED
        with self.engine.begin() as conn:
            self._end(conn, status, message)

    def _end(self, conn: Connection, status: str, message: str | None) -> None:
        conn.execute(
            update(jobs)
            .where(*self._mine())
            .values(
                status=status,
                message=message,
                finished_at=_now(),
                lease_until=None,
                total=func.coalesce(jobs.c.total, jobs.c.done),
            )
        )

    def release(self) -> None:
        """Give the job up without finishing it: any worker may resume it at once."""
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(*self._mine()).values(lease_until=None))

    def renew(self) -> bool:
        now = _now()
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(jobs)
                .where(*self._mine())
                .values(heartbeat_at=now, lease_until=now + self.lease)
            ).rowcount
        return bool(renewed)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease in a thread while inside, a few times per lease period."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease.total_seconds() / 4):
                try:
                    if not self.renew():
                        self.lost.set()
                        return
                except Exception:  # a database hiccup: the next beat tries again
                    log.warning("job %s: renewing its lease failed", self.id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"lease-{self.id[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def claim(
    engine: Engine, job_id: str, worker_id: str, lease: timedelta, stop: threading.Event
) -> JobRun | None:
    """Take the job if it is queued or its lease ran out; None if another worker has it (or
    it finished). A resumed job keeps its first ``started_at``."""
    now = _now()
    with engine.begin() as conn:
        taken = conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job_id,
                or_(
                    jobs.c.status == QUEUED,
                    (jobs.c.status == RUNNING)
                    & or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
                ),
            )
            .values(
                status=RUNNING,
                claimed_by=worker_id,
                lease_until=now + lease,
                heartbeat_at=now,
                started_at=func.coalesce(jobs.c.started_at, now),
            )
        ).rowcount
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first() if taken else None
    return None if row is None else JobRun(engine, row, worker_id, lease, stop)


def execute(
    engine: Engine,
    job_id: str,
    runners: Mapping[str, Runner],
    worker_id: str,
    lease: timedelta,
    stop: threading.Event | None = None,
) -> None:
    """Claim and run one job to its end (or until the worker stops or loses the lease)."""
    run = claim(engine, job_id, worker_id, lease, stop or threading.Event())
    if run is None:
        return
    runner = runners.get(run.kind)
    if runner is None:
        run.finish(f"no runner for jobs of kind {run.kind!r} on this worker", failed=True)
        return
    with run.heartbeat():
        try:
            if run.cancel_if_asked():
                return
            runner(run)
        except Stopping:
            log.info("job %s stops with its progress kept; it resumes on a worker", job_id)
            run.release()
        except LeaseLost:
            log.warning("job %s: lost its lease to another worker; stopped", job_id)
        except JobFailed as exc:
            run.finish(str(exc), failed=True)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            run.finish(f"internal error: {type(exc).__name__}", failed=True)
        else:
            run.finish()


def abandoned(conn: Connection) -> list[str]:
    """Running jobs whose lease ran out or was given up: their worker is gone."""
    return list(
        conn.execute(
            select(jobs.c.id).where(
                jobs.c.status == RUNNING,
                or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < _now()),
            )
        ).scalars()
    )


def release_all(conn: Connection) -> None:
    """Free every running job's lease: for a worker that knows it is the only one (the
    embedded SQLite queue at start-up), so what was cut off resumes at once."""
    conn.execute(update(jobs).where(jobs.c.status == RUNNING).values(lease_until=None))
